package openai_test

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/hive-swarm/hive/internal/llm"
	"github.com/hive-swarm/hive/internal/llm/llmtest"
	"github.com/hive-swarm/hive/internal/llm/openai"
)

// The adapter writes the body and the SDK sends it: the server must get
// exactly the adapter's fields (nothing from the SDK's empty params), at
// the SDK's path, with the SDK's auth header.
func TestServerGetsExactlyOurBody(t *testing.T) {
	srv := llmtest.NewOpenAI(llmtest.Sequence(llmtest.Reply{Text: "ok"}, llmtest.Reply{Text: "ok"}))
	defer srv.Close()
	m := openai.New(openai.Config{Model: "gpt-test", BaseURL: srv.URL + "/v1", APIKey: "sk-exact"})
	req := &llm.Request{Messages: []llm.Message{llm.UserText("hi")}}
	if _, err := m.Generate(context.Background(), req); err != nil {
		t.Fatal(err)
	}
	if _, err := m.Stream(context.Background(), req, nil); err != nil {
		t.Fatal(err)
	}
	wants := [][]string{
		{"max_tokens", "messages", "model"},
		{"max_tokens", "messages", "model", "stream", "stream_options"},
	}
	for i, c := range srv.Calls() {
		var b map[string]json.RawMessage
		if err := json.Unmarshal(c.Body, &b); err != nil {
			t.Fatalf("call %d: body %s: %v", i, c.Body, err)
		}
		var keys []string
		for k := range b {
			keys = append(keys, k)
		}
		slices.Sort(keys)
		if !reflect.DeepEqual(keys, wants[i]) {
			t.Errorf("call %d: fields %v, want %v (body %s)", i, keys, wants[i], c.Body)
		}
		if string(b["messages"]) != `[{"role":"user","content":"hi"}]` {
			t.Errorf("call %d: messages %s", i, b["messages"])
		}
		if c.Path != "/v1/chat/completions" || c.Header.Get("Authorization") != "Bearer sk-exact" || c.Header.Get("Content-Type") != "application/json" {
			t.Errorf("call %d: path %q, auth %q, content type %q", i, c.Path, c.Header.Get("Authorization"), c.Header.Get("Content-Type"))
		}
	}
}

// serve answers every request with status and a JSON body.
func serve(t *testing.T, status int, body string) *openai.Model {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(status)
		io.WriteString(w, body)
	}))
	t.Cleanup(srv.Close)
	return openai.New(openai.Config{Model: "m", BaseURL: srv.URL + "/v1"})
}

// Answers as lenient servers send them decode as the SDK decoded them.
func TestLenientAnswers(t *testing.T) {
	tests := []struct {
		name string
		body string
		want *llm.Response
	}{
		{
			name: "content as text parts",
			body: `{"id":"c1","model":"m","choices":[{"index":0,"message":{"role":"assistant","content":[{"type":"text","text":"Hello, "},{"type":"text","text":"world."}]},"finish_reason":"stop"}],"usage":{"prompt_tokens":10,"completion_tokens":3}}`,
			want: &llm.Response{ID: "c1", Model: "m", StopReason: llm.StopEnd, Parts: []llm.Part{llm.Text{Text: "Hello, world."}}, Usage: llm.Usage{InputTokens: 10, OutputTokens: 3}},
		},
		{
			name: "null content, tool call, cached usage",
			body: `{"id":"c2","model":"m","choices":[{"index":0,"message":{"role":"assistant","content":null,"refusal":null,"tool_calls":[{"id":"t1","type":"function","function":{"name":"f","arguments":"{\"a\":1}"}}]},"finish_reason":"tool_calls"}],"usage":{"prompt_tokens":100,"completion_tokens":7,"prompt_tokens_details":{"cached_tokens":60,"cache_write_tokens":30}}}`,
			want: &llm.Response{ID: "c2", Model: "m", StopReason: llm.StopToolUse, Parts: []llm.Part{llm.ToolCall{ID: "t1", Name: "f", Input: json.RawMessage(`{"a":1}`)}}, Usage: llm.Usage{InputTokens: 10, OutputTokens: 7, CacheReadTokens: 60, CacheWriteTokens: 30}},
		},
		{
			name: "refusal, null usage, odd types ignored",
			body: `{"id":"c3","model":"m","created":"yesterday","choices":[{"index":"0","message":{"role":"assistant","content":"","refusal":"I can't."},"finish_reason":"stop","logprobs":null}],"usage":null}`,
			want: &llm.Response{ID: "c3", Model: "m", StopReason: llm.StopRefusal, Parts: []llm.Part{llm.Text{Text: "I can't."}}},
		},
		{
			// Counts as floats and strings are counted, not read as zero:
			// a call read as free would let a budget be overrun.
			name: "counts as floats and strings",
			body: `{"id":"c4","model":"m","choices":[{"message":{"content":"ok"},"finish_reason":"stop"}],"usage":{"prompt_tokens":10.0,"completion_tokens":"3","prompt_tokens_details":{"cached_tokens":"4","cache_write_tokens":null}}}`,
			want: &llm.Response{ID: "c4", Model: "m", StopReason: llm.StopEnd, Parts: []llm.Part{llm.Text{Text: "ok"}}, Usage: llm.Usage{InputTokens: 6, OutputTokens: 3, CacheReadTokens: 4}},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			m := serve(t, 200, tc.body)
			got, err := m.Generate(context.Background(), &llm.Request{Messages: []llm.Message{llm.UserText("hi")}})
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, tc.want) {
				t.Errorf("got  %#v\nwant %#v", got, tc.want)
			}
		})
	}
}

// A 200 whose body is an error, in any dialect, or not a chat completion,
// is an error, never an empty answer.
func TestErrorsIn200(t *testing.T) {
	tests := []struct {
		name    string
		body    string
		kind    llm.Kind
		message string
	}{
		{"openai", `{"error":{"message":"too many tokens","type":"invalid_request_error","code":"context_length_exceeded"}}`, llm.KindContextTooLong, "too many tokens"},
		{"ollama", `{"error":"model \"llama9\" not found"}`, llm.KindTransient, `model "llama9" not found`},
		{"vllm top level", `{"object":"error","message":"maximum context length is 4096 tokens","type":"BadRequestError","code":400}`, llm.KindContextTooLong, "4096"},
		{"no choices", `{"id":"c","choices":[]}`, llm.KindTransient, "no choices"},
		{"array", `[1,2]`, llm.KindTransient, "did not answer a chat completion"},
		{"cut", `{"id":"c","choices":[{"message":{"content":"hal`, llm.KindTransient, "malformed body"},
		{"count not a count", `{"id":"c","choices":[{"message":{"content":"ok"}}],"usage":{"prompt_tokens":"many","completion_tokens":1}}`, llm.KindTransient, "token count"},
		{"negative count", `{"id":"c","choices":[{"message":{"content":"ok"}}],"usage":{"prompt_tokens":5,"completion_tokens":-1}}`, llm.KindTransient, "token count"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			m := serve(t, 200, tc.body)
			_, err := m.Generate(context.Background(), &llm.Request{Messages: []llm.Message{llm.UserText("hi")}})
			var e *llm.Error
			if !errors.As(err, &e) || e.Kind != tc.kind || !strings.Contains(e.Message, tc.message) {
				t.Errorf("error %v, want %v containing %q", err, tc.kind, tc.message)
			}
		})
	}
}
