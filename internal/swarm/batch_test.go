package swarm

import (
	"context"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hive-swarm/hive/internal/llm/llmtest"
	"github.com/hive-swarm/hive/internal/price"
)

// batchHandler scripts a lead that delegates n tasks and workers that
// submit at once; leadCalls counts the lead's calls.
func batchHandler(n int, leadCalls *atomic.Int32) llmtest.Handler {
	return func(c *llmtest.Call) llmtest.Reply {
		if !isLead(c) {
			return llmtest.Reply{ToolCalls: []llmtest.ToolCall{toolCall("submit", submitArgs{Report: "ok " + taskName(c)})}}
		}
		leadCalls.Add(1)
		if len(c.ToolResults()) == 0 {
			return llmtest.Reply{ToolCalls: []llmtest.ToolCall{toolCall("delegate", delegateArgs{Tasks: tasks(n, "item")})}}
		}
		return finish(strings.Repeat("r", len(reports(c))))
	}
}

var batchOpts = Options{BatchWindow: 100 * time.Millisecond, BatchPoll: 50 * time.Millisecond}

// A run of batch urgency sends its workers' calls to the provider as one
// batch, reserved and billed at the batch price (half), and the lead's
// calls at once; each node counts its batch calls.
func TestBatchRun(t *testing.T) {
	const n = 5
	var leads atomic.Int32
	srv := llmtest.NewAnthropic(batchHandler(n, &leads))
	srv.SetBatchRules(llmtest.BatchRules{Delay: 300 * time.Millisecond})
	hs := newHarnessOn(t, srv, batchOpts, anthropicModels(srv))
	res := hs.run(Spec{Task: "label five items", BudgetUSD: price.Dollar, Urgency: UrgencyBatch})
	if res.Status != StatusDone || res.Answer != "rrrrr" {
		t.Fatalf("run ended %s %q: %s", res.Status, res.Answer, res.Error)
	}
	if b := srv.Batches(); b != 1 {
		t.Errorf("%d batches sent, want 1 for the wave", b)
	}
	var batched int
	for _, c := range srv.Calls() {
		if c.Batch != "" {
			batched++
			if isLead(c) {
				t.Error("a lead call went by batch")
			}
		}
	}
	if batched != n {
		t.Errorf("%d calls by batch, want %d", batched, n)
	}
	p, _ := price.Lookup("claude-haiku-4-5")
	for _, nd := range hs.nodes(res.RunID) {
		if nd.Role != RoleWorker {
			continue
		}
		if nd.BatchCalls != 1 || nd.Cost != p.BatchCost(nd.Usage) || nd.Cost*2 < p.Cost(nd.Usage)-2 || nd.Cost*2 > p.Cost(nd.Usage)+2 {
			t.Errorf("%s: %d batch calls, cost %d; want 1 and half of %d", nd.Name, nd.BatchCalls, nd.Cost, p.Cost(nd.Usage))
		}
	}
}

// A run stopped while its batch is out resumes by asking for that batch's
// results: nothing is submitted twice, and the run ends as if it had not
// stopped.
func TestBatchResume(t *testing.T) {
	const n = 4
	var leads atomic.Int32
	srv := llmtest.NewAnthropic(batchHandler(n, &leads))
	srv.SetBatchRules(llmtest.BatchRules{Delay: 2 * time.Second})
	hs := newHarnessOn(t, srv, batchOpts, anthropicModels(srv))
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	id, err := hs.engine.Start(ctx, Spec{Task: "label four items", Lead: "lead", Tiers: []string{"cheap"}, BudgetUSD: price.Dollar, Urgency: UrgencyBatch})
	if err != nil {
		t.Fatal(err)
	}
	// Wait until every item's place in the batch is journaled.
	for {
		steps, err := hs.store.Steps(ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		placed := 0
		for k := range steps {
			if strings.HasPrefix(k, "batch/") {
				placed++
			}
		}
		if placed == n {
			break
		}
		if ctx.Err() != nil {
			t.Fatalf("%d of %d places journaled", placed, n)
		}
		time.Sleep(20 * time.Millisecond)
	}
	hs.close()
	if srv.Batches() != 1 {
		t.Fatalf("%d batches before the stop", srv.Batches())
	}
	hs.open(batchOpts)
	if _, err := hs.engine.Resume(ctx, id); err != nil {
		t.Fatal(err)
	}
	res, err := hs.engine.Wait(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	if res.Status != StatusDone || res.Answer != "rrrr" {
		t.Fatalf("resumed run ended %s %q: %s", res.Status, res.Answer, res.Error)
	}
	if b := srv.Batches(); b != 1 {
		t.Errorf("%d batches sent in all, want the 1 sent before the stop", b)
	}
}

// Expired items, and items that failed in a way a retry fixes, are sent
// again in a new batch and then succeed.
func TestBatchExpiredResent(t *testing.T) {
	const n = 3
	var leads, failed atomic.Int32
	h := batchHandler(n, &leads)
	srv := llmtest.NewAnthropic(func(c *llmtest.Call) llmtest.Reply {
		if !isLead(c) && taskName(c) == "item-2" && failed.Add(1) == 1 {
			return llmtest.Reply{Status: 529} // overloaded
		}
		return h(c)
	})
	var expired atomic.Int32
	srv.SetBatchRules(llmtest.BatchRules{Delay: 100 * time.Millisecond, Expire: func(string) bool { return expired.Add(1) == 1 }})
	hs := newHarnessOn(t, srv, batchOpts, anthropicModels(srv))
	res := hs.run(Spec{Task: "label", BudgetUSD: price.Dollar, Urgency: UrgencyBatch})
	if res.Status != StatusDone || res.Answer != "rrr" {
		t.Fatalf("run ended %s %q: %s", res.Status, res.Answer, res.Error)
	}
	if b := srv.Batches(); b != 2 {
		t.Errorf("%d batches, want 2 (the expired item again)", b)
	}
}

// Urgency and batch tiers are checked when a run starts.
func TestBatchSpecRefused(t *testing.T) {
	var leads atomic.Int32
	hs := newHarness(t, batchHandler(1, &leads), Options{})
	for _, c := range []struct {
		spec Spec
		want string
	}{
		{Spec{Urgency: "soon"}, `urgency "soon"`},
		{Spec{BatchTiers: []int{0}}, "urgency is not"},
		{Spec{Urgency: UrgencyBatch, BatchTiers: []int{2}}, "batch_tiers names tier 2"},
		// The harness's models are an OpenAI-compatible server of its
		// own, which serves no batch API.
		{Spec{Urgency: UrgencyBatch}, "has no batch API"},
	} {
		c.spec.Task, c.spec.Lead, c.spec.Tiers = "x", "lead", []string{"cheap", "strong"}
		_, err := hs.engine.Start(context.Background(), c.spec)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%+v: %v, want %q", c.spec, err, c.want)
		}
	}
}
