package llmtest

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"
)

// filler returns about n tokens of text, four bytes each, that start with
// tag so that different tags make different blocks.
func filler(tag string, n int) string {
	s := tag + " " + strings.Repeat("abcd", n)
	return s[:4*n]
}

// block is an Anthropic text block, with cache_control when ttl is "5m",
// "1h" or "default" (no ttl field).
func block(text, ttl string) map[string]any {
	b := map[string]any{"type": "text", "text": text}
	switch ttl {
	case "default":
		b["cache_control"] = map[string]any{"type": "ephemeral"}
	case "5m", "1h":
		b["cache_control"] = map[string]any{"type": "ephemeral", "ttl": ttl}
	}
	return b
}

func user(blocks ...map[string]any) map[string]any {
	return map[string]any{"role": "user", "content": blocks}
}

// anthropicReq is a Messages request body.
type anthropicReq struct {
	Tools      []map[string]any
	System     []map[string]any
	Messages   []map[string]any
	ToolChoice map[string]any
	Stream     bool
}

func (r anthropicReq) body(t *testing.T) string {
	t.Helper()
	m := map[string]any{"model": "claude-test", "max_tokens": 64, "messages": r.Messages}
	if r.Tools != nil {
		m["tools"] = r.Tools
	}
	if r.System != nil {
		m["system"] = r.System
	}
	if r.ToolChoice != nil {
		m["tool_choice"] = r.ToolChoice
	}
	if r.Stream {
		m["stream"] = true
	}
	b, err := json.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// wireCacheUsage is an Anthropic usage object.
type wireCacheUsage struct {
	InputTokens              int64 `json:"input_tokens"`
	CacheCreationInputTokens int64 `json:"cache_creation_input_tokens"`
	CacheReadInputTokens     int64 `json:"cache_read_input_tokens"`
	CacheCreation            *struct {
		Ephemeral5m int64 `json:"ephemeral_5m_input_tokens"`
		Ephemeral1h int64 `json:"ephemeral_1h_input_tokens"`
	} `json:"cache_creation"`
}

// anthropicCall sends r to srv and returns the usage of its answer, from
// the message or, streaming, from message_start. It checks that the
// usage adds up to the prompt's tokens.
func anthropicCall(t *testing.T, srv *Server, r anthropicReq) wireCacheUsage {
	t.Helper()
	body := r.body(t)
	resp, b := anthropicPost(t, srv, body, nil)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("status %d: %s", resp.StatusCode, b)
	}
	var u wireCacheUsage
	if r.Stream {
		evs := anthropicEvents(t, b)
		raw, _ := json.Marshal(evs[0].data["message"].(map[string]any)["usage"])
		json.Unmarshal(raw, &u)
	} else {
		var msg struct{ Usage wireCacheUsage }
		if err := json.Unmarshal(b, &msg); err != nil {
			t.Fatal(err)
		}
		u = msg.Usage
	}
	if total := int64(len(body)/4 + 1); u.InputTokens+u.CacheCreationInputTokens+u.CacheReadInputTokens != total {
		t.Errorf("usage %+v does not add up to the prompt's %d tokens", u, total)
	}
	if cc := u.CacheCreation; cc == nil || cc.Ephemeral5m+cc.Ephemeral1h != u.CacheCreationInputTokens {
		t.Errorf("cache_creation %+v does not split %d", cc, u.CacheCreationInputTokens)
	}
	return u
}

// tokens is how many tokens the cache counts for blocks (as a prefix).
func tokens(t *testing.T, blocks ...map[string]any) int64 {
	t.Helper()
	var n int
	for _, b := range blocks {
		c := map[string]any{}
		for k, v := range b {
			if k != "cache_control" {
				c[k] = v
			}
		}
		raw, _ := json.Marshal(c)
		n += len(raw)
	}
	return int64(n / 4)
}

func newCached(t *testing.T, r CacheRules) *Server {
	t.Helper()
	srv := NewAnthropic(Sequence(Reply{Text: "ok"}))
	srv.SimulateCache(r)
	t.Cleanup(srv.Close)
	return srv
}

func TestAnthropicCacheWriteThenRead(t *testing.T) {
	for _, stream := range []bool{false, true} {
		t.Run(fmt.Sprint("stream=", stream), func(t *testing.T) {
			srv := newCached(t, CacheRules{})
			sys := block(filler("system", 2000), "default")
			req := anthropicReq{System: []map[string]any{sys}, Messages: []map[string]any{user(block("hi", ""))}, Stream: stream}
			want := tokens(t, sys)

			first := anthropicCall(t, srv, req)
			if first.CacheCreationInputTokens != want || first.CacheReadInputTokens != 0 || first.CacheCreation.Ephemeral5m != want {
				t.Errorf("first: %+v, want %d written", first, want)
			}
			second := anthropicCall(t, srv, req)
			if second.CacheReadInputTokens != want || second.CacheCreationInputTokens != 0 {
				t.Errorf("second: %+v, want %d read", second, want)
			}
			if second.InputTokens != first.InputTokens {
				t.Errorf("uncached input %d then %d", first.InputTokens, second.InputTokens)
			}
			st := srv.CacheStats()
			wantStats := CacheStats{Requests: 2, Hits: 1, ReadTokens: want, WriteTokens: want, UncachedTokens: first.InputTokens + second.InputTokens}
			if st != wantStats {
				t.Errorf("stats %+v, want %+v", st, wantStats)
			}
		})
	}
}

func TestAnthropicCacheBelowMinTokens(t *testing.T) {
	srv := newCached(t, CacheRules{})
	req := anthropicReq{System: []map[string]any{block(filler("short", 1000), "default")}, Messages: []map[string]any{user(block("hi", ""))}}
	for i := range 2 {
		if u := anthropicCall(t, srv, req); u.CacheCreationInputTokens != 0 || u.CacheReadInputTokens != 0 {
			t.Errorf("request %d: %+v, want nothing cached below 1024 tokens", i, u)
		}
	}
	// A lower minimum caches the same prompt.
	srv = newCached(t, CacheRules{MinTokens: 512})
	if u := anthropicCall(t, srv, req); u.CacheCreationInputTokens == 0 {
		t.Errorf("MinTokens 512: %+v, want a write", u)
	}
}

func TestAnthropicCacheBreakpointLimit(t *testing.T) {
	srv := newCached(t, CacheRules{})
	var blocks []map[string]any
	for i := range 5 {
		blocks = append(blocks, block(fmt.Sprint("part ", i), "default"))
	}
	body := anthropicReq{Messages: []map[string]any{user(blocks...)}}.body(t)
	resp, b := anthropicPost(t, srv, body, nil)
	var e struct {
		Error struct{ Type, Message string }
	}
	json.Unmarshal(b, &e)
	if resp.StatusCode != http.StatusBadRequest || e.Error.Type != "invalid_request_error" || !strings.Contains(e.Error.Message, "maximum of 4 blocks with cache_control") {
		t.Errorf("5 breakpoints: %d %s", resp.StatusCode, b)
	}
	anthropicCall(t, srv, anthropicReq{Messages: []map[string]any{user(blocks[:4]...)}})

	// Without the simulator the server takes them, as it always has.
	plain := NewAnthropic(Sequence(Reply{Text: "ok"}))
	defer plain.Close()
	if resp, b := anthropicPost(t, plain, body, nil); resp.StatusCode != http.StatusOK {
		t.Errorf("caching off: %d %s", resp.StatusCode, b)
	}
}

// TestAnthropicCacheLookback: a breakpoint finds an entry ending up to 19
// blocks before it (20 positions, its own first), not 20.
func TestAnthropicCacheLookback(t *testing.T) {
	sys := block(filler("system", 2000), "")
	var parts []map[string]any
	for i := range 40 {
		parts = append(parts, block(fmt.Sprintf("block %02d", i), ""))
	}
	// The request marking block n; the blocks after it are not sent.
	upTo := func(n int) anthropicReq {
		blocks := append([]map[string]any(nil), parts[:n+1]...)
		blocks[n] = block(parts[n]["text"].(string), "default")
		return anthropicReq{System: []map[string]any{sys}, Messages: []map[string]any{user(blocks...)}}
	}
	for _, tt := range []struct {
		later int
		hit   bool
	}{{5 + 19, true}, {5 + 20, false}} {
		srv := newCached(t, CacheRules{})
		anthropicCall(t, srv, upTo(5))
		u := anthropicCall(t, srv, upTo(tt.later))
		want := int64(0)
		if tt.hit {
			want = tokens(t, append([]map[string]any{sys}, parts[:6]...)...)
		}
		if u.CacheReadInputTokens != want {
			t.Errorf("breakpoint %d blocks after the entry: read %d, want %d", tt.later-5, u.CacheReadInputTokens, want)
		}
		if all := tokens(t, append([]map[string]any{sys}, parts[:tt.later+1]...)...); u.CacheReadInputTokens+u.CacheCreationInputTokens != all {
			t.Errorf("read %d + written %d, want the %d up to the breakpoint", u.CacheReadInputTokens, u.CacheCreationInputTokens, all)
		}
	}
}

// fakeClock is a settable clock.
type fakeClock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

func TestAnthropicCacheTTL(t *testing.T) {
	clock := &fakeClock{now: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)}
	srv := newCached(t, CacheRules{Now: clock.Now})
	sys := block(filler("system", 2000), "default")
	req := anthropicReq{System: []map[string]any{sys}, Messages: []map[string]any{user(block("hi", ""))}}
	read := func(step string) bool {
		t.Helper()
		u := anthropicCall(t, srv, req)
		if (u.CacheReadInputTokens > 0) == (u.CacheCreationInputTokens > 0) {
			t.Errorf("%s: %+v, want a read or a write", step, u)
		}
		return u.CacheReadInputTokens > 0
	}
	if read("first") {
		t.Error("first request read the cache")
	}
	clock.advance(4 * time.Minute)
	if !read("after 4m") {
		t.Error("entry gone after 4 minutes")
	}
	clock.advance(4 * time.Minute) // 8m after the write, 4m after the read
	if !read("after 4m more") {
		t.Error("a read did not refresh the entry")
	}
	clock.advance(5 * time.Minute)
	if read("after 5m idle") {
		t.Error("entry outlived its 5 minutes")
	}

	// A 1-hour entry lives an hour; a configured TTL sets the others'.
	srv = newCached(t, CacheRules{Now: clock.Now, TTL: 10 * time.Minute})
	hour := anthropicReq{System: []map[string]any{block(filler("hourly", 2000), "1h")}, Messages: req.Messages}
	ten := anthropicReq{System: []map[string]any{block(filler("tenmin", 2000), "default")}, Messages: req.Messages}
	anthropicCall(t, srv, hour)
	anthropicCall(t, srv, ten)
	clock.advance(9 * time.Minute)
	if u := anthropicCall(t, srv, ten); u.CacheReadInputTokens == 0 {
		t.Errorf("10m TTL after 9m: %+v", u)
	}
	clock.advance(11 * time.Minute)
	if u := anthropicCall(t, srv, ten); u.CacheReadInputTokens != 0 {
		t.Errorf("10m TTL after 11m idle: %+v", u)
	}
	clock.advance(39 * time.Minute) // 59m after the write
	if u := anthropicCall(t, srv, hour); u.CacheReadInputTokens == 0 {
		t.Errorf("1h entry after 59m: %+v", u)
	}
	clock.advance(61 * time.Minute)
	if u := anthropicCall(t, srv, hour); u.CacheReadInputTokens != 0 {
		t.Errorf("1h entry after 61m idle: %+v", u)
	}
}

func TestAnthropicCacheHourSplit(t *testing.T) {
	srv := newCached(t, CacheRules{})
	sys := block(filler("system", 1500), "1h")
	doc := block(filler("document", 1000), "5m")
	req := anthropicReq{System: []map[string]any{sys}, Messages: []map[string]any{user(doc, block("question", ""))}}
	u := anthropicCall(t, srv, req)
	hour, rest := tokens(t, sys), tokens(t, sys, doc)-tokens(t, sys)
	if u.CacheCreation.Ephemeral1h != hour || u.CacheCreation.Ephemeral5m != rest || u.CacheCreationInputTokens != hour+rest {
		t.Errorf("usage %+v, cache_creation %+v; want 1h %d, 5m %d", u, *u.CacheCreation, hour, rest)
	}
	// The system entry is read, the document written again at 5 minutes.
	req.Messages = []map[string]any{user(block(filler("other", 1000), "5m"))}
	u = anthropicCall(t, srv, req)
	if u.CacheReadInputTokens != hour || u.CacheCreation.Ephemeral1h != 0 || u.CacheCreation.Ephemeral5m == 0 {
		t.Errorf("second: %+v %+v", u, *u.CacheCreation)
	}

	// 1h after 5m is refused.
	bad := anthropicReq{System: []map[string]any{block("sys", "5m")}, Messages: []map[string]any{user(block("doc", "1h"))}}.body(t)
	resp, b := anthropicPost(t, srv, bad, nil)
	if resp.StatusCode != http.StatusBadRequest || !strings.Contains(string(b), "ttl='1h' must not come after") {
		t.Errorf("1h after 5m: %d %s", resp.StatusCode, b)
	}
}

// TestAnthropicCacheConcurrent: an entry becomes readable when its
// writer's response starts, so two identical requests processed together
// both miss and both write; a third, later, reads.
func TestAnthropicCacheConcurrent(t *testing.T) {
	var mu sync.Mutex
	arrived := 0
	both := make(chan struct{})
	srv := NewAnthropic(func(c *Call) Reply {
		if c.N <= 2 {
			mu.Lock()
			if arrived++; arrived == 2 {
				close(both)
			}
			mu.Unlock()
			<-both // both have been looked up before either answers
		}
		return Reply{Text: "ok"}
	})
	srv.SimulateCache(CacheRules{})
	defer srv.Close()
	req := anthropicReq{System: []map[string]any{block(filler("system", 2000), "default")}, Messages: []map[string]any{user(block("hi", ""))}}
	var wg sync.WaitGroup
	us := make([]wireCacheUsage, 2)
	for i := range us {
		wg.Go(func() { us[i] = anthropicCall(t, srv, req) })
	}
	wg.Wait()
	for i, u := range us {
		if u.CacheCreationInputTokens == 0 || u.CacheReadInputTokens != 0 {
			t.Errorf("concurrent request %d: %+v, want a write", i, u)
		}
	}
	if u := anthropicCall(t, srv, req); u.CacheReadInputTokens == 0 {
		t.Errorf("later request: %+v, want a read", u)
	}
	if st := srv.CacheStats(); st.Requests != 3 || st.Hits != 1 || st.WriteTokens != 2*us[0].CacheCreationInputTokens {
		t.Errorf("stats %+v", st)
	}
}

// TestAnthropicCacheToolChoice: a new tool_choice invalidates the cached
// messages but not tools and system; new tools invalidate everything.
func TestAnthropicCacheToolChoice(t *testing.T) {
	srv := newCached(t, CacheRules{})
	tools := []map[string]any{{"name": "search", "input_schema": map[string]any{"type": "object"}}}
	sys := block(filler("system", 1500), "default")
	doc := block(filler("document", 1500), "default")
	req := anthropicReq{Tools: tools, System: []map[string]any{sys}, Messages: []map[string]any{user(doc)}, ToolChoice: map[string]any{"type": "auto"}}
	toSys := tokens(t, tools[0], sys)
	all := tokens(t, tools[0], sys, doc)

	anthropicCall(t, srv, req)
	if u := anthropicCall(t, srv, req); u.CacheReadInputTokens != all {
		t.Errorf("same request: %+v, want %d read", u, all)
	}
	req.ToolChoice = map[string]any{"type": "any"}
	if u := anthropicCall(t, srv, req); u.CacheReadInputTokens != toSys || u.CacheCreationInputTokens != all-toSys {
		t.Errorf("new tool_choice: %+v, want %d read (tools and system), %d written", u, toSys, all-toSys)
	}
	req.Tools = []map[string]any{{"name": "fetch", "input_schema": map[string]any{"type": "object"}}}
	if u := anthropicCall(t, srv, req); u.CacheReadInputTokens != 0 {
		t.Errorf("new tools: %+v, want a miss", u)
	}
}

// TestAnthropicCacheNoBreakpoints: Anthropic caches only at breakpoints;
// a request without any reads and writes nothing, however long.
func TestAnthropicCacheNoBreakpoints(t *testing.T) {
	srv := newCached(t, CacheRules{})
	req := anthropicReq{System: []map[string]any{block(filler("system", 3000), "")}, Messages: []map[string]any{user(block("hi", ""))}}
	for i := range 2 {
		if u := anthropicCall(t, srv, req); u.CacheCreationInputTokens != 0 || u.CacheReadInputTokens != 0 {
			t.Errorf("request %d: %+v, want nothing cached without a breakpoint", i, u)
		}
	}
	if st := srv.CacheStats(); st.Requests != 2 || st.Hits != 0 || st.WriteTokens != 0 {
		t.Errorf("stats %+v", st)
	}
}

// TestCacheOff: without SimulateCache usage is what it always was.
func TestCacheOff(t *testing.T) {
	srv := NewAnthropic(Sequence(Reply{Text: "ok"}))
	defer srv.Close()
	body := anthropicReq{System: []map[string]any{block(filler("system", 2000), "default")}, Messages: []map[string]any{user(block("hi", ""))}}.body(t)
	for range 2 {
		_, b := anthropicPost(t, srv, body, nil)
		var msg struct{ Usage map[string]any }
		json.Unmarshal(b, &msg)
		want := map[string]any{"input_tokens": float64(len(body)/4 + 1), "cache_creation_input_tokens": 0.0, "cache_read_input_tokens": 0.0, "output_tokens": 1.0}
		if fmt.Sprint(msg.Usage) != fmt.Sprint(want) {
			t.Errorf("usage %v, want %v", msg.Usage, want)
		}
	}
	if st := srv.CacheStats(); st != (CacheStats{}) {
		t.Errorf("stats %+v", st)
	}

	oa := NewOpenAI(Sequence(Reply{Text: "ok"}))
	defer oa.Close()
	obody := openAIReq(t, "", filler("system", 2000), "hi", false)
	for range 2 {
		u := openAIUsage(t, oa, obody)
		if u.PromptTokens != int64(len(obody)/4+1) || u.Details.CachedTokens != 0 {
			t.Errorf("usage %+v", u)
		}
	}
}

// openAIReq is a chat completion request body.
func openAIReq(t *testing.T, key, system, user string, stream bool) string {
	t.Helper()
	m := map[string]any{"model": "gpt-test", "messages": []map[string]any{
		{"role": "system", "content": system},
		{"role": "user", "content": user},
	}}
	if key != "" {
		m["prompt_cache_key"] = key
	}
	if stream {
		m["stream"] = true
		m["stream_options"] = map[string]any{"include_usage": true}
	}
	b, err := json.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

type oaWireUsage struct {
	PromptTokens int64 `json:"prompt_tokens"`
	Details      struct {
		CachedTokens int64 `json:"cached_tokens"`
	} `json:"prompt_tokens_details"`
}

// openAIUsage posts body and returns the usage, from the response or the
// stream's usage chunk.
func openAIUsage(t *testing.T, srv *Server, body string) oaWireUsage {
	t.Helper()
	res, err := http.Post(srv.URL+"/v1/chat/completions", "application/json", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	if res.StatusCode != http.StatusOK {
		t.Fatalf("status %d: %s", res.StatusCode, b)
	}
	var out struct{ Usage *oaWireUsage }
	if strings.HasPrefix(res.Header.Get("Content-Type"), "text/event-stream") {
		for _, ev := range strings.Split(strings.TrimSpace(string(b)), "\n\n") {
			json.Unmarshal([]byte(strings.TrimPrefix(ev, "data: ")), &out)
			if out.Usage != nil {
				break
			}
		}
	} else {
		json.Unmarshal(b, &out)
	}
	if out.Usage == nil {
		t.Fatalf("no usage in %s", b)
	}
	if want := int64(len(body)/4 + 1); out.Usage.PromptTokens != want {
		t.Errorf("prompt_tokens %d, want the whole prompt's %d", out.Usage.PromptTokens, want)
	}
	return *out.Usage
}

func TestOpenAICache(t *testing.T) {
	for _, stream := range []bool{false, true} {
		t.Run(fmt.Sprint("stream=", stream), func(t *testing.T) {
			srv := NewOpenAI(Sequence(Reply{Text: "ok"}))
			srv.SimulateCache(CacheRules{})
			defer srv.Close()
			sys := filler("system", 1500)
			first := openAIUsage(t, srv, openAIReq(t, "", sys, "question one", stream))
			if first.Details.CachedTokens != 0 {
				t.Errorf("first: %+v", first)
			}
			// The shared prefix: the system message and the start of the
			// user one, up to where the questions differ.
			sysMsg, _ := json.Marshal(map[string]any{"role": "system", "content": sys})
			shared := len(sysMsg) + len(`{"content":"question `)
			want := int64(1024)
			for 4*(want+128) <= int64(shared) {
				want += 128
			}
			second := openAIUsage(t, srv, openAIReq(t, "", sys, "question two", stream))
			if second.Details.CachedTokens != want {
				t.Errorf("second: cached %d, want %d (of %d shared bytes, in 128-token steps)", second.Details.CachedTokens, want, shared)
			}
			if st := srv.CacheStats(); st.Requests != 2 || st.Hits != 1 || st.ReadTokens != want || st.WriteTokens != 0 ||
				st.UncachedTokens != first.PromptTokens+second.PromptTokens-want {
				t.Errorf("stats %+v", st)
			}
		})
	}
}

func TestOpenAICacheRules(t *testing.T) {
	srv := NewOpenAI(Sequence(Reply{Text: "ok"}))
	srv.SimulateCache(CacheRules{})
	defer srv.Close()
	// Under 1024 tokens nothing is cached.
	short := openAIReq(t, "", filler("short", 900), "q", false)
	openAIUsage(t, srv, short)
	if u := openAIUsage(t, srv, short); u.Details.CachedTokens != 0 {
		t.Errorf("short prompt: %+v", u)
	}
	// A prompt_cache_key keys the cache: another key misses, the same hits.
	long := filler("system", 3000)
	openAIUsage(t, srv, openAIReq(t, "run-1", long, "q", false))
	if u := openAIUsage(t, srv, openAIReq(t, "run-2", long, "q", false)); u.Details.CachedTokens != 0 {
		t.Errorf("other key: %+v", u)
	}
	u := openAIUsage(t, srv, openAIReq(t, "run-1", long, "q", false))
	if c := u.Details.CachedTokens; c < 2944 || (c-1024)%128 != 0 {
		t.Errorf("same key: cached %d, want the longest 1024+128k prefix", c)
	}
}

// TestAnthropicCacheAutomatic: a top-level cache_control is a breakpoint
// on the last block.
func TestAnthropicCacheAutomatic(t *testing.T) {
	srv := newCached(t, CacheRules{})
	sys := filler("system", 2000)
	body := fmt.Sprintf(`{"model":"claude-test","max_tokens":64,"cache_control":{"type":"ephemeral"},"system":%q,"messages":[{"role":"user","content":"hi"}]}`, sys)
	want := int64((len(fmt.Sprintf("%q", sys)) + len(`"hi"`)) / 4)
	for i, read := range []bool{false, true} {
		_, b := anthropicPost(t, srv, body, nil)
		var msg struct{ Usage wireCacheUsage }
		json.Unmarshal(b, &msg)
		got := msg.Usage.CacheCreationInputTokens
		if read {
			got = msg.Usage.CacheReadInputTokens
		}
		if got != want {
			t.Errorf("request %d: %+v, want %d %s", i, msg.Usage, want, map[bool]string{false: "written", true: "read"}[read])
		}
	}
}
