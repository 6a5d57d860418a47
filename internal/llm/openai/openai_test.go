package openai_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/hive-swarm/hive/internal/llm"
	"github.com/hive-swarm/hive/internal/llm/llmtest"
	"github.com/hive-swarm/hive/internal/llm/openai"
)

func newModel(baseURL, apiKey string) llm.Model {
	return openai.New(openai.Config{Model: "gpt-test", BaseURL: baseURL + "/v1", APIKey: apiKey})
}

// TestConformance runs the suite against OpenAI's API and each
// OpenAI-compatible server's dialect: the scripted behaviour the suite
// checks is the same in all of them.
func TestConformance(t *testing.T) {
	for _, d := range dialects {
		t.Run(d.name, func(t *testing.T) {
			llmtest.TestModel(t, llmtest.Provider{Name: d.name, NewServer: d.serve, NewModel: newModel})
		})
	}
}

var dialects = []struct {
	name  string
	serve func(llmtest.Handler) *llmtest.Server
}{
	{"openai", llmtest.NewOpenAI},
	{"llama.cpp", llmtest.NewLlamaCpp},
	{"vllm", llmtest.NewVLLM},
	{"ollama", llmtest.NewOllama},
}

// body decodes the JSON body of a call.
func body(t *testing.T, c *llmtest.Call) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(c.Body, &m); err != nil {
		t.Fatal(err)
	}
	return m
}

func start(t *testing.T, h llmtest.Handler) (*llmtest.Server, *openai.Model) {
	t.Helper()
	srv := llmtest.NewOpenAI(h)
	t.Cleanup(srv.Close)
	return srv, openai.New(openai.Config{Model: "gpt-test", BaseURL: srv.URL + "/v1"})
}

func TestRequestBody(t *testing.T) {
	temp := 0.25
	no := false
	png := []byte("\x89PNG\r\n\x1a\n fake image bytes")
	tests := []struct {
		name  string
		req   llm.Request
		check func(t *testing.T, b map[string]any, c *llmtest.Call)
	}{
		{
			name: "defaults",
			req:  llm.Request{Messages: []llm.Message{llm.UserText("hi")}},
			check: func(t *testing.T, b map[string]any, c *llmtest.Call) {
				if b["model"] != "gpt-test" || b["max_tokens"] != float64(openai.DefaultMaxTokens) {
					t.Errorf("model %v, max_tokens %v", b["model"], b["max_tokens"])
				}
				for _, k := range []string{"tools", "tool_choice", "parallel_tool_calls", "temperature", "stop", "stream", "max_completion_tokens"} {
					if _, ok := b[k]; ok {
						t.Errorf("unexpected %s = %v", k, b[k])
					}
				}
				if msgs := b["messages"].([]any); msgs[0].(map[string]any)["content"] != "hi" {
					t.Errorf("plain text not sent as a string: %v", msgs[0])
				}
			},
		},
		{
			name: "knobs",
			req: llm.Request{
				Model: "other-model", System: "sys", Messages: []llm.Message{llm.UserText("hi")},
				Temperature: &temp, Stop: []string{"A", "B"}, MaxTokens: 77,
				Tools: []llm.Tool{{Name: "f", Description: "does f"}}, ToolChoice: llm.ToolChoice{Mode: llm.ToolAny}, ParallelToolCalls: &no,
			},
			check: func(t *testing.T, b map[string]any, c *llmtest.Call) {
				if b["model"] != "other-model" || b["temperature"] != 0.25 || b["max_tokens"] != float64(77) {
					t.Errorf("model %v temperature %v max_tokens %v", b["model"], b["temperature"], b["max_tokens"])
				}
				if !reflect.DeepEqual(b["stop"], []any{"A", "B"}) {
					t.Errorf("stop = %v", b["stop"])
				}
				if b["tool_choice"] != "required" || b["parallel_tool_calls"] != false {
					t.Errorf("tool_choice %v parallel %v", b["tool_choice"], b["parallel_tool_calls"])
				}
				fn := b["tools"].([]any)[0].(map[string]any)["function"].(map[string]any)
				want := map[string]any{"type": "object", "properties": map[string]any{}}
				if fn["name"] != "f" || fn["description"] != "does f" || !reflect.DeepEqual(fn["parameters"], want) {
					t.Errorf("tool = %v", fn)
				}
				if c.System != "sys" {
					t.Errorf("system = %q", c.System)
				}
			},
		},
		{
			name: "named tool and none",
			req: llm.Request{
				Messages: []llm.Message{llm.UserText("hi")},
				Tools:    []llm.Tool{{Name: "f"}}, ToolChoice: llm.ToolChoice{Mode: llm.ToolName, Name: "f"},
			},
			check: func(t *testing.T, b map[string]any, c *llmtest.Call) {
				want := map[string]any{"type": "function", "function": map[string]any{"name": "f"}}
				if !reflect.DeepEqual(b["tool_choice"], want) {
					t.Errorf("tool_choice = %v", b["tool_choice"])
				}
			},
		},
		{
			name: "images",
			req: llm.Request{Messages: []llm.Message{{Role: llm.RoleUser, Parts: []llm.Part{
				llm.Text{Text: "what is this?"},
				llm.Image{URL: "https://example.invalid/cat.jpg"},
				llm.Image{Data: png},
			}}}},
			check: func(t *testing.T, b map[string]any, c *llmtest.Call) {
				want := []llm.Part{
					llm.Text{Text: "what is this?"},
					llm.Image{URL: "https://example.invalid/cat.jpg"},
					llm.Image{MediaType: "image/png", Data: png},
				}
				if got := c.Messages[0].Parts; !reflect.DeepEqual(got, want) {
					t.Errorf("server saw parts %#v", got)
				}
			},
		},
		{
			name: "tool results then text",
			req: llm.Request{Messages: []llm.Message{
				llm.UserText("q"),
				{Role: llm.RoleAssistant, Parts: []llm.Part{llm.Text{Text: "calling"}, llm.ToolCall{ID: "c1", Name: "f"}}},
				{Role: llm.RoleUser, Parts: []llm.Part{llm.ToolResult{CallID: "c1", Content: "r1", IsError: true}, llm.Text{Text: "and now?"}}},
			}},
			check: func(t *testing.T, b map[string]any, c *llmtest.Call) {
				msgs := b["messages"].([]any)
				roles := []string{}
				for _, m := range msgs {
					roles = append(roles, m.(map[string]any)["role"].(string))
				}
				if !reflect.DeepEqual(roles, []string{"user", "assistant", "tool", "user"}) {
					t.Fatalf("roles = %v", roles)
				}
				call := msgs[1].(map[string]any)["tool_calls"].([]any)[0].(map[string]any)["function"].(map[string]any)
				if call["arguments"] != "{}" {
					t.Errorf("empty input sent as %q, want {}", call["arguments"])
				}
				if tool := msgs[2].(map[string]any); tool["tool_call_id"] != "c1" || tool["content"] != "r1" {
					t.Errorf("tool message = %v", tool)
				}
			},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			srv, m := start(t, llmtest.Sequence(llmtest.Reply{Text: "ok"}))
			if _, err := m.Generate(context.Background(), &tc.req); err != nil {
				t.Fatal(err)
			}
			c := srv.Calls()[0]
			tc.check(t, body(t, c), c)
		})
	}
}

func TestStreamRequestAsksForUsage(t *testing.T) {
	srv, m := start(t, llmtest.Sequence(llmtest.Reply{Text: "ok"}))
	if _, err := m.Stream(context.Background(), &llm.Request{Messages: []llm.Message{llm.UserText("hi")}}, nil); err != nil {
		t.Fatal(err)
	}
	b := body(t, srv.Calls()[0])
	if b["stream"] != true || !reflect.DeepEqual(b["stream_options"], map[string]any{"include_usage": true}) {
		t.Errorf("stream %v, stream_options %v", b["stream"], b["stream_options"])
	}
}

func TestBadRequestsAreNotSent(t *testing.T) {
	srv, m := start(t, llmtest.Sequence(llmtest.Reply{Text: "ok"}))
	noModel := openai.New(openai.Config{BaseURL: srv.URL + "/v1"})
	tests := []struct {
		name string
		m    *openai.Model
		req  llm.Request
	}{
		{"no model", noModel, llm.Request{Messages: []llm.Message{llm.UserText("hi")}}},
		{"bad schema", m, llm.Request{Messages: []llm.Message{llm.UserText("hi")}, Tools: []llm.Tool{{Name: "f", Schema: json.RawMessage(`[1`)}}}},
		{"image without data", m, llm.Request{Messages: []llm.Message{{Role: llm.RoleUser, Parts: []llm.Part{llm.Image{}}}}}},
		{"named choice without name", m, llm.Request{Messages: []llm.Message{llm.UserText("hi")}, Tools: []llm.Tool{{Name: "f"}}, ToolChoice: llm.ToolChoice{Mode: llm.ToolName}}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := tc.m.Generate(context.Background(), &tc.req)
			if k := llm.KindOf(err); k != llm.KindBadRequest {
				t.Errorf("kind %v (%v), want bad_request", k, err)
			}
		})
	}
	if n := srv.Requests(); n != 0 {
		t.Errorf("%d requests sent", n)
	}
}

func TestUnreachable(t *testing.T) {
	// A port that was just free: nothing listens there.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	base := "http://" + ln.Addr().String() + "/v1"
	ln.Close()
	const key = "sk-secret-unreachable-42"
	m := openai.New(openai.Config{Model: "m", BaseURL: base, APIKey: key})
	for _, stream := range []bool{false, true} {
		var err error
		req := &llm.Request{Messages: []llm.Message{llm.UserText("hi")}}
		if stream {
			_, err = m.Stream(context.Background(), req, nil)
		} else {
			_, err = m.Generate(context.Background(), req)
		}
		var e *llm.Error
		if !errors.As(err, &e) || e.Kind != llm.KindTransient || e.Provider != "openai" {
			t.Fatalf("error %v, want a transient *llm.Error", err)
		}
		if !strings.Contains(e.Message, base) || strings.Contains(err.Error(), key) || strings.Contains(err.Error(), "\n") {
			t.Errorf("message %q should name %s on one line without the key", e.Message, base)
		}
		if testing.Verbose() {
			t.Log(err)
		}
	}
}

func TestWireMessages(t *testing.T) {
	tests := []struct {
		name   string
		reply  llmtest.Reply
		stream bool
		want   []string
	}{
		{"html", llmtest.Reply{HTML: true}, false, []string{"did not answer JSON", "text/html"}},
		{"html stream", llmtest.Reply{HTML: true}, true, []string{"did not answer JSON", "text/html"}},
		{"html 502", llmtest.Reply{HTML: true, Status: 502}, false, []string{"did not answer JSON", "text/html"}},
		{"malformed", llmtest.Reply{Malformed: true}, false, []string{"did not answer JSON", "malformed"}},
		{"malformed stream", llmtest.Reply{Malformed: true}, true, []string{"not an event stream"}},
		{"truncated", llmtest.Reply{Text: "a b c", TruncateAfter: 2}, true, []string{"stream ended early"}},
		{"no done", llmtest.Reply{Text: "a b c", TruncateAfter: 6}, true, []string{"stream ended early", "[DONE]"}},
		{"context code", llmtest.Reply{Status: 400, ErrorType: "context_length_exceeded", ErrorMessage: "too many tokens"}, false, []string{"context_too_long", "too many tokens", "context_length_exceeded"}},
		{"quota", llmtest.Reply{Status: 429, ErrorMessage: "You exceeded your current quota"}, false, []string{"rate_limited", "rate_limit_exceeded"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, m := start(t, llmtest.Sequence(tc.reply))
			req := &llm.Request{Messages: []llm.Message{llm.UserText("hi")}}
			var err error
			if tc.stream {
				_, err = m.Stream(context.Background(), req, nil)
			} else {
				_, err = m.Generate(context.Background(), req)
			}
			if err == nil {
				t.Fatal("no error")
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not contain %q", err, w)
				}
			}
		})
	}
}

func TestResponseIDAndModel(t *testing.T) {
	_, m := start(t, llmtest.Sequence(llmtest.Reply{Text: "x", StopReason: llm.StopMaxTokens}))
	for _, stream := range []bool{false, true} {
		req := &llm.Request{Messages: []llm.Message{llm.UserText("hi")}}
		var resp *llm.Response
		var err error
		if stream {
			resp, err = m.Stream(context.Background(), req, nil)
		} else {
			resp, err = m.Generate(context.Background(), req)
		}
		if err != nil {
			t.Fatal(err)
		}
		if !strings.HasPrefix(resp.ID, "chatcmpl-") || resp.Model != "gpt-test" || resp.StopReason != llm.StopMaxTokens {
			t.Errorf("stream %v: id %q model %q stop %q", stream, resp.ID, resp.Model, resp.StopReason)
		}
	}
}

func TestDeadline(t *testing.T) {
	srv, m := start(t, llmtest.Sequence(llmtest.Reply{Text: "late", Latency: 5 * time.Second}))
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	start := time.Now()
	_, err := m.Generate(ctx, &llm.Request{Messages: []llm.Message{llm.UserText("hi")}})
	if k := llm.KindOf(err); k != llm.KindCancelled {
		t.Errorf("kind %v (%v), want cancelled", k, err)
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("returned after %v", d)
	}
	if srv.Requests() != 1 {
		t.Errorf("%d requests", srv.Requests())
	}
}

// TestOtherDialects serves answers that llmtest does not script: errors in
// the dialects of other OpenAI-compatible servers, and an error event in
// the middle of a stream.
func TestOtherDialects(t *testing.T) {
	tests := []struct {
		name    string
		status  int
		ct      string
		body    string
		stream  bool
		kind    llm.Kind
		message string
	}{
		{"ollama", 404, "application/json", `{"error":"model \"llama9\" not found, try pulling it first"}`, false, llm.KindBadRequest, `model "llama9" not found`},
		{"vllm top level", 400, "application/json", `{"object":"error","message":"This model's maximum context length is 4096 tokens.","type":"BadRequestError","param":null,"code":400}`, false, llm.KindContextTooLong, "4096"},
		{"empty 503", 503, "", ``, false, llm.KindTransient, "Service Unavailable"},
		{"plain text 500", 500, "text/plain", `upstream connect error`, false, llm.KindTransient, "text/plain"},
		{"error in 200", 200, "application/json", `{"error":{"message":"quota gone","type":"insufficient_quota","code":"insufficient_quota"}}`, false, llm.KindAuth, "quota gone"},
		{"error event", 200, "text/event-stream", "data: {\"id\":\"c\",\"object\":\"chat.completion.chunk\",\"created\":1,\"model\":\"m\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"hal\"},\"finish_reason\":null}]}\n\ndata: {\"error\":{\"message\":\"The engine is currently overloaded\",\"type\":\"server_error\"}}\n\n", true, llm.KindOverloaded, "currently overloaded"},
		{"garbage event", 200, "text/event-stream", "data: {\"id\":\n\n", true, llm.KindTransient, "malformed event"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				if tc.ct != "" {
					w.Header().Set("Content-Type", tc.ct)
				}
				w.WriteHeader(tc.status)
				io.WriteString(w, tc.body)
			}))
			defer srv.Close()
			m := openai.New(openai.Config{Model: "m", BaseURL: srv.URL + "/v1"})
			req := &llm.Request{Messages: []llm.Message{llm.UserText("hi")}}
			var err error
			if tc.stream {
				_, err = m.Stream(context.Background(), req, nil)
			} else {
				_, err = m.Generate(context.Background(), req)
			}
			var e *llm.Error
			if !errors.As(err, &e) || e.Kind != tc.kind || !strings.Contains(e.Message, tc.message) {
				t.Errorf("error %v, want %v containing %q", err, tc.kind, tc.message)
			}
		})
	}
}

// TestRunawayStream: a server that streams well-formed chunks without end
// is cut at 64 MiB with an error; Hive never holds the rest.
func TestRunawayStream(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/event-stream")
		ev := `data: {"id":"c","object":"chat.completion.chunk","created":1,"model":"m","choices":[{"index":0,"delta":{"content":"` + strings.Repeat("x", 1024) + `"}}]}` + "\n\n"
		chunk := strings.Repeat(ev, (1<<20)/len(ev))
		for range 200 {
			if _, err := io.WriteString(w, chunk); err != nil {
				return
			}
		}
	}))
	defer srv.Close()
	m := openai.New(openai.Config{Model: "m", BaseURL: srv.URL, APIKey: "k"})
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute) // 64 MiB of SSE through the SDK under -race on a loaded machine
	defer cancel()
	_, err := m.Stream(ctx, &llm.Request{Messages: []llm.Message{llm.UserText("hi")}}, nil)
	if err == nil || !strings.Contains(err.Error(), "longer than 64 MiB") {
		t.Fatalf("err = %v", err)
	}
}

// TestDialects: Hive asks a server what it is (GET /models) unless told,
// and meets it where it cannot negotiate: llama.cpp gets a named tool
// choice as "required" over that tool alone (it ignores an object, with a
// warning) and parallel_tool_calls on (its default is off); Ollama gets no
// tool_choice (not a field of its request); OpenAI's and vLLM's requests
// are as they were, but that only OpenAI's carries prompt_cache_key.
func TestDialects(t *testing.T) {
	tools := []llm.Tool{{Name: "finish", Schema: json.RawMessage(`{"type":"object"}`)}, {Name: "delegate", Schema: json.RawMessage(`{"type":"object"}`)}}
	req := &llm.Request{Messages: []llm.Message{llm.UserText("hi")}, Tools: tools, ToolChoice: llm.ToolChoice{Mode: llm.ToolName, Name: "finish"}, CacheKey: "run-1/wave-1"}
	tests := []struct {
		name     string
		start    func(llmtest.Handler) *llmtest.Server
		dialect  string // Config.Dialect; empty: asked
		choice   string // the tool_choice the server went by
		tools    int
		parallel bool
		warned   bool
	}{
		{"llama.cpp asked", llmtest.NewLlamaCpp, "", "required", 1, true, false},
		{"llama.cpp told", llmtest.NewLlamaCpp, "llama.cpp", "required", 1, true, false},
		{"llama.cpp taken for openai", llmtest.NewLlamaCpp, "openai", "auto", 2, false, true},
		{"vllm asked", llmtest.NewVLLM, "", "tool:finish", 2, false, false},
		{"ollama asked", llmtest.NewOllama, "", "auto", 2, false, false},
		{"openai asked", llmtest.NewOpenAI, "", "tool:finish", 2, false, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := tt.start(func(*llmtest.Call) llmtest.Reply {
				return llmtest.Reply{ToolCalls: []llmtest.ToolCall{{Name: "finish", Input: `{}`}}}
			})
			defer srv.Close()
			m := openai.New(openai.Config{Model: "m", BaseURL: srv.URL + "/v1", Dialect: tt.dialect})
			if _, err := m.Generate(context.Background(), req); err != nil {
				t.Fatal(err)
			}
			c := srv.Calls()[0]
			var body struct {
				ToolChoice json.RawMessage `json:"tool_choice"`
				Parallel   *bool           `json:"parallel_tool_calls"`
				CacheKey   string          `json:"prompt_cache_key"`
			}
			json.Unmarshal(c.Body, &body)
			choice := c.ToolChoice
			if choice != tt.choice || len(c.Tools) != tt.tools || (body.Parallel != nil && *body.Parallel) != tt.parallel || (len(c.Warnings) > 0) != tt.warned {
				t.Errorf("tool choice %q, %d tools, parallel %v, warnings %q; body %s", choice, len(c.Tools), body.Parallel, c.Warnings, c.Body)
			}
			// Only OpenAI's API takes prompt_cache_key.
			if openAI := tt.dialect == "openai" || tt.name == "openai asked"; (body.CacheKey == req.CacheKey) != openAI {
				t.Errorf("prompt_cache_key %q in dialect %q", body.CacheKey, tt.name)
			}
			if strings.HasPrefix(tt.name, "ollama") && len(body.ToolChoice) > 0 {
				t.Errorf("Ollama was sent tool_choice %s", body.ToolChoice)
			}
		})
	}
}

// TestSimulatedCache runs the adapter against llmtest's cache simulator:
// a second request with the same long prefix and prompt_cache_key reads
// it, CacheReadTokens being cached_tokens (1024 and up, in steps of 128)
// and InputTokens the rest of prompt_tokens.
func TestSimulatedCache(t *testing.T) {
	system := strings.Repeat("You are a careful reviewer. ", 300) // ~2000 tokens
	for _, stream := range []bool{false, true} {
		t.Run(fmt.Sprint("stream=", stream), func(t *testing.T) {
			srv, m := start(t, llmtest.Sequence(llmtest.Reply{Text: "ok"}))
			srv.SimulateCache(llmtest.CacheRules{})
			req := &llm.Request{System: system, CacheKey: "run-1", Messages: []llm.Message{llm.UserText("review this")}}
			var us []llm.Usage
			for i := range 2 {
				var resp *llm.Response
				var err error
				if stream {
					resp, err = m.Stream(context.Background(), req, nil)
				} else {
					resp, err = m.Generate(context.Background(), req)
				}
				if err != nil {
					t.Fatal(err)
				}
				u := resp.Usage
				if total := int64(len(srv.Calls()[i].Body)/4 + 1); u.InputTokens+u.CacheReadTokens != total || u.CacheWriteTokens != 0 {
					t.Errorf("request %d: usage %+v, want input + cached = prompt_tokens %d", i, u, total)
				}
				us = append(us, u)
			}
			if us[0].CacheReadTokens != 0 {
				t.Errorf("first: %+v", us[0])
			}
			if c := us[1].CacheReadTokens; c < 1024 || (c-1024)%128 != 0 {
				t.Errorf("second: cached %d, want 1024+128k", c)
			}
		})
	}
}

// TestBatchConformance runs the suite every llm.Batcher adapter passes,
// against OpenAI's Batch API (the compatible servers have none).
func TestBatchConformance(t *testing.T) {
	llmtest.TestBatcher(t, llmtest.Provider{Name: "openai", NewServer: llmtest.NewOpenAI, NewModel: newModel})
}
