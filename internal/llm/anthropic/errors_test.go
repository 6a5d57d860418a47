package anthropic

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/hive-swarm/hive/internal/llm"
	"github.com/hive-swarm/hive/internal/llm/llmtest"
)

func TestErrors(t *testing.T) {
	long := strings.Repeat("Bees dance. ", 20)
	tests := []struct {
		name       string
		rep        llmtest.Reply
		streamOnly bool
		kind       llm.Kind
		status     int // expected Status; -1 to skip the check
		retryAfter time.Duration
		msg        string // a piece the message must hold
	}{
		{name: "rate limited", rep: llmtest.Reply{Status: 429, ErrorMessage: "Number of request tokens has exceeded your per-minute rate limit", RetryAfter: "2"},
			kind: llm.KindRateLimited, status: 429, retryAfter: 2 * time.Second, msg: "per-minute rate limit"},
		{name: "overloaded", rep: llmtest.Reply{Status: 529, ErrorMessage: "Overloaded"},
			kind: llm.KindOverloaded, status: 529, msg: "overloaded_error: Overloaded"},
		{name: "server error", rep: llmtest.Reply{Status: 500, ErrorMessage: "Internal server error"},
			kind: llm.KindTransient, status: 500, msg: "Internal server error"},
		{name: "context too long", rep: llmtest.Reply{Status: 400, ErrorMessage: "prompt is too long: 210000 tokens > 200000 maximum"},
			kind: llm.KindContextTooLong, status: 400, msg: "prompt is too long"},
		{name: "bad request", rep: llmtest.Reply{Status: 400, ErrorMessage: "messages.0.content: Input should be a valid list"},
			kind: llm.KindBadRequest, status: 400, msg: "invalid_request_error"},
		{name: "forbidden", rep: llmtest.Reply{Status: 403, ErrorMessage: "Your API key does not have permission to use the specified resource."},
			kind: llm.KindAuth, status: 403, msg: "permission"},
		{name: "html 200", rep: llmtest.Reply{HTML: true},
			kind: llm.KindTransient, status: 200, msg: "content type text/html"},
		{name: "html 502", rep: llmtest.Reply{HTML: true, Status: 502},
			kind: llm.KindTransient, status: 502, msg: "(HTTP 502): server did not answer JSON (content type text/html)"},
		{name: "malformed", rep: llmtest.Reply{Malformed: true},
			kind: llm.KindTransient, status: 200, msg: "content type application/json"},
		{name: "truncated", rep: llmtest.Reply{Text: long, TruncateAfter: 4}, streamOnly: true,
			kind: llm.KindTransient, status: 200, msg: "stream ended early"},
		{name: "truncated before any event", rep: llmtest.Reply{Text: long, TruncateAfter: 1}, streamOnly: true,
			kind: llm.KindTransient, status: 200, msg: "stream ended early"},
		{name: "overloaded mid-stream", rep: llmtest.Reply{Text: long, TruncateAfter: 5, ErrorType: "overloaded_error", ErrorMessage: "Overloaded"}, streamOnly: true,
			kind: llm.KindOverloaded, status: 0, msg: "Overloaded"},
		{name: "api error mid-stream", rep: llmtest.Reply{Text: long, TruncateAfter: 5, ErrorType: "api_error", ErrorMessage: "Internal error"}, streamOnly: true,
			kind: llm.KindTransient, status: 0, msg: "api_error: Internal error"},
	}
	for _, mode := range modes {
		for _, tt := range tests {
			if tt.streamOnly && !mode.stream {
				continue
			}
			t.Run(mode.name+"/"+tt.name, func(t *testing.T) {
				srv, m := start(t, reply(tt.rep))
				var deltas int
				req := &llm.Request{Messages: []llm.Message{llm.UserText("hi")}}
				var err error
				if mode.stream {
					_, err = m.Stream(context.Background(), req, func(llm.Delta) { deltas++ })
				} else {
					_, err = m.Generate(context.Background(), req)
				}
				checkError(t, err, tt.kind, tt.status, tt.msg)
				if got := llm.RetryAfter(err); got != tt.retryAfter {
					t.Errorf("retry after = %v, want %v", got, tt.retryAfter)
				}
				if n := srv.Requests(); n != 1 {
					t.Errorf("%d requests, want exactly 1 (no hidden retries)", n)
				}
			})
		}
	}
}

// checkError asserts err is an *llm.Error of kind from provider
// anthropic, with status (unless -1), a one-line message holding msg and
// never the API key.
func checkError(t *testing.T, err error, kind llm.Kind, status int, msg string) {
	t.Helper()
	var e *llm.Error
	if !errors.As(err, &e) {
		t.Fatalf("err = %v (%T), want *llm.Error", err, err)
	}
	if e.Kind != kind || e.Provider != "anthropic" || (status >= 0 && e.Status != status) {
		t.Errorf("err = kind %v provider %q status %d, want %v anthropic %d: %v", e.Kind, e.Provider, e.Status, kind, status, err)
	}
	s := err.Error()
	t.Log(s)
	if !strings.Contains(s, msg) {
		t.Errorf("message %q lacks %q", s, msg)
	}
	if strings.Contains(s, testKey) || strings.Contains(e.Message, testKey) {
		t.Errorf("message %q contains the API key", s)
	}
	if strings.ContainsAny(s, "\r\n") {
		t.Errorf("message %q is not one line", s)
	}
}

func TestWrongKey(t *testing.T) {
	for _, mode := range modes {
		t.Run(mode.name, func(t *testing.T) {
			srv := llmtest.NewAnthropic(reply(llmtest.Reply{Text: "ok"}))
			srv.APIKey = "sk-ant-the-right-one"
			defer srv.Close()
			m := New(Config{Model: "claude-test", BaseURL: srv.URL, APIKey: testKey})
			_, _, err := call(context.Background(), m, mode.stream, &llm.Request{Messages: []llm.Message{llm.UserText("hi")}})
			checkError(t, err, llm.KindAuth, 401, "authentication_error")
			if srv.Requests() != 1 {
				t.Errorf("%d requests", srv.Requests())
			}
		})
	}
}

func TestUnreachable(t *testing.T) {
	srv := httptest.NewServer(nil)
	url := srv.URL
	srv.Close()
	for _, mode := range modes {
		t.Run(mode.name, func(t *testing.T) {
			m := New(Config{Model: "claude-test", BaseURL: url, APIKey: testKey})
			start := time.Now()
			_, _, err := call(context.Background(), m, mode.stream, &llm.Request{Messages: []llm.Message{llm.UserText("hi")}})
			checkError(t, err, llm.KindTransient, 0, url+"/v1/messages")
			if d := time.Since(start); d > 5*time.Second {
				t.Errorf("took %v: retried?", d)
			}
		})
	}
}

func TestCancel(t *testing.T) {
	t.Run("mid-stream", func(t *testing.T) {
		srv, m := start(t, reply(llmtest.Reply{Text: strings.Repeat("slow words ", 100), EventDelay: 20 * time.Millisecond}))
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		var deltas int
		var cancelledAt time.Time
		_, err := m.Stream(ctx, &llm.Request{Messages: []llm.Message{llm.UserText("hi")}}, func(llm.Delta) {
			deltas++
			if deltas == 3 {
				cancelledAt = time.Now()
				cancel()
			}
		})
		if d := time.Since(cancelledAt); d > time.Second {
			t.Errorf("returned %v after cancel", d)
		}
		checkError(t, err, llm.KindCancelled, 0, "cancel")
		if !errors.Is(err, context.Canceled) || !errors.Is(err, llm.ErrCancelled) {
			t.Errorf("err %v does not match context.Canceled and llm.ErrCancelled", err)
		}
		if deltas != 3 {
			t.Errorf("%d deltas after cancel at 3", deltas)
		}
		if srv.Requests() != 1 {
			t.Errorf("%d requests", srv.Requests())
		}
	})
	for _, mode := range modes {
		t.Run("waiting/"+mode.name, func(t *testing.T) {
			_, m := start(t, reply(llmtest.Reply{Text: "late", Latency: 10 * time.Second}))
			ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
			defer cancel()
			start := time.Now()
			_, _, err := call(ctx, m, mode.stream, &llm.Request{Messages: []llm.Message{llm.UserText("hi")}})
			if d := time.Since(start); d > 2*time.Second {
				t.Errorf("took %v", d)
			}
			checkError(t, err, llm.KindCancelled, 0, "deadline exceeded")
		})
	}
}

// TestBrokenStream covers streams that llmtest does not script: an event
// whose data is not JSON, and a connection dropped mid-stream.
func TestBrokenStream(t *testing.T) {
	const start = "event: message_start\ndata: {\"type\":\"message_start\",\"message\":{\"id\":\"msg_1\",\"type\":\"message\",\"role\":\"assistant\",\"model\":\"m\",\"content\":[],\"usage\":{\"input_tokens\":1,\"output_tokens\":1}}}\n\n"
	tests := []struct {
		name string
		rest func(w http.ResponseWriter)
		msg  string
	}{
		{"malformed event", func(w http.ResponseWriter) {
			io.WriteString(w, "event: content_block_start\ndata: {\"type\":\"content_block_st\n\n")
		}, "stream broke before message_stop: malformed event"},
		{"dropped connection", func(w http.ResponseWriter) {
			w.(http.Flusher).Flush()
			conn, _, err := http.NewResponseController(w).Hijack()
			if err == nil {
				conn.Close()
			}
		}, "stream broke before message_stop"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("Content-Type", "text/event-stream")
				io.WriteString(w, start)
				tt.rest(w)
			}))
			defer srv.Close()
			m := New(Config{Model: "m", BaseURL: srv.URL, APIKey: testKey})
			_, err := m.Stream(context.Background(), &llm.Request{Messages: []llm.Message{llm.UserText("hi")}}, nil)
			checkError(t, err, llm.KindTransient, 200, tt.msg)
		})
	}
}
