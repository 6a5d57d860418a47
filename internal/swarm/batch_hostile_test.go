package swarm

import (
	"context"
	"encoding/json"
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

// Batch mode against a lead and a provider that misbehave.

// TestBatchAttemptsJournaledApart: a batch that holds one call's second
// attempt and another call's first journals each under its own attempt,
// so a run stopped while that batch is out resumes without submitting
// either again. The lead delegates A; A's item expires and its retry
// opens the next batch; the lead then delegates B, whose first call
// joins it.
func TestBatchAttemptsJournaledApart(t *testing.T) {
	no := false
	srv := llmtest.NewAnthropic(func(c *llmtest.Call) llmtest.Reply {
		if !isLead(c) {
			return llmtest.Reply{ToolCalls: []llmtest.ToolCall{toolCall("submit", submitArgs{Report: "ok"})}}
		}
		switch turns(c) {
		case 0:
			return llmtest.Reply{ToolCalls: []llmtest.ToolCall{toolCall("delegate", delegateArgs{Tasks: tasks(1, "A"), Wait: &no})}}
		case 1:
			return llmtest.Reply{Latency: 1500 * time.Millisecond, ToolCalls: []llmtest.ToolCall{toolCall("delegate", delegateArgs{Tasks: tasks(1, "B"), Wait: &no})}}
		case 2:
			return llmtest.Reply{ToolCalls: []llmtest.ToolCall{toolCall("await", awaitArgs{IDs: []string{"1", "2"}})}}
		}
		return finish("done")
	})
	var expired atomic.Int32
	srv.SetBatchRules(llmtest.BatchRules{Expire: func(string) bool { return expired.Add(1) == 1 }})
	opts := Options{BatchWindow: time.Second, BatchPoll: 50 * time.Millisecond}
	hs := newHarnessOn(t, srv, opts, anthropicModels(srv))
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	id, err := hs.engine.Start(ctx, Spec{Task: "two items", Lead: "lead", Tiers: []string{"cheap"}, BudgetUSD: price.Dollar, Urgency: UrgencyBatch})
	if err != nil {
		t.Fatal(err)
	}
	for srv.Batches() < 1 {
		time.Sleep(5 * time.Millisecond)
	}
	srv.SetBatchRules(llmtest.BatchRules{Delay: 4 * time.Second}) // batch 2 is out across the stop
	keys := func() []string {
		steps, _ := hs.store.Steps(ctx, id)
		var ks []string
		for k := range steps {
			if strings.HasPrefix(k, "batch/") {
				ks = append(ks, k)
			}
		}
		return ks
	}
	for len(keys()) < 3 {
		if ctx.Err() != nil {
			t.Fatalf("journaled batch places: %q", keys())
		}
		time.Sleep(20 * time.Millisecond)
	}
	hs.close()
	hs.open(opts)
	srv.SetBatchRules(llmtest.BatchRules{})
	if _, err := hs.engine.Resume(ctx, id); err != nil {
		t.Fatal(err)
	}
	res, err := hs.engine.Wait(ctx, id)
	if err != nil || res.Status != StatusDone {
		t.Fatalf("resumed run: %s %q %v", res.Status, res.Error, err)
	}
	ran := map[string]int{}
	for _, c := range srv.Calls() {
		if c.CustomID != "" {
			ran[c.CustomID]++
		}
	}
	for cid, n := range ran {
		if n > 1 {
			t.Errorf("custom id %s was run %d times", cid, n)
		}
	}
	if n := srv.Batches(); n != 2 {
		t.Errorf("%d batches, want 2: A's first attempt, then A's second with B's first", n)
	}
}

// batchBill is what the provider billed for the items of srv's batches
// that ran, at m's batch price, and how many ran and were cancelled.
func batchBill(t *testing.T, hs *harness, srv *llmtest.Server, model string) (bill price.Amount, ran, cancelled int) {
	t.Helper()
	m, err := hs.reg.Get(model)
	if err != nil {
		t.Fatal(err)
	}
	for n := 1; n <= srv.Batches(); n++ {
		st, err := m.Batch.PollBatch(context.Background(), fmt.Sprintf("msgbatch_llmtest%06d", n), nil)
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range st.Results {
			if r.Response != nil {
				ran++
				bill += m.Price.BatchCost(r.Response.Usage)
			}
		}
		cancelled += st.Counts.Canceled
	}
	return bill, ran, cancelled
}

// TestBatchAbandonedCancelled: a lead that finishes while its workers'
// batch is out. Nobody waits on the batch any more: Hive cancels it, and
// bills each call that was in it its reservation, since the provider may
// have run it.
func TestBatchAbandonedCancelled(t *testing.T) {
	no := false
	srv := llmtest.NewAnthropic(func(c *llmtest.Call) llmtest.Reply {
		if !isLead(c) {
			return llmtest.Reply{ToolCalls: []llmtest.ToolCall{toolCall("submit", submitArgs{Report: "ok"})}}
		}
		if len(c.ToolResults()) == 0 {
			return llmtest.Reply{ToolCalls: []llmtest.ToolCall{toolCall("delegate", delegateArgs{Tasks: tasks(10, "item"), Wait: &no})}}
		}
		return llmtest.Reply{Latency: 700 * time.Millisecond, ToolCalls: []llmtest.ToolCall{toolCall("finish", finishArgs{Answer: "gave up"})}}
	})
	srv.SetBatchRules(llmtest.BatchRules{Delay: time.Hour})
	hs := newHarnessOn(t, srv, Options{BatchWindow: 300 * time.Millisecond, BatchPoll: 50 * time.Millisecond}, anthropicModels(srv))
	res := hs.run(Spec{Task: "ten items", Lead: "lead", Tiers: []string{"cheap"}, BudgetUSD: price.Dollar, Urgency: UrgencyBatch})
	if res.Status != StatusDone || srv.Batches() != 1 {
		t.Fatalf("run %s %q, %d batches", res.Status, res.Error, srv.Batches())
	}
	var workers price.Amount
	calls := 0
	for _, nd := range hs.nodes(res.RunID) {
		if nd.Role == RoleWorker {
			workers += nd.Cost
			calls += nd.BatchCalls
		}
	}
	bill, ran, cancelled := batchBill(t, hs, srv, "cheap")
	if cancelled != 10 || ran != 0 {
		t.Errorf("the provider cancelled %d items and ran %d; want the whole batch of 10 cancelled", cancelled, ran)
	}
	m, _ := hs.reg.Get("cheap")
	if workers <= bill || calls != 10 || workers > 10*m.Price.BatchWorstCase(1<<20, 1<<16, true) {
		t.Errorf("workers billed %s for %d calls; the provider billed %s", workers, calls, bill)
	}
}

// TestBatchCancelLoopBudget: a hostile lead delegates a batched wave and
// cancels it before the batch is sent, or once it is out, over and over,
// to a provider that runs what it was sent whatever cancel it is asked
// for (a real one finishes the requests in progress). What the provider
// bills, with the lead's calls, stays within the budget, and Hive's bill
// is never below it.
func TestBatchCancelLoopBudget(t *testing.T) {
	no := false
	var round atomic.Int32
	srv := llmtest.NewAnthropic(func(c *llmtest.Call) llmtest.Reply {
		if !isLead(c) {
			return llmtest.Reply{ToolCalls: []llmtest.ToolCall{toolCall("submit", submitArgs{Report: strings.Repeat("word ", 1400)})}}
		}
		if len(c.Tools) == 1 { // the final turn: finish only
			return finish("done")
		}
		rs := c.ToolResults()
		if len(rs) > 0 && strings.Contains(rs[0].Content, `"started"`) {
			var started struct {
				Started []string `json:"started"`
			}
			if err := json.Unmarshal([]byte(rs[0].Content), &started); err != nil {
				t.Errorf("delegate's result: %v: %s", err, rs[0].Content)
			}
			// Every other wave is cancelled inside the batch window, the
			// rest once its batch is out.
			wait := 50 * time.Millisecond
			if round.Load()%2 == 0 {
				wait = 600 * time.Millisecond
			}
			return llmtest.Reply{Latency: wait, ToolCalls: []llmtest.ToolCall{toolCall("cancel", cancelArgs{IDs: started.Started})}}
		}
		if round.Add(1) > 8 {
			return finish("done")
		}
		return llmtest.Reply{ToolCalls: []llmtest.ToolCall{toolCall("delegate", delegateArgs{Tasks: tasks(10, "item"), Wait: &no})}}
	})
	srv.SetBatchRules(llmtest.BatchRules{Delay: time.Second})
	u, _ := url.Parse(srv.URL)
	proxy := httputil.NewSingleHostReverseProxy(u)
	var cancels atomic.Int32
	front := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.HasSuffix(r.URL.Path, "/cancel") {
			cancels.Add(1)
			w.Header().Set("Content-Type", "application/json")
			fmt.Fprint(w, `{"id":"x","type":"message_batch","processing_status":"canceling"}`)
			return
		}
		proxy.ServeHTTP(w, r)
	}))
	defer front.Close()
	hs := newHarnessOn(t, srv, Options{BatchWindow: 300 * time.Millisecond, BatchPoll: 50 * time.Millisecond}, func(c *config.Config) {
		anthropicModels(srv)(c)
		for _, m := range c.Models {
			m.BaseURL = front.URL
		}
	})
	budget := price.Dollar
	res := hs.run(Spec{Task: "items", Lead: "lead", Tiers: []string{"cheap"}, BudgetUSD: budget, Urgency: UrgencyBatch})
	var lead, workers price.Amount
	for _, nd := range hs.nodes(res.RunID) {
		if nd.Role == RoleLead {
			lead += nd.Cost
		} else {
			workers += nd.Cost
		}
	}
	time.Sleep(time.Second) // the provider runs the last batch to its end
	bill, ran, _ := batchBill(t, hs, srv, "cheap")
	t.Logf("run %s %q; budget %s; Hive billed the lead %s and the workers %s; %d batches, %d cancel requests, %d items run, billed %s", res.Status, res.Error, budget, lead, workers, srv.Batches(), cancels.Load(), ran, bill)
	if srv.Batches() < 2 || ran == 0 || cancels.Load() == 0 {
		t.Fatal("no abandoned batch ran: the test tests nothing")
	}
	if lead+bill > budget {
		t.Errorf("real spend %s (lead %s, batches %s) exceeds the budget %s", lead+bill, lead, bill, budget)
	}
	if workers < bill {
		t.Errorf("Hive billed the workers %s; the provider %s", workers, bill)
	}
}

// hostileBatches fronts an llmtest Anthropic server: direct calls go
// through, the Message Batches API answers as the test scripts it.
type hostileBatches struct {
	srv   *llmtest.Server
	front *httptest.Server

	mu      sync.Mutex
	customs []string // custom ids submitted, in order
	polls   atomic.Int32
	reads   atomic.Int32 // results downloads
	cancels atomic.Int32
	status  string                                    // processing_status to report
	results func(w http.ResponseWriter, ids []string) // the results body
}

func newHostileBatches(t *testing.T, h llmtest.Handler, status string, results func(http.ResponseWriter, []string)) *hostileBatches {
	hb := &hostileBatches{srv: llmtest.NewAnthropic(h), status: status, results: results}
	u, _ := url.Parse(hb.srv.URL)
	proxy := httputil.NewSingleHostReverseProxy(u)
	hb.front = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		rest, ok := strings.CutPrefix(r.URL.Path, "/v1/messages/batches")
		if !ok {
			proxy.ServeHTTP(w, r)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		switch {
		case rest == "" && r.Method == http.MethodPost:
			var body struct {
				Requests []struct {
					CustomID string `json:"custom_id"`
				} `json:"requests"`
			}
			json.NewDecoder(r.Body).Decode(&body)
			hb.mu.Lock()
			for _, q := range body.Requests {
				hb.customs = append(hb.customs, q.CustomID)
			}
			hb.mu.Unlock()
			fmt.Fprintf(w, `{"id":"msgbatch_x","type":"message_batch","processing_status":"in_progress","request_counts":{"processing":%d}}`, len(body.Requests))
		case strings.HasSuffix(rest, "/results"):
			hb.reads.Add(1)
			hb.mu.Lock()
			ids := append([]string(nil), hb.customs...)
			hb.mu.Unlock()
			hb.results(w, ids)
		case strings.HasSuffix(rest, "/cancel"):
			hb.cancels.Add(1)
			fmt.Fprint(w, `{"id":"msgbatch_x","type":"message_batch","processing_status":"canceling"}`)
		default:
			hb.polls.Add(1)
			fmt.Fprintf(w, `{"id":"msgbatch_x","type":"message_batch","processing_status":%q}`, hb.status)
		}
	}))
	t.Cleanup(hb.front.Close)
	t.Cleanup(hb.srv.Close)
	return hb
}

func (hb *hostileBatches) models(c *config.Config) {
	c.Models = map[string]*config.Model{}
	for name, id := range map[string]string{"lead": "claude-sonnet-4-5", "cheap": "claude-haiku-4-5", "strong": "claude-sonnet-4-5"} {
		c.Models[name] = &config.Model{Name: name, Provider: config.ProviderAnthropic, ID: id, BaseURL: hb.front.URL}
	}
}

func oneTaskLead(c *llmtest.Call) llmtest.Reply {
	if !isLead(c) {
		return llmtest.Reply{ToolCalls: []llmtest.ToolCall{toolCall("submit", submitArgs{Report: "ok"})}}
	}
	if len(c.ToolResults()) == 0 {
		return llmtest.Reply{ToolCalls: []llmtest.ToolCall{toolCall("delegate", delegateArgs{Tasks: tasks(1, "item")})}}
	}
	return finish("done")
}

// result writes a succeeded result line for custom id id.
func result(w io.Writer, id, text string) {
	fmt.Fprintf(w, `{"custom_id":%q,"result":{"type":"succeeded","message":{"id":"m","type":"message","role":"assistant","model":"claude-haiku-4-5","content":[{"type":"tool_use","id":"t1","name":"submit","input":{"report":%q}}],"stop_reason":"tool_use","usage":{"input_tokens":10,"output_tokens":10}}}}`+"\n", id, text)
}

// TestBatchGivenUp: a batch that never ends, or whose results cannot be
// read, is given up (its calls fail, the run goes on to its end) rather
// than polled forever; a batch given up unended is cancelled, once.
func TestBatchGivenUp(t *testing.T) {
	for _, tc := range []struct {
		name    string
		status  string
		results func(http.ResponseWriter, []string)
		cancels int32
	}{
		{"never ends", "in_progress", nil, 1},
		{"results not JSONL", "ended", func(w http.ResponseWriter, _ []string) { io.WriteString(w, "<html>not jsonl</html>\n") }, 0},
		{"results 500", "ended", func(w http.ResponseWriter, _ []string) {
			w.WriteHeader(500)
			io.WriteString(w, `{"type":"error","error":{"type":"api_error","message":"boom"}}`)
		}, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			hb := newHostileBatches(t, oneTaskLead, tc.status, tc.results)
			hs := newHarnessOn(t, hb.srv, Options{BatchWindow: 50 * time.Millisecond, BatchPoll: 10 * time.Millisecond, BatchDeadline: 2 * time.Second}, hb.models)
			res := hs.run(Spec{Task: "one item", Lead: "lead", Tiers: []string{"cheap"}, BudgetUSD: price.Dollar, Urgency: UrgencyBatch})
			if res.Status != StatusDone {
				t.Fatalf("run %s %q", res.Status, res.Error)
			}
			worker := hs.worker(res.RunID)
			hb.mu.Lock()
			sent := len(hb.customs)
			hb.mu.Unlock()
			if worker.Status != StatusFailed || !strings.Contains(worker.Error, "batch") || sent != 1 {
				t.Errorf("worker %s %q; %d calls submitted, want the one call failed and never sent again", worker.Status, worker.Error, sent)
			}
			if n := hb.reads.Load(); n > maxPollFails {
				t.Errorf("results read %d times, want at most %d", n, maxPollFails)
			}
			if n := hb.cancels.Load(); n != tc.cancels {
				t.Errorf("%d cancels, want %d", n, tc.cancels)
			}
		})
	}
}

// TestBatchForeignResults: a results file padded with lines for custom
// ids the run never sent: only the run's own are kept, and each call
// gets its own answer.
func TestBatchForeignResults(t *testing.T) {
	var mine atomic.Int32
	hb := newHostileBatches(t, oneTaskLead, "ended", func(w http.ResponseWriter, ids []string) {
		for i := range 20_000 {
			result(w, fmt.Sprintf("foreign%d", i), strings.Repeat("y", 200))
		}
		for _, id := range ids {
			mine.Add(1)
			result(w, id, "mine")
		}
	})
	hs := newHarnessOn(t, hb.srv, Options{BatchWindow: 50 * time.Millisecond, BatchPoll: 10 * time.Millisecond}, hb.models)
	res := hs.run(Spec{Task: "one item", Lead: "lead", Tiers: []string{"cheap"}, BudgetUSD: price.Dollar, Urgency: UrgencyBatch})
	if res.Status != StatusDone || mine.Load() == 0 {
		t.Fatalf("run %s %q", res.Status, res.Error)
	}
	for _, nd := range hs.nodes(res.RunID) {
		if nd.Role == RoleWorker && (nd.Status != StatusDone || nd.Report != "mine") {
			t.Errorf("worker %s %q: %q", nd.Status, nd.Error, nd.Report)
		}
	}
}
