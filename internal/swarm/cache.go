package swarm

import (
	"context"
	"strings"
	"sync"
	"time"

	"github.com/hive-swarm/hive/internal/llm"
	"github.com/hive-swarm/hive/internal/price"
	"github.com/hive-swarm/hive/internal/provider"
)

// Prompt caching. The workers of one delegate call share a long prefix:
// the tools, the worker system prompt and the context the call gives them
// all. Every request is ordered so that this shared part comes first and
// never changes (tools, system with the wave's context, then the task),
// with a cache breakpoint after it (Anthropic's cache_control; OpenAI
// caches prefixes on its own and routes by prompt_cache_key, set per
// wave) and one after the conversation so far, so that the next turn of
// the same conversation reads it back. A wave is staggered: a cache entry
// can be read only once the request that writes it has begun to answer,
// so the first call of a wave to each model goes alone, streamed, and the
// rest go when its first event arrives.

// minCachePrefix is the fewest estimated tokens of shared prefix worth a
// stagger: below Anthropic's smallest cacheable prompt (1,024 tokens for
// Sonnet and Opus) and OpenAI's (1,024), nothing would be cached.
const minCachePrefix = 1024

// maxStagger bounds how long the rest of a wave waits for its first call
// to start answering: a slow first call must not hold the wave.
const maxStagger = 20 * time.Second

// A wave is the tasks of one delegate call.
type wave struct {
	context string // what every task of the wave gets ahead of its own
	key     string // the provider cache key: the run and the wave's first node
	// stagger is set when the wave's shared prefix is worth caching and
	// more than one task shares it.
	stagger bool

	mu    sync.Mutex
	gates map[string]chan struct{} // by model: closed when its first call began to answer
}

// newWave returns the wave of a delegate call that starts tasks, the
// first of them firstNode, in run runID, whose task is runTask.
func newWave(runID, runTask, firstNode string, args delegateArgs) *wave {
	var b strings.Builder
	if args.ShareTask {
		b.WriteString("\n\nThe whole job the lead was given, which every task of your wave shares (your own task follows in the conversation):\n\n")
		b.WriteString(runTask)
	}
	if args.Context != "" {
		b.WriteString("\n\nContext every task of your wave shares (your own task follows in the conversation):\n\n")
		b.WriteString(args.Context)
	}
	return &wave{context: b.String(), key: runID + "/" + firstNode, stagger: len(args.Tasks) > 1}
}

// system returns the worker system prompt with the wave's context.
func (w *wave) system(base string) string {
	if w == nil {
		return base
	}
	return base + w.context
}

// cacheKey is the key requests of the wave share.
func (w *wave) cacheKey() string {
	if w == nil {
		return ""
	}
	return w.key
}

// enter is called before a worker's first call to model. The wave's first
// call to each model gets a release func, to call once its answer began
// (and again, harmlessly, when the call is over); the others get a channel
// closed then.
func (w *wave) enter(model string) (wait <-chan struct{}, release func()) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if ch, ok := w.gates[model]; ok {
		return ch, nil
	}
	if w.gates == nil {
		w.gates = map[string]chan struct{}{}
	}
	ch := make(chan struct{})
	w.gates[model] = ch
	return nil, sync.OnceFunc(func() { close(ch) })
}

// staggered waits, for a worker's first call of a wave worth caching,
// until the wave's first call to the same model began to answer. It
// returns the release func when this call is that first call.
func (a *agent) staggered(ctx context.Context, req *llm.Request) func() {
	w := a.wave
	if w == nil || !w.stagger || a.turn != 0 || sharedBytes(req)/4 < minCachePrefix {
		return nil
	}
	wait, release := w.enter(a.model.Name)
	if release != nil {
		return release
	}
	t := time.NewTimer(maxStagger)
	defer t.Stop()
	select {
	case <-wait:
	case <-t.C:
	case <-ctx.Done():
	}
	return nil
}

// sharedBytes is the size of a request's tools and system prompt: the
// prefix the requests of a wave share.
func sharedBytes(req *llm.Request) int64 {
	n := int64(len(req.System))
	for _, t := range req.Tools {
		n += int64(len(t.Name) + len(t.Description) + len(t.Schema))
	}
	return n
}

// cacheTail returns msgs with a cache breakpoint on the last message only,
// so that the next turn of the conversation reads all of this one from
// the cache; msgs itself is not changed.
func cacheTail(msgs []llm.Message) []llm.Message {
	if len(msgs) == 0 {
		return msgs
	}
	out := make([]llm.Message, len(msgs))
	copy(out, msgs)
	for i := range out {
		out[i].Cache = false
	}
	out[len(out)-1].Cache = true
	return out
}

// hourGap is how far apart a conversation's calls may come before its
// cache entries should live an hour: Anthropic's default entries live 5
// minutes from their last use, so a lead that waits longer than that for
// a wave would write its whole conversation again at every turn.
const hourGap = 4 * time.Minute

// longGap reports whether a call at now comes too long after the last
// one, at last, for 5-minute cache entries to hold. A conversation that
// had such a gap asks for 1-hour entries from then on (written at 2x
// input instead of 1.25x, and read at the same 0.1x).
func longGap(last, now time.Time) bool {
	return !last.IsZero() && now.Sub(last) > hourGap
}

// cacheSaved is what prompt caching saved on a call billed u at cost: what
// its prompt would have cost with every token uncached, less what it did
// cost. It is negative when cache writes (priced above input) have not
// been read back yet.
func cacheSaved(m *provider.Model, u llm.Usage, cost price.Amount, batch bool) price.Amount {
	if (u.CacheReadTokens == 0 && u.CacheWriteTokens == 0) || !m.PriceKnown {
		return 0
	}
	flat := u
	flat.InputTokens += u.CacheReadTokens + u.CacheWriteTokens
	flat.CacheReadTokens, flat.CacheWriteTokens, flat.CacheWrite1hTokens = 0, 0, 0
	if batch {
		return m.Price.BatchCost(flat) - cost
	}
	return m.Price.Cost(flat) - cost
}
