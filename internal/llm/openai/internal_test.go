package openai

import (
	"fmt"
	"net/http"
	"strings"
	"testing"

	"github.com/hive-swarm/hive/internal/llm"
)

func TestKindOf(t *testing.T) {
	tests := []struct {
		status         int
		typ, code, msg string
		want           llm.Kind
	}{
		{429, "requests", "rate_limit_exceeded", "Rate limit reached", llm.KindRateLimited},
		{429, "insufficient_quota", "insufficient_quota", "You exceeded your current quota", llm.KindAuth},
		{400, "invalid_request_error", "context_length_exceeded", "too many tokens", llm.KindContextTooLong},
		{400, "BadRequestError", "", "This model's maximum context length is 4096 tokens", llm.KindContextTooLong},
		{400, "invalid_request_error", "", "Invalid value for 'temperature'", llm.KindBadRequest},
		{401, "invalid_request_error", "invalid_api_key", "Incorrect API key provided", llm.KindAuth},
		{403, "", "", "forbidden", llm.KindAuth},
		{404, "invalid_request_error", "model_not_found", "The model does not exist", llm.KindBadRequest},
		{500, "server_error", "", "boom", llm.KindTransient},
		{503, "", "", "Service Unavailable", llm.KindTransient},
		{503, "server_error", "engine_overloaded", "The engine is currently overloaded", llm.KindOverloaded},
		{503, "", "", "server overloaded, try later", llm.KindOverloaded},
		{529, "", "", "", llm.KindOverloaded},
		{0, "server_error", "", "stream failed", llm.KindTransient},
		{0, "", "", "model overloaded", llm.KindOverloaded},
		{0, "invalid_request_error", "context_length_exceeded", "", llm.KindContextTooLong},
	}
	for _, tc := range tests {
		if got := kindOf(tc.status, tc.typ, tc.code, tc.msg); got != tc.want {
			t.Errorf("kindOf(%d, %q, %q, %q) = %v, want %v", tc.status, tc.typ, tc.code, tc.msg, got, tc.want)
		}
	}
}

func TestBodyError(t *testing.T) {
	tests := []struct {
		body string
		want *apiErr
	}{
		{`{"error":{"message":"bad","type":"invalid_request_error","param":null,"code":"x"}}`, &apiErr{Message: "bad", Type: "invalid_request_error", Code: "x"}},
		{`{"error":{"message":"bad","type":"t","code":400}}`, &apiErr{Message: "bad", Type: "t", Code: "400"}},
		{`{"error":{"code":400,"message":"the request exceeds the available context size, try increasing it","type":"exceed_context_size_error","n_prompt_tokens":9000,"n_ctx":8192}}`,
			&apiErr{Message: "the request exceeds the available context size, try increasing it", Type: "exceed_context_size_error", Code: "400", PromptTokens: 9000, ContextTokens: 8192}},
		{`{"error":"model 'llama9' not found"}`, &apiErr{Message: "model 'llama9' not found"}},
		{`{"object":"error","message":"too long","type":"BadRequestError","param":null,"code":400}`, &apiErr{Message: "too long", Type: "BadRequestError", Code: "400"}},
		{`{"id":"chatcmpl-1","choices":[]}`, nil},
		{`{"error":null,"choices":[]}`, nil},
		{`<html>`, nil},
	}
	for _, tc := range tests {
		got := bodyError([]byte(tc.body))
		if (got == nil) != (tc.want == nil) || (got != nil && *got != *tc.want) {
			t.Errorf("bodyError(%s) = %+v, want %+v", tc.body, got, tc.want)
		}
	}
}

func TestWantsCompletionTokens(t *testing.T) {
	tests := map[string]bool{
		"https://api.openai.com/v1":                 true,
		"https://API.openai.com/v1/":                true,
		"https://myres.openai.azure.com/openai/v1":  true,
		"http://localhost:11434/v1":                 false,
		"http://127.0.0.1:8000/v1":                  false,
		"https://openrouter.ai/api/v1":              false,
		"https://api.openai.com.example.invalid/v1": false,
	}
	for base, want := range tests {
		if got := wantsCompletionTokens(base); got != want {
			t.Errorf("wantsCompletionTokens(%q) = %v, want %v", base, got, want)
		}
	}
}

func TestMaxCompletionTokensForOpenAI(t *testing.T) {
	m := New(Config{Model: "gpt-x", BaseURL: "https://api.openai.com/v1/"})
	b, err := m.body(&llm.Request{Messages: []llm.Message{llm.UserText("hi")}, MaxTokens: 99}, false)
	if err != nil {
		t.Fatal(err)
	}
	if s := string(b); !strings.Contains(s, `"max_completion_tokens":99`) || strings.Contains(s, `"max_tokens"`) {
		t.Errorf("body %s", s)
	}
}

// TestServerBodies classifies error bodies as the servers send them, and
// checks the message Hive shows: the server's words, the context figures
// when given, the status never repeated as a code.
func TestServerBodies(t *testing.T) {
	tests := []struct {
		name   string
		status int
		body   string
		kind   llm.Kind
		want   []string // in the message
	}{
		// llama.cpp's server: a history whose tool call arguments are not
		// JSON fails in the chat template, every time (500 server_error).
		{"llama.cpp tool arguments", 500,
			`{"error":{"code":500,"message":"Failed to parse tool call arguments as JSON: [json.exception.parse_error.101] parse error at line 1, column 12: syntax error while parsing value - invalid string: missing closing quote; last read: '\"abc'","type":"server_error"}}`,
			llm.KindBadRequest, []string{"Failed to parse tool call arguments as JSON"}},
		{"llama.cpp format", 500,
			`{"error":{"code":500,"message":"The model's output does not match the expected tool call format","type":"server_error"}}`,
			llm.KindBadRequest, []string{"does not match the expected"}},
		{"llama.cpp template", 500,
			`{"error":{"code":500,"message":"Unknown argument ensure_ascii for function tojson at row 11, column 37:\n{{ tool | tojson(ensure_ascii=False) }}\n (in template)","type":"server_error"}}`,
			llm.KindBadRequest, []string{"ensure_ascii"}},
		{"llama.cpp not supported", 501,
			`{"error":{"code":501,"message":"This server does not support embeddings. Start it with --embeddings","type":"not_supported_error"}}`,
			llm.KindBadRequest, []string{"--embeddings"}},
		{"llama.cpp invalid request", 400,
			`{"error":{"code":400,"message":"Invalid tool_choice: auto2","type":"invalid_request_error"}}`,
			llm.KindBadRequest, []string{"Invalid tool_choice"}},
		{"llama.cpp loading", 503,
			`{"error":{"code":503,"message":"Loading model","type":"unavailable_error"}}`,
			llm.KindTransient, []string{"Loading model"}},
		{"llama.cpp context", 400,
			`{"error":{"code":400,"message":"the request exceeds the available context size, try increasing it","type":"exceed_context_size_error","n_prompt_tokens":9000,"n_ctx":8192}}`,
			llm.KindContextTooLong, []string{"exceeds the available context size", "prompt 9000 tokens, n_ctx 8192"}},
		{"llama.cpp context without figures", 400,
			`{"error":{"code":400,"message":"the request exceeds the available context size, try increasing it","type":"exceed_context_size_error"}}`,
			llm.KindContextTooLong, []string{"exceeds the available context size"}},
		{"vllm context", 400,
			`{"error":{"message":"This model's maximum context length is 4096 tokens. However, you requested 5000 tokens (4000 in the messages, 1000 in the completion). Please reduce the length of the messages or completion.","type":"BadRequestError","param":null,"code":400}}`,
			llm.KindContextTooLong, []string{"maximum context length is 4096"}},
		{"vllm context top level", 400,
			`{"object":"error","message":"This model's maximum context length is 4096 tokens. However, you requested 5000 tokens (4000 in the messages, 1000 in the completion). Please reduce the length of the messages or completion.","type":"BadRequestError","param":null,"code":400}`,
			llm.KindContextTooLong, []string{"4096"}},
		{"openai context", 400,
			`{"error":{"message":"This model's maximum context length is 128000 tokens. However, your messages resulted in 130000 tokens. Please reduce the length of the messages.","type":"invalid_request_error","param":"messages","code":"context_length_exceeded"}}`,
			llm.KindContextTooLong, []string{"128000"}},
		{"openai server error", 500,
			`{"error":{"message":"The server had an error while processing your request. Sorry about that!","type":"server_error","param":null,"code":null}}`,
			llm.KindTransient, []string{"Sorry about that"}},
		{"bad gateway", 502,
			`{"error":{"message":"invalid response from upstream","type":"server_error"}}`,
			llm.KindTransient, []string{"upstream"}},
		{"overloaded", 503,
			`{"error":{"message":"The engine is currently overloaded, please try again later","type":"server_error","code":"engine_overloaded"}}`,
			llm.KindOverloaded, []string{"overloaded"}},
		{"rate limited", 429,
			`{"error":{"message":"Rate limit reached","type":"requests","code":"rate_limit_exceeded"}}`,
			llm.KindRateLimited, []string{"Rate limit reached (rate_limit_exceeded)"}},
	}
	m := New(Config{Model: "m", BaseURL: "http://localhost/v1"})
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e := m.statusError(&capture{status: tc.status, header: http.Header{"Content-Type": {"application/json"}}, body: []byte(tc.body)})
			if e.Kind != tc.kind {
				t.Errorf("kind = %v, want %v (%v)", e.Kind, tc.kind, e)
			}
			if e.Kind.Retryable() != (tc.kind.Retryable()) {
				t.Errorf("retryable = %v", e.Kind.Retryable())
			}
			for _, w := range tc.want {
				if !strings.Contains(e.Error(), w) {
					t.Errorf("error %q does not contain %q", e, w)
				}
			}
			if c := fmt.Sprintf("(%d)", tc.status); strings.Contains(e.Message, c) {
				t.Errorf("error %q repeats the status as a code", e)
			}
		})
	}
}
