package llmtest

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"
)

// post sends a raw chat completion request and returns the status and the
// decoded body.
func post(t *testing.T, srv *Server, body string) (int, map[string]any) {
	t.Helper()
	res, err := http.Post(srv.URL+"/v1/chat/completions", "application/json", bytes.NewReader([]byte(body)))
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	var m map[string]any
	if res.Header.Get("Content-Type") != "text/event-stream" {
		if err := json.Unmarshal(b, &m); err != nil {
			t.Fatalf("body %s: %v", b, err)
		}
	}
	return res.StatusCode, m
}

const (
	tools      = `"tools":[{"type":"function","function":{"name":"f","parameters":{"type":"object"}}}]`
	namedTool  = `"tool_choice":{"type":"function","function":{"name":"f"}}`
	badHistory = `"messages":[{"role":"user","content":"hi"},` +
		`{"role":"assistant","content":null,"tool_calls":[{"id":"c1","type":"function","function":{"name":"f","arguments":"{\"path\":\"a"}}]},` +
		`{"role":"tool","tool_call_id":"c1","content":"done"}]`
)

func TestDialectToolChoice(t *testing.T) {
	tests := []struct {
		name    string
		serve   func(Handler) *Server
		choice  string
		status  int
		want    string
		warning bool
	}{
		{"openai named", NewOpenAI, namedTool, 200, "tool:f", false},
		{"openai required", NewOpenAI, `"tool_choice":"required"`, 200, "required", false},
		{"llama.cpp named is ignored", NewLlamaCpp, namedTool, 200, "auto", true},
		{"llama.cpp required", NewLlamaCpp, `"tool_choice":"required"`, 200, "required", false},
		{"llama.cpp none", NewLlamaCpp, `"tool_choice":"none"`, 200, "none", false},
		{"llama.cpp unknown", NewLlamaCpp, `"tool_choice":"any"`, 400, "any", false},
		{"vllm named", NewVLLM, namedTool, 200, "tool:f", false},
		{"vllm required", NewVLLM, `"tool_choice":"required"`, 200, "required", false},
		{"ollama ignores it", NewOllama, `"tool_choice":"none"`, 200, "auto", false},
		{"ollama ignores named", NewOllama, namedTool, 200, "auto", false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			srv := tc.serve(Sequence(Reply{Text: "ok"}))
			defer srv.Close()
			status, body := post(t, srv, `{"model":"m","messages":[{"role":"user","content":"hi"}],`+tools+`,`+tc.choice+`}`)
			if status != tc.status {
				t.Fatalf("status %d, want %d: %v", status, tc.status, body)
			}
			c := srv.Calls()[0]
			if c.ToolChoice != tc.want {
				t.Errorf("tool choice %q, want %q", c.ToolChoice, tc.want)
			}
			if got := len(c.Warnings) > 0; got != tc.warning {
				t.Errorf("warnings %q", c.Warnings)
			}
			if tc.warning && !strings.Contains(c.Warnings[0], "Wrong type supplied for parameter 'tool_choice'") {
				t.Errorf("warning %q", c.Warnings[0])
			}
		})
	}
}

// TestBadToolArguments: a history whose tool call arguments are not JSON
// is llama-server's 500, vLLM's and Ollama's 400, and the handler is never
// asked; OpenAI takes it.
func TestBadToolArguments(t *testing.T) {
	tests := []struct {
		name   string
		serve  func(Handler) *Server
		status int
		typ    string
		prefix string
	}{
		{"llama.cpp", NewLlamaCpp, 500, "server_error", "Failed to parse tool call arguments as JSON: [json.exception.parse_error.101] parse error at line 1, column "},
		{"vllm", NewVLLM, 400, "BadRequestError", "Expecting value: line 1 column "},
		{"ollama", NewOllama, 400, "invalid_request_error", "invalid tool call arguments"},
		{"openai", NewOpenAI, 200, "", ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			asked := 0
			srv := tc.serve(func(*Call) Reply { asked++; return Reply{Text: "ok"} })
			defer srv.Close()
			status, body := post(t, srv, `{"model":"m",`+tools+`,`+badHistory+`}`)
			if status != tc.status {
				t.Fatalf("status %d, want %d: %v", status, tc.status, body)
			}
			if tc.status == 200 {
				return
			}
			e, _ := body["error"].(map[string]any)
			msg, _ := e["message"].(string)
			if e["type"] != tc.typ || !strings.HasPrefix(msg, tc.prefix) {
				t.Errorf("body %v", body)
			}
			if asked != 0 {
				t.Errorf("handler asked %d times", asked)
			}
		})
	}
}

func TestDialectContextOverflow(t *testing.T) {
	long := strings.Repeat("word ", 400) // 2000 bytes, about 500 tokens
	req := `{"model":"m","max_tokens":100,"messages":[{"role":"user","content":"` + long + `"}]}`
	tests := []struct {
		name   string
		serve  func(Handler) *Server
		status int
		check  func(e map[string]any) bool
	}{
		{"openai", NewOpenAI, 400, func(e map[string]any) bool {
			return e["code"] == "context_length_exceeded" && strings.Contains(e["message"].(string), "maximum context length is 256 tokens")
		}},
		{"llama.cpp", NewLlamaCpp, 400, func(e map[string]any) bool {
			n, _ := e["n_prompt_tokens"].(float64)
			return e["type"] == "exceed_context_size_error" && e["code"] == float64(400) && e["n_ctx"] == float64(256) && n > 256 &&
				e["message"] == "the request exceeds the available context size, try increasing it"
		}},
		{"vllm", NewVLLM, 400, func(e map[string]any) bool {
			m := e["message"].(string)
			return e["type"] == "BadRequestError" && e["code"] == float64(400) &&
				strings.HasPrefix(m, "This model's maximum context length is 256 tokens. However, you requested ") &&
				strings.Contains(m, " in the messages, 100 in the completion). Please reduce the length of the messages or completion.")
		}},
		{"ollama", NewOllama, 200, nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			srv := tc.serve(Sequence(Reply{Text: "ok"}))
			defer srv.Close()
			srv.ContextTokens = 256
			status, body := post(t, srv, req)
			if status != tc.status {
				t.Fatalf("status %d, want %d: %v", status, tc.status, body)
			}
			if tc.check != nil {
				if e, _ := body["error"].(map[string]any); e == nil || !tc.check(e) {
					t.Errorf("body %v", body)
				}
			}
			// A request that fits is served.
			if status, body := post(t, srv, `{"model":"m","max_tokens":10,"messages":[{"role":"user","content":"hi"}]}`); status != 200 {
				t.Errorf("short request: status %d body %v", status, body)
			}
		})
	}
}

// TestDialectStreamUsage: every dialect ends a stream that asked for
// usage with a chunk whose choices are empty, and sends no usage when not
// asked.
func TestDialectStreamUsage(t *testing.T) {
	for _, serve := range []func(Handler) *Server{NewOpenAI, NewLlamaCpp, NewVLLM, NewOllama} {
		srv := serve(Sequence(Reply{Text: "one two"}))
		for _, include := range []bool{true, false} {
			opts := ""
			if include {
				opts = `,"stream_options":{"include_usage":true}`
			}
			res, err := http.Post(srv.URL+"/v1/chat/completions", "application/json",
				strings.NewReader(`{"model":"m","stream":true,"messages":[{"role":"user","content":"hi"}]`+opts+`}`))
			if err != nil {
				t.Fatal(err)
			}
			b, _ := io.ReadAll(res.Body)
			res.Body.Close()
			events := strings.Split(strings.TrimSpace(string(b)), "\n\n")
			last := strings.TrimPrefix(events[len(events)-2], "data: ")
			usageLast := strings.Contains(last, `"choices":[]`) && strings.Contains(last, `"prompt_tokens"`)
			if usageLast != include || (!include && strings.Contains(string(b), `"prompt_tokens"`)) {
				t.Errorf("include_usage %v: stream %s", include, b)
			}
		}
		srv.Close()
	}
}

// TestSlotsQueue: with every slot busy, llama.cpp's server queues a
// request rather than refuse it: three requests of 100 ms through one
// slot all succeed, one after another.
func TestSlotsQueue(t *testing.T) {
	srv := NewLlamaCpp(func(*Call) Reply { return Reply{Text: "ok", Latency: 100 * time.Millisecond} })
	srv.Slots = 1
	defer srv.Close()
	start := time.Now()
	var wg sync.WaitGroup
	codes := make([]int, 3)
	for i := range codes {
		wg.Go(func() {
			res, err := http.Post(srv.URL+"/v1/chat/completions", "application/json", strings.NewReader(`{"model":"m","messages":[{"role":"user","content":"hi"}]}`))
			if err != nil {
				t.Error(err)
				return
			}
			res.Body.Close()
			codes[i] = res.StatusCode
		})
	}
	wg.Wait()
	if took := time.Since(start); took < 300*time.Millisecond {
		t.Errorf("three requests through one slot took %v: not queued", took)
	}
	for i, c := range codes {
		if c != http.StatusOK {
			t.Errorf("request %d: %d, want 200 (queued, not refused)", i, c)
		}
	}
}
