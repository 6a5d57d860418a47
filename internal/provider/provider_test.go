package provider_test

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hive-swarm/hive/internal/config"
	"github.com/hive-swarm/hive/internal/limit"
	"github.com/hive-swarm/hive/internal/llm"
	"github.com/hive-swarm/hive/internal/llm/llmtest"
	"github.com/hive-swarm/hive/internal/price"
	"github.com/hive-swarm/hive/internal/provider"
)

// testKey is a distinctive key: no error message may ever contain it.
const testKey = "sk-test-SECRET-1234"

// vendor is one provider under test: how to start its server and the
// base URL its adapter takes.
type vendor struct {
	name  string
	id    string // a model id the price table knows
	serve func(llmtest.Handler) *llmtest.Server
	base  func(*llmtest.Server) string
}

var vendors = []vendor{
	{"anthropic", "claude-haiku-4-5", llmtest.NewAnthropic, func(s *llmtest.Server) string { return s.URL }},
	{"openai", "gpt-4o-mini", llmtest.NewOpenAI, func(s *llmtest.Server) string { return s.URL + "/v1" }},
}

// recorder wraps a handler and stamps the arrival time of every request.
type recorder struct {
	mu    sync.Mutex
	times []time.Time
	h     llmtest.Handler
}

func (r *recorder) handle(c *llmtest.Call) llmtest.Reply {
	r.mu.Lock()
	r.times = append(r.times, time.Now())
	r.mu.Unlock()
	return r.h(c)
}

func (r *recorder) arrivals() []time.Time {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]time.Time(nil), r.times...)
}

// open starts v's server with h, writes a hive.toml naming it as model "m"
// (with extra TOML lines appended to its table) and opens "m" through a
// registry, the way the engine does. The server requires serverKey; the
// client sends testKey.
func open(t *testing.T, v vendor, id, extra, serverKey string, h llmtest.Handler) (*provider.Model, *llmtest.Server, *recorder) {
	t.Helper()
	rec := &recorder{h: h}
	srv := v.serve(rec.handle)
	srv.APIKey = serverKey
	t.Cleanup(srv.Close)
	toml := fmt.Sprintf("[models.m]\nprovider = %q\nmodel = %q\nbase_url = %q\napi_key_env = \"HIVE_TEST_KEY\"\n%s",
		v.name, id, v.base(srv), extra)
	cfg, err := config.Parse([]byte(toml))
	if err != nil {
		t.Fatalf("config: %v\n%s", err, toml)
	}
	getenv := func(k string) string {
		if k == "HIVE_TEST_KEY" {
			return testKey
		}
		return ""
	}
	reg := provider.NewRegistry(cfg, getenv, slog.New(slog.DiscardHandler))
	m, err := reg.Get("m")
	if err != nil {
		t.Fatal(err)
	}
	return m, srv, rec
}

func request() *llm.Request {
	return &llm.Request{Messages: []llm.Message{llm.UserText("Say hello.")}, MaxTokens: 64}
}

func ctxFor(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// TestRetryAfterHonoured: a 429 asking for 1 s is retried, and not before
// the second is up.
func TestRetryAfterHonoured(t *testing.T) {
	for _, v := range vendors {
		t.Run(v.name, func(t *testing.T) {
			t.Parallel()
			m, srv, rec := open(t, v, v.id, "", testKey, llmtest.Sequence(
				llmtest.Reply{Status: 429, RetryAfter: "1", ErrorMessage: "slow down"},
				llmtest.Reply{Text: "hello"},
			))
			resp, err := m.Admitted(limit.Worker).Generate(ctxFor(t), request())
			if err != nil {
				t.Fatal(err)
			}
			if resp.Text() != "hello" || srv.Requests() != 2 {
				t.Fatalf("text %q after %d requests; want hello after 2", resp.Text(), srv.Requests())
			}
			at := rec.arrivals()
			if gap := at[1].Sub(at[0]); gap < time.Second {
				t.Fatalf("retried %v after a 429 asking for 1s", gap)
			} else {
				t.Logf("retried %v after the 429", gap)
			}
		})
	}
}

// TestRetriedFailures: overloaded and server errors are retried once and
// the call succeeds, through Generate and Stream alike.
func TestRetriedFailures(t *testing.T) {
	for _, v := range vendors {
		for _, status := range []int{529, 500} {
			for _, stream := range []bool{false, true} {
				t.Run(fmt.Sprintf("%s/%d/stream=%v", v.name, status, stream), func(t *testing.T) {
					t.Parallel()
					m, srv, _ := open(t, v, v.id, "[models.m.limits]\nmax_attempts = 3\n", testKey, llmtest.Sequence(
						llmtest.Reply{Status: status, RetryAfter: "0.01"},
						llmtest.Reply{Text: "hello"},
					))
					c := m.Admitted(limit.Worker)
					var resp *llm.Response
					var err error
					if stream {
						resp, err = c.Stream(ctxFor(t), request(), nil)
					} else {
						resp, err = c.Generate(ctxFor(t), request())
					}
					if err != nil {
						t.Fatal(err)
					}
					if resp.Text() != "hello" || srv.Requests() != 2 {
						t.Fatalf("text %q after %d requests; want hello after 2", resp.Text(), srv.Requests())
					}
				})
			}
		}
	}
}

// TestFailsAtOnce: failures a retry cannot fix return after one request,
// classified, without the key in their text.
func TestFailsAtOnce(t *testing.T) {
	for _, v := range vendors {
		for _, c := range []struct {
			name      string
			serverKey string
			reply     llmtest.Reply
			kind      llm.Kind
		}{
			{"auth", "sk-the-right-one", llmtest.Reply{Text: "never"}, llm.KindAuth},
			{"context", testKey, llmtest.Reply{Status: 400, ErrorType: "invalid_request_error",
				ErrorMessage: "prompt is too long: 250000 tokens > 200000 maximum context length"}, llm.KindContextTooLong},
			{"bad request", testKey, llmtest.Reply{Status: 400, ErrorMessage: "model 'nope' does not exist"}, llm.KindBadRequest},
		} {
			t.Run(v.name+"/"+c.name, func(t *testing.T) {
				t.Parallel()
				m, srv, _ := open(t, v, v.id, "", c.serverKey, llmtest.Sequence(c.reply))
				start := time.Now()
				_, err := m.Admitted(limit.Worker).Generate(ctxFor(t), request())
				if err == nil {
					t.Fatal("the call succeeded")
				}
				if k := llm.KindOf(err); k != c.kind {
					t.Fatalf("kind %v (%v), want %v", k, err, c.kind)
				}
				if n := srv.Requests(); n != 1 {
					t.Fatalf("%d requests, want 1", n)
				}
				if d := time.Since(start); d > 2*time.Second {
					t.Fatalf("took %v", d)
				}
				if strings.Contains(err.Error(), testKey) || strings.Contains(fmt.Sprintf("%+v", err), testKey) {
					t.Fatalf("the error shows the key: %v", err)
				}
				t.Logf("%v", err)
			})
		}
	}
}

// TestCancelMidStream: cancelling while deltas arrive returns promptly.
func TestCancelMidStream(t *testing.T) {
	for _, v := range vendors {
		t.Run(v.name, func(t *testing.T) {
			t.Parallel()
			m, _, _ := open(t, v, v.id, "", testKey, llmtest.Sequence(llmtest.Reply{
				Text:       strings.Repeat("word ", 200),
				EventDelay: 50 * time.Millisecond,
			}))
			ctx, cancel := context.WithCancel(ctxFor(t))
			var once sync.Once
			var cancelled time.Time
			var deltas int
			_, err := m.Admitted(limit.Worker).Stream(ctx, request(), func(d llm.Delta) {
				deltas++
				if d.Text != "" {
					once.Do(func() { cancelled = time.Now(); cancel() })
				}
			})
			if err == nil {
				t.Fatal("the stream finished despite the cancel")
			}
			if cancelled.IsZero() {
				t.Fatalf("no text delta before the error: %v", err)
			}
			if d := time.Since(cancelled); d > time.Second {
				t.Fatalf("returned %v after the cancel", d)
			}
			if k := llm.KindOf(err); k != llm.KindCancelled {
				t.Fatalf("kind %v (%v), want cancelled", k, err)
			}
		})
	}
}

// TestCost: a response's usage is priced by the table for a known id, by
// the config's override when there is one, and unknown otherwise.
func TestCost(t *testing.T) {
	usage := llm.Usage{InputTokens: 1000, OutputTokens: 500}
	for _, v := range vendors {
		table, ok := price.Lookup(v.id)
		if !ok {
			t.Fatalf("the price table lacks %s", v.id)
		}
		for _, c := range []struct {
			name, id, extra string
			known           bool
			want            price.Amount
		}{
			{"table", v.id, "", true, table.Cost(usage)},
			// 1000 × $2/MTok + 500 × $4/MTok = $0.004.
			{"override", v.id, "[models.m.price]\ninput = 2\noutput = 4\n", true, price.MustParseUSD("0.004")},
			{"unknown", "no-such-model-7", "", false, 0},
		} {
			t.Run(v.name+"/"+c.name, func(t *testing.T) {
				t.Parallel()
				m, _, _ := open(t, v, c.id, c.extra, testKey, llmtest.Sequence(llmtest.Reply{Text: "hi", Usage: &usage}))
				resp, err := m.Admitted(limit.Worker).Generate(ctxFor(t), request())
				if err != nil {
					t.Fatal(err)
				}
				if resp.Usage != usage {
					t.Fatalf("usage %+v, want %+v", resp.Usage, usage)
				}
				cost, known := m.Cost(resp.Usage)
				if known != c.known || m.PriceKnown != c.known || cost != c.want {
					t.Fatalf("cost %v known=%v (PriceKnown %v), want %v known=%v", cost, known, m.PriceKnown, c.want, c.known)
				}
				if c.name == "table" && cost == 0 {
					t.Fatal("a known price costs nothing")
				}
			})
		}
	}
}

// TestRegistryShares: one name opens one model, so every caller shares
// its limiter.
func TestRegistryShares(t *testing.T) {
	cfg, err := config.Parse([]byte("[models.m]\nprovider = \"openai\"\nbase_url = \"http://127.0.0.1:9/v1\"\n"))
	if err != nil {
		t.Fatal(err)
	}
	reg := provider.NewRegistry(cfg, func(string) string { return "" }, nil)
	a, err := reg.Get("m")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := reg.Get("m")
	if a != b || a.Limiter != b.Limiter {
		t.Fatal("two Gets of one name opened two models")
	}
	if _, err := reg.Get("nosuch"); err == nil || !strings.Contains(err.Error(), "unknown model") {
		t.Fatalf("an unknown name: %v", err)
	}
}

// Made-up provider:id names open models only up to a bound: each is kept
// for the life of the process.
func TestRegistryBounded(t *testing.T) {
	env := func(k string) string {
		if k == "OPENAI_API_KEY" {
			return "sk-test"
		}
		return ""
	}
	reg := provider.NewRegistry(config.Default(), env, nil)
	for i := range provider.MaxModels {
		if _, err := reg.Get(fmt.Sprintf("openai:made-up-%d", i)); err != nil {
			t.Fatalf("model %d: %v", i, err)
		}
	}
	if _, err := reg.Get("openai:one-too-many"); err == nil || !strings.Contains(err.Error(), "the most it opens") {
		t.Fatalf("past the bound: %v", err)
	}
	if _, err := reg.Get("openai:made-up-7"); err != nil {
		t.Fatalf("a model already open: %v", err)
	}
}

// TestLlamaCppFailsAtOnce: llama-server's answers that no retry can change
// come back after one request, through the limiter's retries: a history
// whose tool call arguments are not JSON (its 500), a conversation longer
// than n_ctx (its 400, with the figures, the status shown once).
func TestLlamaCppFailsAtOnce(t *testing.T) {
	llama := vendor{"openai", "gpt-4o-mini", llmtest.NewLlamaCpp, func(s *llmtest.Server) string { return s.URL + "/v1" }}
	badArgs := &llm.Request{MaxTokens: 64, Messages: []llm.Message{
		llm.UserText("Read a."),
		{Role: llm.RoleAssistant, Parts: []llm.Part{llm.ToolCall{ID: "c1", Name: "read", Input: json.RawMessage(`{"path":"a`)}}},
		{Role: llm.RoleUser, Parts: []llm.Part{llm.ToolResult{CallID: "c1", Content: "done"}}},
	}}
	long := &llm.Request{MaxTokens: 64, Messages: []llm.Message{llm.UserText(strings.Repeat("word ", 2000))}}
	for _, c := range []struct {
		name string
		req  *llm.Request
		kind llm.Kind
		want []string
	}{
		{"tool arguments", badArgs, llm.KindBadRequest, []string{"bad_request (HTTP 500)", "Failed to parse tool call arguments as JSON"}},
		{"context", long, llm.KindContextTooLong, []string{"context_too_long (HTTP 400)", "exceeds the available context size", "n_ctx 1024"}},
	} {
		for _, stream := range []bool{false, true} {
			t.Run(fmt.Sprintf("%s/stream=%v", c.name, stream), func(t *testing.T) {
				t.Parallel()
				m, srv, _ := open(t, llama, llama.id, "[models.m.limits]\nmax_attempts = 6\n", testKey, llmtest.Sequence(llmtest.Reply{Text: "never"}))
				srv.ContextTokens = 1024
				start := time.Now()
				var err error
				if stream {
					_, err = m.Admitted(limit.Worker).Stream(ctxFor(t), c.req, func(llm.Delta) {})
				} else {
					_, err = m.Admitted(limit.Worker).Generate(ctxFor(t), c.req)
				}
				if k := llm.KindOf(err); k != c.kind {
					t.Fatalf("kind %v (%v), want %v", k, err, c.kind)
				}
				if n := srv.Requests(); n != 1 {
					t.Fatalf("%d requests, want 1", n)
				}
				if d := time.Since(start); d > 2*time.Second {
					t.Fatalf("took %v", d)
				}
				for _, w := range c.want {
					if !strings.Contains(err.Error(), w) {
						t.Errorf("error %q does not contain %q", err, w)
					}
				}
				if strings.Count(err.Error(), "400") > 1 || strings.Count(err.Error(), "500") > 1 {
					t.Errorf("error %q shows the status twice", err)
				}
				t.Logf("%v", err)
			})
		}
	}
}

// TestLlamaCppLoadingRetried: llama-server's 503 while it loads the model
// is still retried.
func TestLlamaCppLoadingRetried(t *testing.T) {
	llama := vendor{"openai", "gpt-4o-mini", llmtest.NewLlamaCpp, func(s *llmtest.Server) string { return s.URL + "/v1" }}
	m, srv, _ := open(t, llama, llama.id, "", testKey, llmtest.Sequence(
		llmtest.Reply{Status: 503, ErrorMessage: "Loading model", RetryAfter: "0.01"},
		llmtest.Reply{Text: "hello"},
	))
	resp, err := m.Admitted(limit.Worker).Generate(ctxFor(t), request())
	if err != nil || resp.Text() != "hello" || srv.Requests() != 2 {
		t.Fatalf("resp %v, err %v after %d requests", resp, err, srv.Requests())
	}
}

// TestPriceOverrideBatch: a price override keeps the built-in batch
// discount of a model the table knows, takes its own batch_discount, and
// gives an unknown model none.
func TestPriceOverrideBatch(t *testing.T) {
	f := func(v float64) *float64 { return &v }
	n := func(v int) *int { return &v }
	for _, c := range []struct {
		id   string
		d    *int
		want int
		err  string
	}{
		{"gpt-4o-mini", nil, 50, ""},
		{"gpt-4o-mini", n(0), 0, ""},
		{"my-local-llm", nil, 0, ""},
		{"my-local-llm", n(25), 25, ""},
		{"my-local-llm", n(150), 0, "batch_discount is 150"},
	} {
		p, known, err := provider.PriceOf(&config.Model{Name: "m", ID: c.id, Price: &config.Price{Input: f(1), Output: f(2), BatchDiscount: c.d}})
		if c.err != "" {
			if err == nil || !strings.Contains(err.Error(), c.err) {
				t.Errorf("%s %v: %v, want %q", c.id, c.d, err, c.err)
			}
			continue
		}
		if err != nil || !known || p.BatchDiscountPct != c.want {
			t.Errorf("%s %v: discount %d (%v), want %d", c.id, c.d, p.BatchDiscountPct, err, c.want)
		}
	}
}
