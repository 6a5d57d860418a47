package openai

import (
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
		{`{"error":{"message":"bad","type":"invalid_request_error","param":null,"code":"x"}}`, &apiErr{"bad", "invalid_request_error", "x"}},
		{`{"error":{"message":"bad","type":"t","code":400}}`, &apiErr{"bad", "t", "400"}},
		{`{"error":"model 'llama9' not found"}`, &apiErr{Message: "model 'llama9' not found"}},
		{`{"object":"error","message":"too long","type":"BadRequestError","param":null,"code":400}`, &apiErr{"too long", "BadRequestError", "400"}},
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
