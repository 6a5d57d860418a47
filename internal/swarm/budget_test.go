package swarm

import (
	"context"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hive-swarm/hive/internal/llm"
	"github.com/hive-swarm/hive/internal/llm/llmtest"
	"github.com/hive-swarm/hive/internal/price"
)

// 1,000 workers race for a budget that covers 100 of their calls: the
// run's spend never exceeds the budget, the rest are stopped cleanly, and
// the lead answers in its final turn from its reserve.
func TestBudgetHoldsAgainstThousandWorkers(t *testing.T) {
	var workerCalls atomic.Int64
	h := func(c *llmtest.Call) llmtest.Reply {
		if !isLead(c) {
			workerCalls.Add(1)
			rep := submit("done " + taskName(c))
			rep.Usage = &llm.Usage{InputTokens: int64(len(c.Body) / 3), OutputTokens: 2048} // near the worst case
			return rep
		}
		if turns(c) == 0 {
			// A real model's output stays within max_tokens: bill it so.
			return llmtest.Reply{Usage: &llm.Usage{InputTokens: 1000, OutputTokens: 2000}, ToolCalls: []llmtest.ToolCall{toolCall("delegate", delegateArgs{Tasks: tasks(1000, "w")})}}
		}
		if !strings.Contains(c.LastUserText(), "budget is exhausted") {
			return finish(fmt.Sprintf("no final turn; worker calls %d; last user text %q", workerCalls.Load(), clip(c.LastUserText(), 200)))
		}
		return finish("final answer from what arrived")
	}
	hs := newHarness(t, h, Options{})

	// What one worker call and one lead call can cost at most.
	ws := tasks(1, "w")[0]
	ws.Name, ws.Instructions = "w-999", "Say the number w-999."
	cheap, _ := hs.reg.Get("cheap")
	lead, _ := hs.reg.Get("lead")
	spec := Spec{Task: "race", Lead: "lead", Tiers: []string{"cheap"}, MaxWorkers: 1000}.withDefaults()
	r := &run{spec: spec}
	workerWorst, _, _ := worstCase(cheap, &llm.Request{System: workerSystem, MaxTokens: spec.CallTokens, Tools: r.workerTools(1, ""), Messages: []llm.Message{llm.UserText(taskPrompt(ws))}})
	leadWorst := lead.Price.WorstCase(400_000, int64(spec.CallTokens))
	spec.Task = "race"
	lr := leadRequest(spec)
	first, _, _ := worstCase(lead, &lr) // the lead's delegate turn
	spec.LeadReserve = leadWorst
	spec.BudgetUSD = leadWorst + first + 100*workerWorst
	spec.Task = "race"

	ctx := context.Background()
	id, err := hs.engine.Start(ctx, spec)
	if err != nil {
		t.Fatal(err)
	}
	res, err := hs.engine.Wait(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	if res.Status != StatusDone || res.Answer != "final answer from what arrived" {
		t.Fatalf("run %s: %q %q", res.Status, res.Answer, res.Error)
	}
	if res.Cost > spec.BudgetUSD {
		t.Fatalf("spent %s of a %s budget", res.Cost, spec.BudgetUSD)
	}
	n := workerCalls.Load()
	// Holds are worst cases and bills come in under them, so at least the
	// 100 covered calls run, and more as settled bills free room; the
	// spend check above is the guarantee.
	if n < 100 || n > 500 {
		t.Fatalf("%d worker calls were sent; the budget covers 100 worst cases", n)
	}
	nodes := hs.nodes(id)
	byStatus := map[Status]int{}
	for _, nd := range nodes {
		byStatus[nd.Status]++
	}
	if byStatus[StatusDone] != int(n)+1 || byStatus[StatusCancelled] != 1000-int(n) {
		t.Fatalf("statuses %v with %d worker calls", byStatus, n)
	}
	t.Logf("budget %s, spent %s (%.1f%%), %d of 1000 workers ran", spec.BudgetUSD, res.Cost, 100*float64(res.Cost)/float64(spec.BudgetUSD), n)
}

// TestBudgetWaveWaits: a wave of ten workers under a budget that holds
// three worst cases at once, whose bills come in far below them. A
// worker that cannot reserve while the others' holds are out waits for
// them to settle, rather than ending the wave: every task runs.
func TestBudgetWaveWaits(t *testing.T) {
	callTokens := Spec{}.withDefaults().CallTokens
	h := func(c *llmtest.Call) llmtest.Reply {
		if !isLead(c) {
			rep := submit("done " + taskName(c))
			rep.Usage = &llm.Usage{InputTokens: 100, OutputTokens: 10}
			rep.Latency = 200 * time.Millisecond // the wave's calls overlap
			return rep
		}
		if turns(c) == 0 {
			// Billed near its worst case, so that the room it leaves is
			// the workers' few.
			return llmtest.Reply{Usage: &llm.Usage{InputTokens: int64(len(c.Body) / 2), OutputTokens: int64(callTokens)}, ToolCalls: []llmtest.ToolCall{toolCall("delegate", delegateArgs{Tasks: tasks(10, "w")})}}
		}
		return finish("all reported")
	}
	hs := newHarness(t, h, Options{})
	cheap, _ := hs.reg.Get("cheap")
	lead, _ := hs.reg.Get("lead")
	spec := Spec{Task: "wave", Lead: "lead", Tiers: []string{"cheap"}, MaxWorkers: 10}.withDefaults()
	ws := tasks(1, "w")[0]
	r := &run{spec: spec}
	workerWorst, _, _ := worstCase(cheap, &llm.Request{System: workerSystem, MaxTokens: spec.CallTokens, Tools: r.workerTools(1, ""), Messages: []llm.Message{llm.UserText(taskPrompt(ws))}})
	lr := leadRequest(spec)
	first, _, _ := worstCase(lead, &lr)
	spec.LeadReserve = 2 * first
	spec.BudgetUSD = spec.LeadReserve + first + 3*workerWorst

	res := hs.run(spec)
	t.Logf("budget %s, worker worst %s, lead first %s, spent %s", spec.BudgetUSD, workerWorst, first, res.Cost)
	if res.Status != StatusDone || res.Answer != "all reported" {
		t.Fatalf("run %s: %q %q", res.Status, res.Answer, res.Error)
	}
	done := 0
	for _, nd := range hs.nodes(res.RunID) {
		if nd.Role == RoleWorker && nd.Status == StatusDone {
			done++
		}
	}
	if done != 10 || res.Cost > spec.BudgetUSD {
		t.Fatalf("%d of 10 workers done, spent %s of %s", done, res.Cost, spec.BudgetUSD)
	}
}

// TestFinalTurnFits: thirty workers' long reports make the lead's
// conversation cost more than the whole budget; when the budget runs
// out, the final turn is cut to the task and the reports, each
// shortened to what the money left pays for, and the lead still answers.
func TestFinalTurnFits(t *testing.T) {
	long := strings.Repeat("a finding of some length; ", 2500) // 65 KB
	var finalText atomic.Value
	h := func(c *llmtest.Call) llmtest.Reply {
		if !isLead(c) {
			rep := submit(long)
			rep.Usage = &llm.Usage{InputTokens: 500, OutputTokens: 100}
			return rep
		}
		if len(c.Tools) == 1 { // the final turn
			finalText.Store(c.LastUserText())
			return finish("answered from cut reports")
		}
		if turns(c) == 0 {
			return llmtest.Reply{Usage: &llm.Usage{InputTokens: 1000, OutputTokens: 100}, ToolCalls: []llmtest.ToolCall{toolCall("delegate", delegateArgs{Tasks: tasks(30, "w")})}}
		}
		return finish("not the final turn")
	}
	hs := newHarness(t, h, Options{})
	res := hs.run(Spec{Task: "thirty long reports", Lead: "lead", Tiers: []string{"cheap"}, MaxWorkers: 30, BudgetUSD: 10 * price.Cent, LeadReserve: 3 * price.Cent})
	if res.Status != StatusDone || res.Answer != "answered from cut reports" {
		t.Fatalf("run %s: %q %q", res.Status, res.Answer, res.Error)
	}
	got, _ := finalText.Load().(string)
	if !strings.Contains(got, "cut to fit the budget left") || strings.Count(got, `"report":"a finding`) != 30 || len(got) > 100_000 {
		t.Errorf("final turn's prompt (%d bytes): %.300s", len(got), got)
	}
	if res.Cost > 10*price.Cent {
		t.Errorf("spent %s of $0.10", res.Cost)
	}
}
