package llmtest

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"encoding/json"
	"hash"
	"sync"
	"time"
)

// CacheRules configure the prompt cache a [Server] simulates
// ([Server.SimulateCache]). The zero value holds the providers' defaults.
type CacheRules struct {
	// MinTokens is the shortest prefix that is cached: 1024 by default,
	// the minimum of Anthropic's Sonnet and Opus models ("Cache
	// limitations" in docs.anthropic.com/en/docs/build-with-claude/prompt-caching;
	// Haiku models need 2048, some newer ones 4096) and of OpenAI's
	// automatic caching ("caching is enabled automatically for prompts
	// that are 1024 tokens or longer",
	// platform.openai.com/docs/guides/prompt-caching).
	MinTokens int
	// TTL is how long an entry lives after it is written or last read:
	// 5 minutes by default, Anthropic's ephemeral lifetime, "refreshed for
	// no additional cost each time the cached content is used"
	// (docs.anthropic.com, "How prompt caching works"). OpenAI keeps
	// entries 5 to 10 minutes of inactivity, up to an hour off-peak
	// (platform.openai.com/docs/guides/prompt-caching). Anthropic's 1-hour
	// entries (cache_control ttl "1h") live an hour whatever TTL says.
	TTL time.Duration
	// Now is the clock; time.Now by default. Tests inject one to expire
	// entries without waiting.
	Now func() time.Time
}

// CacheStats sum what a [Server]'s simulated cache billed, over the
// requests answered successfully since [Server.SimulateCache].
type CacheStats struct {
	Requests int // requests answered with caching on
	Hits     int // of them, those that read a cached prefix
	// ReadTokens are prompt tokens read from the cache (Anthropic's
	// cache_read_input_tokens, OpenAI's cached_tokens).
	ReadTokens int64
	// WriteTokens are prompt tokens billed as cache writes (Anthropic's
	// cache_creation_input_tokens). OpenAI bills no writes and reports
	// none, so they stay 0 on an OpenAI-protocol server.
	WriteTokens int64
	// UncachedTokens are the prompt tokens billed at the input price:
	// the input_tokens Anthropic reports, OpenAI's prompt_tokens less
	// cached_tokens.
	UncachedTokens int64
}

// SimulateCache turns on a prompt cache that follows the provider's
// documented rules, with r's parameters, replacing any earlier one (its
// entries and stats are dropped). Usage then reports cache reads and
// writes, and [Server.CacheStats] sums them. Without it the server caches
// nothing and reports no cache tokens, unless a [Reply] scripts them.
//
// Token counts are the server's estimate for input_tokens, about four
// bytes of request body a token, so that a response's uncached input,
// cache reads and cache writes add up to that estimate; a prefix counts
// the bytes of its blocks (tools, system, messages) as they were sent.
// A reply with a scripted Usage reports it as scripted; the cache is
// still read and written, and CacheStats count what it simulated.
//
// On a server made by [NewAnthropic], caching is explicit, as Anthropic
// documents it (docs.anthropic.com/en/docs/build-with-claude/prompt-caching):
// a block with cache_control is a breakpoint and the prompt up to it,
// tools then system then messages, an entry of 5 minutes (TTL) or, with
// ttl "1h", an hour; at most 4 breakpoints and no 1-hour one after a
// 5-minute one, else a 400; each breakpoint reads the longest live entry
// among the 20 block boundaries ending at it; a prefix under MinTokens is
// not written; tool_choice and thinking are part of the messages' key.
// Usage reports input_tokens (uncached), cache_creation_input_tokens,
// cache_read_input_tokens and cache_creation's 5-minute and 1-hour split.
//
// On a server speaking Chat Completions caching is automatic, as OpenAI
// documents it (platform.openai.com/docs/guides/prompt-caching): a prompt
// of MinTokens or more, tools then messages, reads the longest prefix seen
// before for the same model and prompt_cache_key, in 128-token steps
// (1024, 1152, ...). prompt_tokens stays the whole prompt and
// prompt_tokens_details.cached_tokens is the part read. The dialect
// servers ([NewLlamaCpp], [NewVLLM], [NewOllama]) follow the same rules, a
// simplification: their own prefix caches report otherwise, or not at all.
//
// Either way an entry a request writes becomes readable when that
// request's answer starts: an identical request processed before then
// misses and writes it too.
func (s *Server) SimulateCache(r CacheRules) {
	if r.MinTokens <= 0 {
		r.MinTokens = 1024
	}
	if r.TTL <= 0 {
		r.TTL = 5 * time.Minute
	}
	if r.Now == nil {
		r.Now = time.Now
	}
	s.cache.Store(&promptCache{rules: r, entries: make(map[cacheKey]*cacheEntry)})
}

// CacheStats returns what the simulated cache billed so far; zero when
// caching is off. It is safe for concurrent use.
func (s *Server) CacheStats() CacheStats {
	pc := s.cache.Load()
	if pc == nil {
		return CacheStats{}
	}
	pc.mu.Lock()
	defer pc.mu.Unlock()
	return pc.stats
}

// cacheKey identifies a prompt prefix: a hash of everything up to a
// point of the prompt, the model and whatever else the provider keys on.
type cacheKey [sha256.Size]byte

// A cachePoint is a place in a prompt where an entry can end.
type cachePoint struct {
	key    cacheKey
	tokens int64 // of the prefix up to here
}

// A cacheMark is an Anthropic breakpoint: the prefix up to points[point]
// is to be cached, for an hour when hour is set.
type cacheMark struct {
	point int
	hour  bool
}

// A cachePrompt is a request's prompt as the cache sees it.
type cachePrompt struct {
	points []cachePoint // in prompt order, tokens increasing
	// automatic caching (OpenAI's) reads the longest live prefix among
	// points and writes every point after it.
	automatic bool
	// marks are the breakpoints of explicit caching (Anthropic's), in
	// prompt order: only they are read and written.
	marks []cacheMark
	// lookback, with marks, is how many points (the mark's own first)
	// are searched for an entry at each mark.
	lookback int
}

// A cacheEntry is a cached prefix.
type cacheEntry struct {
	tokens  int64
	ttl     time.Duration
	expires time.Time
}

// A cacheUse is what one request reads from and writes to the cache: the
// lookup's result, committed when the response starts.
type cacheUse struct {
	read             int64 // tokens read
	write5m, write1h int64 // tokens billed as 5-minute and 1-hour writes
	hit              *cacheKey
	writes           []cacheWrite
}

type cacheWrite struct {
	key    cacheKey
	tokens int64
	ttl    time.Duration
}

// promptCache is a server's simulated cache.
type promptCache struct {
	rules CacheRules // immutable

	mu      sync.Mutex
	entries map[cacheKey]*cacheEntry // guarded by mu
	stats   CacheStats               // guarded by mu
	commits int                      // guarded by mu; entries are swept every sweepEvery commits
}

const sweepEvery = 1024

// liveLocked returns the entry for k if it has not expired.
func (pc *promptCache) liveLocked(k cacheKey, now time.Time) *cacheEntry {
	e := pc.entries[k]
	if e == nil || !now.Before(e.expires) {
		return nil
	}
	return e
}

// lookup finds what p reads from the cache and what it would write. It
// changes nothing: entries are written, and the one read refreshed, by
// commit, when the response starts, because "a cache entry only becomes
// available after the first response begins" (docs.anthropic.com,
// prompt-caching, "Cache limitations"; OpenAI's cache too is filled by the
// request that computed the prefix).
func (pc *promptCache) lookup(p *cachePrompt) *cacheUse {
	now := pc.rules.Now()
	min := int64(pc.rules.MinTokens)
	u := &cacheUse{}
	pc.mu.Lock()
	defer pc.mu.Unlock()
	if p.automatic {
		// OpenAI: "the longest prefix of a prompt that has been previously
		// computed" is read; the rest of the prompt is cached for the next.
		hit := -1
		for i := len(p.points) - 1; i >= 0; i-- {
			if pc.liveLocked(p.points[i].key, now) != nil {
				hit = i
				break
			}
		}
		if hit >= 0 {
			u.read = p.points[hit].tokens
			u.hit = &p.points[hit].key
		}
		for _, pt := range p.points[hit+1:] {
			u.writes = append(u.writes, cacheWrite{pt.key, pt.tokens, pc.rules.TTL})
		}
		return u
	}

	// Anthropic: at each breakpoint the cache is checked at the
	// breakpoint's own position and then at the block boundaries before
	// it, "up to approximately 20 blocks" back, and the longest match is
	// read (docs.anthropic.com, prompt-caching, "What invalidates the
	// cache" and the automatic prefix checking it describes).
	for _, m := range p.marks {
		for j := m.point; j >= 0 && j > m.point-p.lookback; j-- {
			if pc.liveLocked(p.points[j].key, now) == nil {
				continue
			}
			if t := p.points[j].tokens; t > u.read {
				u.read = t
				u.hit = &p.points[j].key
			}
			break
		}
	}
	// Each breakpoint past the read prefix writes an entry, the tokens
	// between the previous entry and it billed at its TTL's price: with
	// mixed TTLs the 1-hour writes are the tokens from the read prefix to
	// the last 1-hour breakpoint, the 5-minute writes the rest up to the
	// last breakpoint (docs.anthropic.com, prompt-caching, "Mixing
	// different TTLs"). A prefix shorter than MinTokens is processed
	// without caching, and without an error ("Cache limitations").
	prev := u.read
	for _, m := range p.marks {
		pt := p.points[m.point]
		if pt.tokens < min || pt.tokens <= prev {
			continue
		}
		ttl := pc.rules.TTL
		if m.hour {
			ttl = time.Hour
			u.write1h += pt.tokens - prev
		} else {
			u.write5m += pt.tokens - prev
		}
		u.writes = append(u.writes, cacheWrite{pt.key, pt.tokens, ttl})
		prev = pt.tokens
	}
	return u
}

// commit writes u's entries, refreshes the one it read, and counts it in
// the stats with the prompt's total tokens.
func (pc *promptCache) commit(u *cacheUse, total int64) {
	now := pc.rules.Now()
	pc.mu.Lock()
	defer pc.mu.Unlock()
	if u.hit != nil {
		if e := pc.entries[*u.hit]; e != nil {
			e.expires = now.Add(e.ttl)
		}
	}
	for _, w := range u.writes {
		e := pc.entries[w.key]
		if e == nil {
			e = &cacheEntry{tokens: w.tokens}
			pc.entries[w.key] = e
		}
		// A 5-minute write of a prefix held for an hour keeps the hour.
		if w.ttl > e.ttl || !now.Before(e.expires) {
			e.ttl = w.ttl
		}
		e.expires = maxTime(e.expires, now.Add(w.ttl))
	}
	pc.stats.Requests++
	if u.read > 0 {
		pc.stats.Hits++
	}
	pc.stats.ReadTokens += u.read
	pc.stats.WriteTokens += u.write5m + u.write1h
	pc.stats.UncachedTokens += u.uncached(total)
	if pc.commits++; pc.commits%sweepEvery == 0 {
		for k, e := range pc.entries {
			if !now.Before(e.expires) {
				delete(pc.entries, k)
			}
		}
	}
}

func maxTime(a, b time.Time) time.Time {
	if a.After(b) {
		return a
	}
	return b
}

// uncached returns the tokens of a prompt of total tokens that u neither
// read nor wrote.
func (u *cacheUse) uncached(total int64) int64 {
	return max(total-u.read-u.write5m-u.write1h, 0)
}

// clamp keeps u's counts within a prompt of total tokens. Prefixes are
// counted from the bytes of the blocks as sent, which the body holds, so
// this only guards the arithmetic.
func (u *cacheUse) clamp(total int64) {
	u.read = min(u.read, total)
	u.write1h = min(u.write1h, total-u.read)
	u.write5m = min(u.write5m, total-u.read-u.write1h)
}

// prefixHasher chains the pieces of a prompt into keys: the key after a
// piece covers it and everything before it, so equal keys mean equal
// prefixes.
type prefixHasher struct {
	h   hash.Hash
	buf []byte
}

func newPrefixHasher(seed ...string) *prefixHasher {
	p := &prefixHasher{h: sha256.New()}
	for _, s := range seed {
		p.write([]byte(s))
	}
	return p
}

// write adds a piece, length-prefixed so that pieces cannot run together.
func (p *prefixHasher) write(piece []byte) {
	p.buf = binary.AppendUvarint(p.buf[:0], uint64(len(piece)))
	p.h.Write(p.buf)
	p.h.Write(piece)
}

// stream adds bytes to the prefix as they come, without a length.
func (p *prefixHasher) stream(b []byte) { p.h.Write(b) }

// key returns the key of everything written so far.
func (p *prefixHasher) key() cacheKey {
	var k cacheKey
	p.h.Sum(k[:0])
	return k
}

// compactJSON returns raw without insignificant space.
func compactJSON(raw []byte) []byte {
	var b bytes.Buffer
	if err := json.Compact(&b, raw); err != nil {
		return raw
	}
	return b.Bytes()
}
