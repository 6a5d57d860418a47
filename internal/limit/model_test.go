package limit

import (
	"encoding/json"
	"net/http"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/hive-swarm/hive/internal/llm"
	"github.com/hive-swarm/hive/internal/llm/llmtest"
	"github.com/hive-swarm/hive/internal/llm/openai"
)

// checkNoLeak fails t if a goroutine of the limiter is still alive when t
// ends. Register it first: cleanups run last-in first-out.
func checkNoLeak(t *testing.T) {
	t.Cleanup(func() {
		var stacks string
		for deadline := time.Now().Add(2 * time.Second); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
			buf := make([]byte, 1<<20)
			stacks = string(buf[:runtime.Stack(buf, true)])
			if !strings.Contains(stacks, "limit.(*Limiter)") && !strings.Contains(stacks, "limit.(*model)") {
				return
			}
		}
		t.Errorf("limiter goroutines outlived the test:\n%s", stacks)
	})
}

// serve starts an OpenAI-compatible server answering with h, and a client
// of it; both are closed when t ends.
func serve(t *testing.T, h llmtest.Handler) (*llmtest.Server, *openai.Model) {
	t.Helper()
	srv := llmtest.NewOpenAI(h)
	tr := &http.Transport{MaxIdleConnsPerHost: 512}
	t.Cleanup(func() {
		tr.CloseIdleConnections()
		srv.Close()
	})
	m := openai.New(openai.Config{BaseURL: srv.URL + "/v1", APIKey: "test", Model: "m", HTTPClient: &http.Client{Transport: tr}})
	return srv, m
}

func TestWrapGenerate(t *testing.T) {
	checkNoLeak(t)
	srv, m := serve(t, llmtest.Sequence(
		llmtest.Reply{Status: 429, RetryAfter: "0.01"},
		llmtest.Reply{Status: 503},
		llmtest.Reply{Text: "fine", Usage: &llm.Usage{InputTokens: 7, OutputTokens: 3}},
	))
	l := New("m", Config{BaseBackoff: time.Millisecond, MaxBackoff: 5 * time.Millisecond}, testLogger(t))
	resp, err := l.Wrap(m, Lead).Generate(t.Context(), &llm.Request{Messages: []llm.Message{llm.UserText("hi")}})
	if err != nil {
		t.Fatal(err)
	}
	if resp.Text() != "fine" || resp.Usage.Total() != 10 {
		t.Fatalf("got %q with usage %+v", resp.Text(), resp.Usage)
	}
	if s := l.Stats(); srv.Requests() != 3 || s.Retries != 2 || s.Throttled != 1 {
		t.Fatalf("%d requests, stats %+v; want 3 requests, 2 retries, 1 throttled", srv.Requests(), s)
	}
}

func TestWrapNonRetryable(t *testing.T) {
	checkNoLeak(t)
	srv, m := serve(t, func(*llmtest.Call) llmtest.Reply { return llmtest.Reply{Status: 401} })
	l := New("m", Config{}, testLogger(t))
	_, err := l.Wrap(m, Worker).Generate(t.Context(), &llm.Request{Messages: []llm.Message{llm.UserText("hi")}})
	if llm.KindOf(err) != llm.KindAuth || srv.Requests() != 1 {
		t.Fatalf("got %v after %d requests, want auth after 1", err, srv.Requests())
	}
}

func TestWrapStream(t *testing.T) {
	tests := []struct {
		name     string
		replies  []llmtest.Reply
		wantErr  llm.Kind // KindUnknown: success
		requests int
	}{
		{"retried before any delta", []llmtest.Reply{{Status: 429, RetryAfter: "0.01"}, {Text: "one two three"}}, llm.KindUnknown, 2},
		{"not retried after a delta", []llmtest.Reply{{Text: "one two three four", TruncateAfter: 3}, {Text: "again"}}, llm.KindTransient, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			checkNoLeak(t)
			srv, m := serve(t, llmtest.Sequence(tt.replies...))
			l := New("m", Config{BaseBackoff: time.Millisecond}, testLogger(t))
			var got strings.Builder
			resp, err := l.Wrap(m, Verifier).Stream(t.Context(), &llm.Request{Messages: []llm.Message{llm.UserText("hi")}},
				func(d llm.Delta) { got.WriteString(d.Text) })
			if llm.KindOf(err) != tt.wantErr || (err == nil) != (tt.wantErr == llm.KindUnknown) {
				t.Fatalf("got error %v, want kind %v", err, tt.wantErr)
			}
			if srv.Requests() != tt.requests {
				t.Fatalf("%d requests, want %d", srv.Requests(), tt.requests)
			}
			if err == nil && (resp.Text() != "one two three" || got.String() != "one two three") {
				t.Fatalf("response %q, deltas %q", resp.Text(), got.String())
			}
			if err != nil && got.String() != "one two " {
				t.Fatalf("deltas %q, want the partial output once", got.String())
			}
		})
	}
}

func TestEstimateTokens(t *testing.T) {
	tests := []struct {
		name string
		req  llm.Request
		want int64
	}{
		{"empty", llm.Request{}, 1 + defaultMaxTokens},
		{"text", llm.Request{System: strings.Repeat("s", 400), Messages: []llm.Message{llm.UserText(strings.Repeat("u", 400))}, MaxTokens: 100}, 201 + 100},
		{"tools and parts", llm.Request{
			Messages: []llm.Message{{Role: llm.RoleAssistant, Parts: []llm.Part{llm.ToolCall{Name: "abcd", Input: json.RawMessage(`{"x":1}`)}}},
				{Role: llm.RoleUser, Parts: []llm.Part{llm.ToolResult{Content: strings.Repeat("r", 89)}, llm.Image{URL: "u"}}}},
			Tools:     []llm.Tool{{Name: "abcd", Description: "dddd", Schema: json.RawMessage(`{}`)}},
			MaxTokens: 10,
		}, (4+7+89+4+4+2)/4 + 1 + imageTokens + 10},
	}
	for _, tt := range tests {
		if got := EstimateTokens(&tt.req); got != tt.want {
			t.Errorf("%s: EstimateTokens = %d, want %d", tt.name, got, tt.want)
		}
	}
}

// TestCacheReadsFree: with CacheReadsFree (Anthropic's cache-aware
// limit), what a call read from a prompt cache is not counted against
// the tokens per minute; otherwise (OpenAI) every token is.
func TestCacheReadsFree(t *testing.T) {
	u := llm.Usage{InputTokens: 50, CacheWriteTokens: 100, CacheReadTokens: 20_000, OutputTokens: 30}
	for _, c := range []struct {
		free bool
		want int64
	}{{true, 180}, {false, 20_180}} {
		w := &model{l: New("m", Config{TPM: 1000, CacheReadsFree: c.free}, testLogger(t))}
		if got := w.tokens(u); got != c.want {
			t.Errorf("free %v: %d tokens counted, want %d", c.free, got, c.want)
		}
	}
}
