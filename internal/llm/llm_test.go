package llm

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"testing"
	"time"
)

func TestStatusKind(t *testing.T) {
	tests := []struct {
		status int
		typ    string
		msg    string
		want   Kind
	}{
		{429, "rate_limit_error", "slow down", KindRateLimited},
		{529, "overloaded_error", "Overloaded", KindOverloaded},
		{500, "api_error", "boom", KindTransient},
		{503, "", "", KindTransient},
		{401, "authentication_error", "invalid x-api-key", KindAuth},
		{403, "permission_error", "", KindAuth},
		{400, "invalid_request_error", "max_tokens: field required", KindBadRequest},
		{400, "invalid_request_error", "prompt is too long: 210000 tokens > 200000 maximum", KindContextTooLong},
		{400, "context_length_exceeded", "", KindContextTooLong},
		{400, "invalid_request_error", "This model's maximum context length is 8192 tokens", KindContextTooLong},
		{404, "not_found_error", "model: nope", KindBadRequest},
		// llama.cpp's server (tools/server/utils.hpp format_error_response).
		{400, "exceed_context_size_error", "the request exceeds the available context size, try increasing it", KindContextTooLong},
		{500, "server_error", "Failed to parse tool call arguments as JSON: [json.exception.parse_error.101] parse error at line 1, column 5", KindBadRequest},
		{500, "server_error", "Response does not match the expected tool call format", KindBadRequest},
		{501, "not_supported_error", "This server does not support infill.", KindBadRequest},
		{503, "unavailable_error", "Loading model", KindTransient},
		{502, "", "invalid response from upstream", KindTransient},
		{504, "", "Gateway Timeout", KindTransient},
	}
	for _, tt := range tests {
		if got := StatusKind(tt.status, tt.typ, tt.msg); got != tt.want {
			t.Errorf("StatusKind(%d, %q, %q) = %v, want %v", tt.status, tt.typ, tt.msg, got, tt.want)
		}
	}
}

func TestParseRetryAfter(t *testing.T) {
	now := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	tests := []struct {
		h    http.Header
		want time.Duration
	}{
		{http.Header{"Retry-After": {"2"}}, 2 * time.Second},
		{http.Header{"Retry-After": {"0.5"}}, 500 * time.Millisecond},
		{http.Header{"Retry-After-Ms": {"150"}, "Retry-After": {"9"}}, 150 * time.Millisecond},
		{http.Header{"Retry-After": {now.Add(3 * time.Second).Format(http.TimeFormat)}}, 3 * time.Second},
		{http.Header{"Retry-After": {"soon"}}, 0},
		{http.Header{}, 0},
		// A day is read as a day: what to honour of it is the limiter's call.
		{http.Header{"Retry-After": {"86400"}}, 24 * time.Hour},
		// Waits no Duration can hold, or no wait at all, are unreadable.
		{http.Header{"Retry-After-Ms": {"1e300"}}, 0},
		{http.Header{"Retry-After-Ms": {"1e300"}, "Retry-After": {"3"}}, 3 * time.Second},
		{http.Header{"Retry-After": {"1e12"}}, 0},
		{http.Header{"Retry-After-Ms": {"+Inf"}}, 0},
		{http.Header{"Retry-After-Ms": {"NaN"}}, 0},
		{http.Header{"Retry-After": {"NaN"}}, 0},
		{http.Header{"Retry-After": {"-5"}}, 0},
		{http.Header{"Retry-After-Ms": {"-5"}}, 0},
	}
	for _, tt := range tests {
		if got := ParseRetryAfter(tt.h, now); got != tt.want {
			t.Errorf("ParseRetryAfter(%v) = %v, want %v", tt.h, got, tt.want)
		}
	}
}

func TestErrorKinds(t *testing.T) {
	err := fmt.Errorf("call worker: %w", &Error{Kind: KindRateLimited, Provider: "openai", Status: 429, RetryAfter: time.Second})
	if !errors.Is(err, ErrRateLimited) || errors.Is(err, ErrOverloaded) {
		t.Fatalf("errors.Is by kind is wrong for %v", err)
	}
	if KindOf(err) != KindRateLimited || RetryAfter(err) != time.Second || !KindOf(err).Retryable() {
		t.Fatalf("KindOf/RetryAfter wrong for %v", err)
	}
	if KindOf(context.Canceled) != KindCancelled || KindOf(errors.New("x")) != KindUnknown {
		t.Fatal("KindOf of plain errors is wrong")
	}
	if got := err.Error(); got != "call worker: openai: rate_limited (HTTP 429)" {
		t.Fatalf("Error() = %q", got)
	}
}

func TestResponseHelpers(t *testing.T) {
	r := &Response{Parts: []Part{Text{"a"}, ToolCall{ID: "1", Name: "f"}, Text{"b"}}}
	if r.Text() != "ab" || len(r.ToolCalls()) != 1 || r.Message().Role != RoleAssistant {
		t.Fatalf("helpers wrong: %q %v", r.Text(), r.ToolCalls())
	}
	u := Usage{InputTokens: 1, OutputTokens: 2, CacheWriteTokens: 3, CacheReadTokens: 4, CacheWrite1hTokens: 1}.
		Add(Usage{InputTokens: 1, OutputTokens: 1, CacheWriteTokens: 1, CacheReadTokens: 1, CacheWrite1hTokens: 2})
	if u != (Usage{InputTokens: 2, OutputTokens: 3, CacheWriteTokens: 4, CacheReadTokens: 5, CacheWrite1hTokens: 3}) || u.Total() != 14 {
		t.Fatalf("usage add: %+v", u)
	}
}
