package llmtest

import (
	"bytes"
	"encoding/json"
	"fmt"
)

// anthropicMaxBreakpoints is how many cache_control blocks a Messages
// request may carry: "You can define up to 4 cache breakpoints"
// (docs.anthropic.com/en/docs/build-with-claude/prompt-caching).
const anthropicMaxBreakpoints = 4

// anthropicLookback is how many block boundaries the cache checks at a
// breakpoint, the breakpoint's own first: "the system automatically
// checks for cache hits at all previous content block boundaries (up to
// approximately 20 blocks before your explicit breakpoint)"
// (docs.anthropic.com, prompt-caching). The docs leave "approximately"
// open; here it is exactly 20 positions.
const anthropicLookback = 20

// cachePrompt reads a Messages request as Anthropic's cache sees it
// (docs.anthropic.com/en/docs/build-with-claude/prompt-caching):
//
//   - the prompt is tools, then system, then messages, "in that order",
//     each tool, system block and content block one block, a string
//     system or content one text block;
//   - a block with cache_control {"type":"ephemeral"} is a breakpoint, the
//     prefix up to and including it an entry; "ttl":"1h" makes it a
//     1-hour entry, "5m" (the default) a 5-minute one; a top-level
//     cache_control (automatic caching) is a breakpoint on the last block;
//   - more than 4 breakpoints is a 400 invalid_request_error, and so is a
//     1-hour breakpoint after a 5-minute one (with mixed TTLs the longer
//     must come first, "Mixing different TTLs");
//   - an entry is the exact prefix, for this model: a change to the tools
//     invalidates everything, to the system the system and messages, and
//     a change of tool_choice or of the thinking parameters only the
//     messages ("What invalidates the cache"), so they are part of the
//     key from the first message on.
//
// Block content is compared without its cache_control, so moving a
// breakpoint does not change the prefixes before it.
func (anthropicProto) cachePrompt(c *Call, _ CacheRules) (*cachePrompt, error) {
	var req struct {
		Model    string            `json:"model"`
		Tools    []json.RawMessage `json:"tools"`
		System   json.RawMessage   `json:"system"`
		Messages []struct {
			Role    string          `json:"role"`
			Content json.RawMessage `json:"content"`
		} `json:"messages"`
		ToolChoice   json.RawMessage `json:"tool_choice"`
		Thinking     json.RawMessage `json:"thinking"`
		CacheControl json.RawMessage `json:"cache_control"`
	}
	if err := json.Unmarshal(c.Body, &req); err != nil {
		return nil, fmt.Errorf("invalid JSON body: %v", err)
	}
	p := &cachePrompt{lookback: anthropicLookback}
	h := newPrefixHasher("anthropic", req.Model)
	var size int64     // bytes of the blocks so far
	var fiveMin string // the first 5-minute breakpoint's path, if any
	mark := func(path string, cc *anthropicCacheControl) error {
		if cc.hour && fiveMin != "" {
			return fmt.Errorf("%s.cache_control: a breakpoint with ttl='1h' must not come after one with ttl='5m' (%s.cache_control); blocks are processed in the order tools, system, messages", path, fiveMin)
		}
		if !cc.hour && fiveMin == "" {
			fiveMin = path
		}
		p.marks = append(p.marks, cacheMark{point: len(p.points) - 1, hour: cc.hour})
		return nil
	}
	block := func(path, kind string, raw json.RawMessage) error {
		b, err := anthropicCacheBlock(path, raw)
		if err != nil {
			return err
		}
		h.write(append([]byte(kind+"\x00"), b.material...))
		size += b.size
		p.points = append(p.points, cachePoint{key: h.key(), tokens: size / 4})
		if b.cc != nil {
			return mark(path, b.cc)
		}
		return nil
	}

	for i, t := range req.Tools {
		if err := block(fmt.Sprintf("tools.%d", i), "tool", t); err != nil {
			return nil, err
		}
	}
	if sys := bytes.TrimSpace(req.System); len(sys) > 0 && sys[0] == '[' {
		var blocks []json.RawMessage
		if err := json.Unmarshal(sys, &blocks); err != nil {
			return nil, fmt.Errorf("system: %v", err)
		}
		for i, b := range blocks {
			if err := block(fmt.Sprintf("system.%d", i), "system", b); err != nil {
				return nil, err
			}
		}
	} else if len(sys) > 0 && string(sys) != "null" {
		if err := block("system", "system", sys); err != nil {
			return nil, err
		}
	}
	h.write([]byte("tool_choice\x00" + string(compactJSON(req.ToolChoice)) + "\x00thinking\x00" + string(compactJSON(req.Thinking))))
	for i, m := range req.Messages {
		// Where a message starts is part of the prompt: two blocks in one
		// message are not a block in each of two.
		kind := m.Role + "\x00first"
		content := bytes.TrimSpace(m.Content)
		if len(content) > 0 && content[0] == '[' {
			var blocks []json.RawMessage
			if err := json.Unmarshal(content, &blocks); err != nil {
				return nil, fmt.Errorf("messages.%d.content: %v", i, err)
			}
			for j, b := range blocks {
				if err := block(fmt.Sprintf("messages.%d.content.%d", i, j), kind, b); err != nil {
					return nil, err
				}
				kind = m.Role
			}
		} else if err := block(fmt.Sprintf("messages.%d.content", i), kind, content); err != nil {
			return nil, err
		}
	}
	if cc := bytes.TrimSpace(req.CacheControl); len(cc) > 0 && string(cc) != "null" && len(p.points) > 0 {
		top, err := parseAnthropicCacheControl("cache_control", cc)
		if err != nil {
			return nil, err
		}
		// Automatic caching puts its breakpoint on the last block, unless
		// that block has one already.
		if n := len(p.marks); n == 0 || p.marks[n-1].point != len(p.points)-1 {
			if err := mark("cache_control", top); err != nil {
				return nil, err
			}
		}
	}
	if n := len(p.marks); n > anthropicMaxBreakpoints {
		return nil, fmt.Errorf("A maximum of %d blocks with cache_control may be provided. Found %d.", anthropicMaxBreakpoints, n)
	}
	return p, nil
}

// anthropicCacheControl is a breakpoint's cache_control.
type anthropicCacheControl struct{ hour bool }

func parseAnthropicCacheControl(path string, raw json.RawMessage) (*anthropicCacheControl, error) {
	var cc struct {
		Type string `json:"type"`
		TTL  string `json:"ttl"`
	}
	if err := json.Unmarshal(raw, &cc); err != nil {
		return nil, fmt.Errorf("%s: Input should be an object", path)
	}
	if cc.Type != "ephemeral" {
		return nil, fmt.Errorf("%s.type: Input should be 'ephemeral'", path)
	}
	switch cc.TTL {
	case "", "5m":
		return &anthropicCacheControl{}, nil
	case "1h":
		return &anthropicCacheControl{hour: true}, nil
	}
	return nil, fmt.Errorf("%s.ttl: Input should be '5m' or '1h'", path)
}

// anthropicCached is one block of a prompt as the cache sees it.
type anthropicCached struct {
	material []byte // what the key covers: the block without cache_control
	size     int64  // bytes counted for it, at most what the body holds
	cc       *anthropicCacheControl
}

// anthropicCacheBlock reads a tool, a system or content block, or a
// string standing for a text block.
func anthropicCacheBlock(path string, raw json.RawMessage) (anthropicCached, error) {
	raw = bytes.TrimSpace(raw)
	if len(raw) > 0 && raw[0] == '"' {
		var s string
		if err := json.Unmarshal(raw, &s); err != nil {
			return anthropicCached{}, fmt.Errorf("%s: %v", path, err)
		}
		return anthropicCached{material: []byte("text\x00" + s), size: int64(len(raw))}, nil
	}
	var obj map[string]json.RawMessage
	if err := json.Unmarshal(raw, &obj); err != nil || obj == nil {
		return anthropicCached{material: raw, size: int64(len(raw))}, nil
	}
	var b anthropicCached
	if cc := bytes.TrimSpace(obj["cache_control"]); len(cc) > 0 && string(cc) != "null" {
		parsed, err := parseAnthropicCacheControl(path+".cache_control", cc)
		if err != nil {
			return b, err
		}
		b.cc = parsed
	}
	delete(obj, "cache_control")
	// Keys sorted, no HTML escapes, no space: never longer than the body's
	// bytes for the block.
	var canon bytes.Buffer
	enc := json.NewEncoder(&canon)
	enc.SetEscapeHTML(false)
	enc.Encode(obj)
	b.size = int64(len(bytes.TrimSpace(canon.Bytes())))
	// A text block is its text, as a string standing for one is.
	var typ, text string
	if len(obj) == 2 && json.Unmarshal(obj["type"], &typ) == nil && typ == "text" && json.Unmarshal(obj["text"], &text) == nil {
		b.material = []byte("text\x00" + text)
	} else {
		b.material = append([]byte("json\x00"), bytes.TrimSpace(canon.Bytes())...)
	}
	return b, nil
}

// openAIIncrement is the granularity of OpenAI's cache: cached prefixes
// grow in 128-token increments past the first 1024
// (platform.openai.com/docs/guides/prompt-caching).
const openAIIncrement = 128

// cachePrompt reads a Chat Completions request as OpenAI's cache sees it
// (platform.openai.com/docs/guides/prompt-caching): caching is automatic
// for prompts of MinTokens (1024) or more; the prompt is the tools, then
// the messages in order (images and tools "must be identical between
// requests"); what is read is "the longest prefix of a prompt that has
// been previously computed", in 128-token increments from 1024 (1024,
// 1152, ...); entries are per model and, when the request names one, per
// prompt_cache_key, which OpenAI combines with the prefix hash to route
// the request (here a different key always misses, where OpenAI's
// routing might still find the prefix).
func (*openAI) cachePrompt(c *Call, r CacheRules) (*cachePrompt, error) {
	var req struct {
		Model          string            `json:"model"`
		Tools          json.RawMessage   `json:"tools"`
		Messages       []json.RawMessage `json:"messages"`
		PromptCacheKey string            `json:"prompt_cache_key"`
	}
	if err := json.Unmarshal(c.Body, &req); err != nil {
		return nil, fmt.Errorf("invalid JSON body: %v", err)
	}
	var prompt []byte
	if t := compactJSON(bytes.TrimSpace(req.Tools)); len(t) > 0 && string(t) != "null" && string(t) != "[]" {
		prompt = append(prompt, t...)
	}
	for _, m := range req.Messages {
		prompt = append(prompt, compactJSON(m)...)
	}
	h := newPrefixHasher("openai", req.Model, req.PromptCacheKey)
	p := &cachePrompt{automatic: true}
	done := 0
	for t := r.MinTokens; 4*t <= len(prompt); t += openAIIncrement {
		h.stream(prompt[done : 4*t])
		done = 4 * t
		p.points = append(p.points, cachePoint{key: h.key(), tokens: int64(t)})
	}
	return p, nil
}
