package anthropic

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/hive-swarm/hive/internal/llm"
	"github.com/hive-swarm/hive/internal/llm/llmtest"
)

const testKey = "sk-ant-test-0123456789secret"

// start serves h with the Anthropic protocol, requiring testKey, and
// returns a model pointed at it.
func start(t *testing.T, h llmtest.Handler) (*llmtest.Server, *Model) {
	t.Helper()
	srv := llmtest.NewAnthropic(h)
	srv.APIKey = testKey
	t.Cleanup(srv.Close)
	return srv, New(Config{Model: "claude-test", BaseURL: srv.URL, APIKey: testKey})
}

func reply(r llmtest.Reply) llmtest.Handler { return func(*llmtest.Call) llmtest.Reply { return r } }

// call runs req through Generate or Stream, collecting stream deltas.
func call(ctx context.Context, m *Model, stream bool, req *llm.Request) (*llm.Response, []llm.Delta, error) {
	if !stream {
		r, err := m.Generate(ctx, req)
		return r, nil, err
	}
	var deltas []llm.Delta
	r, err := m.Stream(ctx, req, func(d llm.Delta) { deltas = append(deltas, d) })
	return r, deltas, err
}

var modes = []struct {
	name   string
	stream bool
}{{"generate", false}, {"stream", true}}

func TestText(t *testing.T) {
	for _, mode := range modes {
		t.Run(mode.name, func(t *testing.T) {
			text := "Bees dance to tell each other where the flowers are. Ünïcödé too."
			usage := llm.Usage{InputTokens: 21, OutputTokens: 17}
			srv, m := start(t, reply(llmtest.Reply{Text: text, Usage: &usage}))
			req := &llm.Request{System: "Be brief.", Messages: []llm.Message{llm.UserText("Why do bees dance?")}}
			resp, deltas, err := call(context.Background(), m, mode.stream, req)
			if err != nil {
				t.Fatal(err)
			}
			if resp.Text() != text || len(resp.Parts) != 1 {
				t.Errorf("parts = %#v, want one text %q", resp.Parts, text)
			}
			if resp.StopReason != llm.StopEnd || resp.Usage != usage || resp.Model != "claude-test" || !strings.HasPrefix(resp.ID, "msg_") {
				t.Errorf("resp = %+v", resp)
			}
			if mode.stream {
				var b strings.Builder
				for _, d := range deltas {
					if d.ToolCall != nil {
						t.Errorf("unexpected tool delta %+v", d.ToolCall)
					}
					b.WriteString(d.Text)
				}
				if b.String() != text || len(deltas) < 3 {
					t.Errorf("%d deltas make %q, want several making %q", len(deltas), b.String(), text)
				}
			}
			if n := srv.Requests(); n != 1 {
				t.Fatalf("%d requests, want 1", n)
			}
			c := srv.Calls()[0]
			if c.Model != "claude-test" || c.System != "Be brief." || c.MaxTokens != DefaultMaxTokens || c.Stream != mode.stream {
				t.Errorf("call = model %q system %q max_tokens %d stream %v", c.Model, c.System, c.MaxTokens, c.Stream)
			}
			if c.LastUserText() != "Why do bees dance?" {
				t.Errorf("user text = %q", c.LastUserText())
			}
			if c.Header.Get("X-Api-Key") != testKey || c.Header.Get("Anthropic-Version") == "" {
				t.Errorf("headers x-api-key/anthropic-version missing: %v", c.Header)
			}
		})
	}
}

func TestToolCalls(t *testing.T) {
	calls := []llmtest.ToolCall{
		{ID: "toolu_a", Name: "weather", Input: `{"city":"Paris","unit":"celsius","days":[1,2,3]}`},
		{ID: "toolu_b", Name: "time", Input: `{"tz":"Europe/Paris"}`},
	}
	for _, mode := range modes {
		for _, n := range []int{1, 2} {
			t.Run(mode.name+"/"+string(rune('0'+n)), func(t *testing.T) {
				_, m := start(t, reply(llmtest.Reply{Text: "Let me look.", ToolCalls: calls[:n]}))
				req := &llm.Request{
					Messages: []llm.Message{llm.UserText("Weather and time in Paris?")},
					Tools:    []llm.Tool{{Name: "weather"}, {Name: "time"}},
				}
				resp, deltas, err := call(context.Background(), m, mode.stream, req)
				if err != nil {
					t.Fatal(err)
				}
				if resp.StopReason != llm.StopToolUse || resp.Text() != "Let me look." {
					t.Errorf("stop %q text %q", resp.StopReason, resp.Text())
				}
				got := resp.ToolCalls()
				if len(got) != n {
					t.Fatalf("%d tool calls, want %d", len(got), n)
				}
				for i, c := range got {
					want := calls[i]
					if c.ID != want.ID || c.Name != want.Name || !jsonEqual(c.Input, want.Input) {
						t.Errorf("call %d = %s %s %s, want %+v", i, c.ID, c.Name, c.Input, want)
					}
				}
				if !mode.stream {
					return
				}
				inputs := make([]string, n)
				for _, d := range deltas {
					tc := d.ToolCall
					if tc == nil {
						continue
					}
					if tc.Index < 0 || tc.Index >= n {
						t.Fatalf("delta index %d", tc.Index)
					}
					if inputs[tc.Index] == "" && tc.Input == "" && (tc.ID != calls[tc.Index].ID || tc.Name != calls[tc.Index].Name) {
						t.Errorf("first delta of call %d = %+v, want its id and name", tc.Index, tc)
					}
					inputs[tc.Index] += tc.Input
				}
				for i := range n {
					if inputs[i] != calls[i].Input {
						t.Errorf("streamed input %d = %q, want %q", i, inputs[i], calls[i].Input)
					}
				}
			})
		}
	}
}

func TestMalformedToolInput(t *testing.T) {
	const bad = `{"city": "Par`
	for _, mode := range modes {
		t.Run(mode.name, func(t *testing.T) {
			_, m := start(t, reply(llmtest.Reply{ToolCalls: []llmtest.ToolCall{{Name: "weather", Input: bad}}}))
			resp, _, err := call(context.Background(), m, mode.stream, &llm.Request{Messages: []llm.Message{llm.UserText("hi")}})
			if err != nil {
				t.Fatal(err)
			}
			tc := resp.ToolCalls()
			if len(tc) != 1 || string(tc[0].Input) != bad || tc[0].ID == "" {
				t.Fatalf("tool calls = %+v, want one with input %q verbatim", tc, bad)
			}
		})
	}
}

func jsonEqual(a json.RawMessage, b string) bool {
	var x, y any
	return json.Unmarshal(a, &x) == nil && json.Unmarshal([]byte(b), &y) == nil && reflect.DeepEqual(x, y)
}

// TestRequest checks that every part of a request reaches the server as
// the Messages API defines it.
func TestRequest(t *testing.T) {
	png := []byte("\x89PNG\r\n\x1a\nnot really")
	temp := 0.25
	serial := false
	req := &llm.Request{
		Model:     "claude-other",
		System:    "You are a weather bot.",
		MaxTokens: 123,
		Tools: []llm.Tool{
			{Name: "weather", Description: "Weather by city", Schema: json.RawMessage(`{"type":"object","properties":{"city":{"type":"string"}},"required":["city"],"additionalProperties":false}`)},
			{Name: "noargs"},
		},
		ToolChoice:        llm.ToolChoice{Mode: llm.ToolName, Name: "weather"},
		ParallelToolCalls: &serial,
		Temperature:       &temp,
		Stop:              []string{"\n\nHuman:", "END"},
		Messages: []llm.Message{
			{Role: llm.RoleUser, Parts: []llm.Part{
				llm.Text{Text: "What is this and the weather?"},
				llm.Image{MediaType: "image/png", Data: png},
				llm.Image{URL: "https://example.invalid/cat.jpg"},
			}},
			{Role: llm.RoleAssistant, Parts: []llm.Part{
				llm.Text{Text: "Checking."},
				llm.ToolCall{ID: "toolu_1", Name: "weather", Input: json.RawMessage(`{"city":"Oslo"}`)},
				llm.ToolCall{ID: "toolu_2", Name: "weather", Input: json.RawMessage(`{"city":`)},
			}},
			{Role: llm.RoleUser, Parts: []llm.Part{
				llm.ToolResult{CallID: "toolu_1", Content: "-3C, snow"},
				llm.ToolResult{CallID: "toolu_2", Content: "bad arguments", IsError: true},
			}},
		},
	}
	srv, m := start(t, reply(llmtest.Reply{Text: "ok"}))
	if _, err := m.Generate(context.Background(), req); err != nil {
		t.Fatal(err)
	}
	c := srv.Calls()[0]
	if c.Model != "claude-other" || c.MaxTokens != 123 || c.System != req.System {
		t.Errorf("model %q max_tokens %d system %q", c.Model, c.MaxTokens, c.System)
	}
	if !reflect.DeepEqual(c.Tools, []string{"weather", "noargs"}) {
		t.Errorf("tools = %v", c.Tools)
	}
	want := []llm.Message{
		req.Messages[0],
		{Role: llm.RoleAssistant, Parts: []llm.Part{
			llm.Text{Text: "Checking."},
			llm.ToolCall{ID: "toolu_1", Name: "weather", Input: json.RawMessage(`{"city":"Oslo"}`)},
			// Malformed arguments go back wrapped, as the API takes only objects.
			llm.ToolCall{ID: "toolu_2", Name: "weather", Input: json.RawMessage(`{"INVALID_JSON":"{\"city\":"}`)},
		}},
		req.Messages[2],
	}
	if !reflect.DeepEqual(c.Messages, want) {
		t.Errorf("messages =\n%#v\nwant\n%#v", c.Messages, want)
	}
	var body struct {
		Temperature   float64           `json:"temperature"`
		StopSequences []string          `json:"stop_sequences"`
		ToolChoice    map[string]any    `json:"tool_choice"`
		Tools         []json.RawMessage `json:"tools"`
	}
	if err := json.Unmarshal(c.Body, &body); err != nil {
		t.Fatal(err)
	}
	if body.Temperature != temp || !reflect.DeepEqual(body.StopSequences, req.Stop) {
		t.Errorf("temperature %v stop %q", body.Temperature, body.StopSequences)
	}
	if !reflect.DeepEqual(body.ToolChoice, map[string]any{"type": "tool", "name": "weather", "disable_parallel_tool_use": true}) {
		t.Errorf("tool_choice = %v", body.ToolChoice)
	}
	if len(body.Tools) != 2 ||
		!jsonEqual(body.Tools[0], `{"name":"weather","description":"Weather by city","input_schema":`+string(req.Tools[0].Schema)+`}`) ||
		!jsonEqual(body.Tools[1], `{"name":"noargs","input_schema":{"type":"object"}}`) {
		t.Errorf("tools = %s", body.Tools)
	}
}

func TestToolChoice(t *testing.T) {
	f := false
	tests := []struct {
		name     string
		choice   llm.ToolChoice
		parallel *bool
		want     string // the tool_choice JSON, "" for none sent
	}{
		{"auto", llm.ToolChoice{}, nil, ""},
		{"auto serial", llm.ToolChoice{}, &f, `{"type":"auto","disable_parallel_tool_use":true}`},
		{"any", llm.ToolChoice{Mode: llm.ToolAny}, nil, `{"type":"any"}`},
		{"any serial", llm.ToolChoice{Mode: llm.ToolAny}, &f, `{"type":"any","disable_parallel_tool_use":true}`},
		{"none", llm.ToolChoice{Mode: llm.ToolNone}, nil, `{"type":"none"}`},
		{"named", llm.ToolChoice{Mode: llm.ToolName, Name: "t"}, nil, `{"type":"tool","name":"t"}`},
	}
	srv, m := start(t, reply(llmtest.Reply{Text: "ok"}))
	for i, tt := range tests {
		req := &llm.Request{Messages: []llm.Message{llm.UserText("go")}, Tools: []llm.Tool{{Name: "t"}},
			ToolChoice: tt.choice, ParallelToolCalls: tt.parallel}
		if _, err := m.Generate(context.Background(), req); err != nil {
			t.Fatal(err)
		}
		var body struct {
			ToolChoice json.RawMessage `json:"tool_choice"`
		}
		json.Unmarshal(srv.Calls()[i].Body, &body)
		if tt.want == "" && body.ToolChoice != nil || tt.want != "" && !jsonEqual(body.ToolChoice, tt.want) {
			t.Errorf("%s: tool_choice = %s, want %s", tt.name, body.ToolChoice, tt.want)
		}
	}
}

func TestCache(t *testing.T) {
	usage := llm.Usage{InputTokens: 12, OutputTokens: 5, CacheWriteTokens: 2048, CacheReadTokens: 4096}
	conv := []llm.Message{
		{Role: llm.RoleUser, Parts: []llm.Part{llm.Text{Text: "long document"}, llm.Text{Text: "more"}}, Cache: true},
		llm.AssistantText("noted"),
		llm.UserText("question"),
	}
	tests := []struct {
		name  string
		req   llm.Request
		marks []string
	}{
		{"system and message", llm.Request{System: "sys", CacheSystem: true, Messages: conv, Tools: []llm.Tool{{Name: "t"}}},
			[]string{"system.0", "messages.0.content.1"}},
		{"tools only", llm.Request{CacheSystem: true, Messages: conv[2:], Tools: []llm.Tool{{Name: "a"}, {Name: "b"}}},
			[]string{"tools.1"}},
		{"tool result", llm.Request{Messages: []llm.Message{
			llm.UserText("run it"),
			{Role: llm.RoleAssistant, Parts: []llm.Part{llm.ToolCall{ID: "toolu_1", Name: "t", Input: json.RawMessage(`{}`)}}},
			{Role: llm.RoleUser, Parts: []llm.Part{llm.ToolResult{CallID: "toolu_1", Content: "big output"}}, Cache: true},
		}}, []string{"messages.2.content.0"}},
		{"none", llm.Request{System: "sys", Messages: conv[1:]}, nil},
		{"an hour", llm.Request{System: "sys", CacheSystem: true, CacheTTL: time.Hour, Messages: conv},
			[]string{"system.0", "messages.0.content.1"}},
	}
	for _, mode := range modes {
		for _, tt := range tests {
			t.Run(mode.name+"/"+tt.name, func(t *testing.T) {
				srv, m := start(t, reply(llmtest.Reply{Text: "cached", Usage: &usage}))
				resp, _, err := call(context.Background(), m, mode.stream, &tt.req)
				if err != nil {
					t.Fatal(err)
				}
				if resp.Usage != usage {
					t.Errorf("usage = %+v, want %+v", resp.Usage, usage)
				}
				c := srv.Calls()[0]
				if got := llmtest.AnthropicCacheMarks(c); !reflect.DeepEqual(got, tt.marks) {
					t.Errorf("cache marks = %q, want %q", got, tt.marks)
				}
				want := `"cache_control":{"type":"ephemeral"}`
				if tt.req.CacheTTL >= time.Hour {
					want = `"cache_control":{"ttl":"1h","type":"ephemeral"}`
				}
				if n := strings.Count(string(c.Body), want); n != len(tt.marks) || strings.Count(string(c.Body), `"cache_control"`) != n {
					t.Errorf("body has %d of %s, want %d: %s", n, want, len(tt.marks), c.Body)
				}
			})
		}
	}
}

func TestStopReasons(t *testing.T) {
	for _, mode := range modes {
		for _, stop := range []llm.StopReason{llm.StopEnd, llm.StopMaxTokens, llm.StopSequence, llm.StopRefusal} {
			t.Run(mode.name+"/"+string(stop), func(t *testing.T) {
				_, m := start(t, reply(llmtest.Reply{Text: "x", StopReason: stop}))
				resp, _, err := call(context.Background(), m, mode.stream,
					&llm.Request{Messages: []llm.Message{llm.UserText("go")}, Stop: []string{"END"}})
				if err != nil {
					t.Fatal(err)
				}
				if resp.StopReason != stop {
					t.Errorf("stop = %q, want %q", resp.StopReason, stop)
				}
			})
		}
	}
}

// TestNoEnvironment checks that the SDK's environment defaults are off:
// a model talks to its configured URL with its configured key only.
func TestNoEnvironment(t *testing.T) {
	t.Setenv("ANTHROPIC_BASE_URL", "http://127.0.0.1:1")
	t.Setenv("ANTHROPIC_API_KEY", "sk-from-env")
	t.Setenv("ANTHROPIC_CUSTOM_HEADERS", "X-Leak: yes")
	srv, m := start(t, reply(llmtest.Reply{Text: "ok"}))
	if _, err := m.Generate(context.Background(), &llm.Request{Messages: []llm.Message{llm.UserText("hi")}}); err != nil {
		t.Fatal(err)
	}
	h := srv.Calls()[0].Header
	if h.Get("X-Api-Key") != testKey || h.Get("X-Leak") != "" {
		t.Errorf("headers = %v", h)
	}
}

func TestNoModel(t *testing.T) {
	srv := llmtest.NewAnthropic(reply(llmtest.Reply{Text: "ok"}))
	defer srv.Close()
	m := New(Config{BaseURL: srv.URL})
	_, err := m.Generate(context.Background(), &llm.Request{Messages: []llm.Message{llm.UserText("hi")}})
	if llm.KindOf(err) != llm.KindBadRequest || srv.Requests() != 0 {
		t.Errorf("err = %v after %d requests, want bad request before any", err, srv.Requests())
	}
}

func TestConcurrent(t *testing.T) {
	srv, m := start(t, func(c *llmtest.Call) llmtest.Reply {
		return llmtest.Reply{Text: "echo " + c.LastUserText(), Latency: 5 * time.Millisecond}
	})
	const n = 16
	errs := make(chan error, n)
	for i := range n {
		go func() {
			q := "q" + string(rune('a'+i))
			resp, _, err := call(context.Background(), m, i%2 == 0, &llm.Request{Messages: []llm.Message{llm.UserText(q)}})
			if err == nil && resp.Text() != "echo "+q {
				err = &llm.Error{Message: "got " + resp.Text() + " for " + q}
			}
			errs <- err
		}()
	}
	for range n {
		if err := <-errs; err != nil {
			t.Error(err)
		}
	}
	if srv.Requests() != n || srv.MaxInFlight() < 2 {
		t.Errorf("requests %d max in flight %d", srv.Requests(), srv.MaxInFlight())
	}
}

// TestRunawayAnswer: a server that answers without end (here 200 MiB of
// a JSON string that never closes) is cut at 64 MiB with an error, in
// both modes, and Hive never holds the rest.
func TestRunawayAnswer(t *testing.T) {
	for _, mode := range modes {
		t.Run(mode.name, func(t *testing.T) {
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				chunk := strings.Repeat("x", 1<<20)
				if mode.stream {
					// Endless well-formed text deltas of 1 KiB.
					w.Header().Set("Content-Type", "text/event-stream")
					io.WriteString(w, "event: message_start\ndata: {\"type\":\"message_start\",\"message\":{\"id\":\"m\",\"type\":\"message\",\"role\":\"assistant\",\"content\":[],\"model\":\"x\",\"usage\":{\"input_tokens\":1,\"output_tokens\":1}}}\n\n"+
						"event: content_block_start\ndata: {\"type\":\"content_block_start\",\"index\":0,\"content_block\":{\"type\":\"text\",\"text\":\"\"}}\n\n")
					ev := "event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"text_delta\",\"text\":\"" + strings.Repeat("x", 1024) + "\"}}\n\n"
					chunk = strings.Repeat(ev, (1<<20)/len(ev))
				} else {
					w.Header().Set("Content-Type", "application/json")
					io.WriteString(w, `{"id": "m", "type": "message", "content": [{"type": "text", "text": "`)
				}
				for range 200 {
					if _, err := io.WriteString(w, chunk); err != nil {
						return
					}
				}
			}))
			defer srv.Close()
			m := New(Config{Model: "claude-test", BaseURL: srv.URL, APIKey: testKey})
			ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute) // 64 MiB of SSE through the SDK under -race on a loaded machine
			defer cancel()
			_, _, err := call(ctx, m, mode.stream, &llm.Request{Messages: []llm.Message{llm.UserText("hi")}})
			if err == nil || !strings.Contains(err.Error(), "longer than 64 MiB") {
				t.Fatalf("err = %v", err)
			}
		})
	}
}

// TestSimulatedCache runs the adapter against llmtest's cache simulator:
// a second identical request with a system breakpoint reads what the
// first wrote, a 1-hour breakpoint's write is CacheWrite1hTokens, and
// every usage adds up to the prompt the server counted.
func TestSimulatedCache(t *testing.T) {
	system := strings.Repeat("You are a careful reviewer. ", 300) // ~2000 tokens
	for _, mode := range modes {
		for _, ttl := range []time.Duration{0, time.Hour} {
			t.Run(fmt.Sprintf("%s/ttl=%v", mode.name, ttl), func(t *testing.T) {
				srv, m := start(t, reply(llmtest.Reply{Text: "ok"}))
				srv.SimulateCache(llmtest.CacheRules{})
				req := &llm.Request{System: system, CacheSystem: true, CacheTTL: ttl, Messages: []llm.Message{llm.UserText("review this")}}
				var us []llm.Usage
				for i := range 2 {
					resp, _, err := call(context.Background(), m, mode.stream, req)
					if err != nil {
						t.Fatal(err)
					}
					u := resp.Usage
					if total := int64(len(srv.Calls()[i].Body)/4 + 1); u.InputTokens+u.CacheReadTokens+u.CacheWriteTokens != total {
						t.Errorf("request %d: usage %+v does not add up to %d", i, u, total)
					}
					us = append(us, u)
				}
				first, second := us[0], us[1]
				if first.CacheWriteTokens < 1024 || first.CacheReadTokens != 0 {
					t.Errorf("first: %+v, want the system written", first)
				}
				if want := map[bool]int64{true: first.CacheWriteTokens}[ttl == time.Hour]; first.CacheWrite1hTokens != want {
					t.Errorf("first: 1h writes %d, want %d", first.CacheWrite1hTokens, want)
				}
				if second.CacheReadTokens != first.CacheWriteTokens || second.CacheWriteTokens != 0 || second.CacheWrite1hTokens != 0 {
					t.Errorf("second: %+v, want the %d written read back", second, first.CacheWriteTokens)
				}
				if st := srv.CacheStats(); st.Requests != 2 || st.Hits != 1 {
					t.Errorf("stats %+v", st)
				}
			})
		}
	}
}
