package replay

import (
	"fmt"
	"sync"

	tiktoken "github.com/pkoukk/tiktoken-go"
	tiktokenloader "github.com/pkoukk/tiktoken-go-loader"

	"github.com/hive-swarm/hive/internal/llm"
)

// Token accounting follows OpenAI's chat format: every message (the system
// prompt counts as one) costs its text plus perMessage tokens, and the
// reply is primed with replyPriming tokens.
const (
	perMessage   = 3
	replyPriming = 3
	perImage     = 85 // a low-detail image tile
	encodingName = "cl100k_base"
)

// encoding loads cl100k_base once, from the BPE ranks embedded in
// tiktoken-go-loader (no network).
var encoding = sync.OnceValues(func() (*tiktoken.Tiktoken, error) {
	tiktoken.SetBpeLoader(tiktokenloader.NewOfflineLoader())
	enc, err := tiktoken.GetEncoding(encodingName)
	if err != nil {
		return nil, fmt.Errorf("replay: load %s: %w", encodingName, err)
	}
	return enc, nil
})

// textCacheMax bounds the cache of prompt-text token counts; it is
// emptied when full (conversations resend the same messages, so a simple
// bound keeps the hit rate high without an LRU).
const textCacheMax = 4096

// counter counts tokens, caching the counts of texts seen recently.
type counter struct {
	enc *tiktoken.Tiktoken
	mu  sync.Mutex
	// cache maps a text to its token count; guarded by mu.
	cache map[string]int
}

func newCounter() (*counter, error) {
	enc, err := encoding()
	if err != nil {
		return nil, err
	}
	return &counter{enc: enc, cache: make(map[string]int)}, nil
}

// count returns the number of tokens of s. Special-token strings in s are
// counted as plain text.
func (c *counter) count(s string) int {
	if s == "" {
		return 0
	}
	c.mu.Lock()
	n, ok := c.cache[s]
	c.mu.Unlock()
	if ok {
		return n
	}
	n = len(c.enc.EncodeOrdinary(s))
	c.mu.Lock()
	if len(c.cache) >= textCacheMax {
		clear(c.cache)
	}
	c.cache[s] = n
	c.mu.Unlock()
	return n
}

// prompt counts the input tokens of req: tools, system prompt and
// messages, with the chat format's per-message overhead.
func (c *counter) prompt(req *llm.Request) int64 {
	n := replyPriming
	for _, t := range req.Tools {
		n += c.count(t.Name) + c.count(t.Description) + c.count(string(t.Schema))
	}
	if req.System != "" {
		n += perMessage + c.count(req.System)
	}
	for _, m := range req.Messages {
		n += perMessage
		for _, p := range m.Parts {
			switch p := p.(type) {
			case llm.Text:
				n += c.count(p.Text)
			case llm.ToolCall:
				n += c.count(p.Name) + c.count(string(p.Input))
			case llm.ToolResult:
				n += c.count(p.Content)
			case llm.Image:
				n += perImage
			}
		}
	}
	return int64(n)
}

// truncate returns the first max tokens of s.
func (c *counter) truncate(s string, max int) string {
	toks := c.enc.EncodeOrdinary(s)
	if len(toks) <= max {
		return s
	}
	return c.enc.Decode(toks[:max])
}
