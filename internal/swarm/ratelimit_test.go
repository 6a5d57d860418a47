package swarm

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hive-swarm/hive/internal/config"
	"github.com/hive-swarm/hive/internal/llm/llmtest"
	"github.com/hive-swarm/hive/internal/price"
)

// A worker whose call the provider refuses with a 429 is sent again after
// the retry-after, and its node says so: one retry, and at least the
// second it waited (the page's timeline shows both).
func TestRateLimitedWorkerShown(t *testing.T) {
	var mu sync.Mutex
	refused := false
	h := func(c *llmtest.Call) llmtest.Reply {
		if !isLead(c) {
			mu.Lock()
			first := taskName(c) == "t-1" && !refused
			refused = refused || first
			mu.Unlock()
			if first {
				return llmtest.Reply{Status: 429, RetryAfter: "1"}
			}
			return llmtest.Reply{ToolCalls: []llmtest.ToolCall{toolCall("submit", submitArgs{Report: "ok"})}}
		}
		if len(c.ToolResults()) == 0 {
			return llmtest.Reply{ToolCalls: []llmtest.ToolCall{toolCall("delegate", delegateArgs{Tasks: tasks(3, "t")})}}
		}
		return llmtest.Reply{ToolCalls: []llmtest.ToolCall{toolCall("finish", finishArgs{Answer: "done"})}}
	}
	hs := newHarness(t, h, Options{})
	res := hs.run(Spec{Task: "three", BudgetUSD: 1e9})
	if res.Status != StatusDone {
		t.Fatalf("run ended %s: %s", res.Status, res.Error)
	}
	var found bool
	for _, n := range hs.nodes(res.RunID) {
		if n.Name != "t-1" {
			continue
		}
		found = true
		if n.Retries != 1 || n.WaitMillis < 1000 {
			t.Errorf("node t-1: %d retries, waited %d ms; want 1 retry and at least 1000 ms", n.Retries, n.WaitMillis)
		}
	}
	if !found {
		t.Fatal("no node t-1")
	}
}

// A 429 that asks for a day's wait, on a worker's call or on the batch
// that carries it: the call fails at once, saying what the server asked,
// and the run goes on without it instead of waiting a day.
func TestRetryAfterOfADay(t *testing.T) {
	for _, batch := range []bool{false, true} {
		t.Run(fmt.Sprintf("batch=%v", batch), func(t *testing.T) {
			var refused atomic.Bool
			srv := llmtest.NewAnthropic(func(c *llmtest.Call) llmtest.Reply {
				if !isLead(c) && !batch && refused.CompareAndSwap(false, true) {
					return llmtest.Reply{Status: 429, RetryAfter: "86400"}
				}
				return oneTask(c)
			})
			u, _ := url.Parse(srv.URL)
			proxy := httputil.NewSingleHostReverseProxy(u)
			front := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				if r.URL.Path == "/v1/messages/batches" && r.Method == http.MethodPost && refused.CompareAndSwap(false, true) {
					w.Header().Set("Retry-After", "86400")
					w.Header().Set("Content-Type", "application/json")
					w.WriteHeader(http.StatusTooManyRequests)
					io.WriteString(w, `{"type":"error","error":{"type":"rate_limit_error","message":"slow down"}}`)
					return
				}
				proxy.ServeHTTP(w, r)
			}))
			t.Cleanup(front.Close)
			hs := newHarnessOn(t, srv, batchOpts, func(c *config.Config) {
				anthropicModels(srv)(c)
				for _, m := range c.Models {
					m.BaseURL = front.URL
				}
			})
			ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
			defer cancel()
			spec := Spec{Task: "one item", Lead: "lead", Tiers: []string{"cheap"}, BudgetUSD: price.Dollar}
			if batch {
				spec.Urgency = UrgencyBatch
			}
			id, err := hs.engine.Start(ctx, spec)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := hs.engine.Wait(ctx, id); err != nil {
				t.Fatalf("the run did not end: %v", err)
			}
			worker := hs.worker(id)
			if worker.Status != StatusFailed || !strings.Contains(worker.Error, "24h0m0s") {
				t.Errorf("worker %s: %q; want it failed with the day the server asked", worker.Status, worker.Error)
			}
		})
	}
}

// oneTask is a lead that delegates one task and finishes, and workers
// that submit.
func oneTask(c *llmtest.Call) llmtest.Reply {
	if !isLead(c) {
		return submit("ok")
	}
	if len(c.ToolResults()) == 0 {
		return llmtest.Reply{ToolCalls: []llmtest.ToolCall{toolCall("delegate", delegateArgs{Tasks: tasks(1, "item")})}}
	}
	return finish("done")
}
