package swarm

import (
	"context"
	"errors"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hive-swarm/hive/internal/journal"
	"github.com/hive-swarm/hive/internal/llm/llmtest"
	"github.com/hive-swarm/hive/internal/mcp"
	"github.com/hive-swarm/hive/internal/screen"
)

// pending waits until run id has a pending approval, and returns it.
func pending(t *testing.T, hs *harness, id string) journal.Approval {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for {
		as, err := hs.store.Approvals(ctx, id, false)
		if err != nil {
			t.Fatal(err)
		}
		if len(as) > 0 {
			return as[0]
		}
		if ctx.Err() != nil {
			t.Fatal("no approval was asked for")
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func holdScreen(t *testing.T, on, pattern string) *screen.Screen {
	return newScreen(t, screen.Config{Rules: []screen.RuleConfig{{Name: "needs-a-person", Pattern: pattern, On: []string{on}, Action: "hold"}}})
}

// A task the policy holds waits for a person before the lead's first
// call, across a restart of the process: the request is asked once, no
// model is called while it waits, and once approved (through the new
// engine) the run goes on and ends.
func TestApprovalHoldsTaskAcrossRestart(t *testing.T) {
	var calls atomic.Int32
	h := func(c *llmtest.Call) llmtest.Reply {
		calls.Add(1)
		return finish("done")
	}
	opts := Options{Screen: holdScreen(t, "task", `(?i)\bproduction\b`)}
	hs := newHarness(t, h, opts)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	id, err := hs.engine.Start(ctx, Spec{Task: "migrate the production database", Lead: "lead", Tiers: []string{"cheap"}})
	if err != nil {
		t.Fatal(err)
	}
	a := pending(t, hs, id)
	if a.ID != "task" || a.Kind != "task" || !strings.Contains(a.What, "needs-a-person") || !strings.Contains(a.What, "migrate the production database") {
		t.Fatalf("the request: %+v", a)
	}
	// The request is journaled before its event: wait for the event, or
	// the restart may come between them (and the decision below before
	// the resumed run asks again).
	for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		evs, _ := hs.store.Events(ctx, id, 0, 0)
		if slices.ContainsFunc(evs, func(e journal.Event) bool { return strings.Contains(string(e.Data), "waiting for a person") }) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("no event says the run waits for a person")
		}
	}
	hs.close()
	hs.open(opts)
	if _, err := hs.engine.Resume(ctx, id); err != nil {
		t.Fatal(err)
	}
	if as, _ := hs.store.Approvals(ctx, id, true); len(as) != 1 || as[0].Status != journal.ApprovalPending {
		t.Fatalf("after the restart: %+v", as)
	}
	if n := calls.Load(); n != 0 {
		t.Fatalf("%d model calls while the task waited", n)
	}
	if err := hs.engine.Decide(ctx, id, "task", true, "checked with the DBA", "ada"); err != nil {
		t.Fatal(err)
	}
	if err := hs.engine.Decide(ctx, id, "task", false, "too late", "bob"); !errors.Is(err, ErrNotPending) {
		t.Fatalf("a second decision: %v", err)
	}
	res, err := hs.engine.Wait(ctx, id)
	if err != nil || res.Status != StatusDone {
		t.Fatalf("the approved run: %+v %v", res, err)
	}
	var texts []string
	for ev := range hs.engine.Watch(ctx, id, 0) {
		if ev.Type == EventApproval {
			texts = append(texts, ev.Text)
		}
	}
	if len(texts) < 2 || !strings.Contains(texts[len(texts)-1], "approved by ada: checked with the DBA") {
		t.Errorf("approval events %q", texts)
	}
}

// A denied task ends the run failed, naming who denied it and why; one no
// one decides expires at the policy's timeout.
func TestApprovalDeniedAndExpired(t *testing.T) {
	h := func(c *llmtest.Call) llmtest.Reply { return finish("done") }
	hs := newHarness(t, h, Options{Screen: holdScreen(t, "task", `(?i)\bproduction\b`), Approval: &ApprovalPolicy{Timeout: 300 * time.Millisecond}})
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	id, err := hs.engine.Start(ctx, Spec{Task: "drop the production tables", Lead: "lead", Tiers: []string{"cheap"}})
	if err != nil {
		t.Fatal(err)
	}
	pending(t, hs, id)
	if err := hs.engine.Decide(ctx, id, "task", false, "not today", "ada"); err != nil {
		t.Fatal(err)
	}
	res, _ := hs.engine.Wait(ctx, id)
	if res.Status != StatusFailed || !strings.Contains(res.Error, "denied by ada: not today") {
		t.Fatalf("a denied task: %s %q", res.Status, res.Error)
	}
	res = hs.run(Spec{Task: "restart production", Lead: "lead", Tiers: []string{"cheap"}})
	if res.Status != StatusFailed || !strings.Contains(res.Error, "no one approved it in time") {
		t.Fatalf("an undecided task: %s %q", res.Status, res.Error)
	}
	if len(hs.srv.Calls()) != 0 {
		t.Fatalf("%d model calls for tasks never allowed", len(hs.srv.Calls()))
	}
}

// A hostile worker's report that the policy holds waits for a person; a
// denial goes back to the worker, who must submit again, and the lead
// sees only what was allowed.
func TestApprovalHoldsReport(t *testing.T) {
	h := func(c *llmtest.Call) llmtest.Reply {
		if !isLead(c) {
			if len(c.ToolResults()) > 0 {
				return submit("a summary without the list")
			}
			return submit("here are all customer emails: ...")
		}
		if len(c.ToolResults()) == 0 {
			return llmtest.Reply{ToolCalls: []llmtest.ToolCall{toolCall("delegate", delegateArgs{Tasks: tasks(1, "t")})}}
		}
		for _, m := range c.Messages {
			if strings.Contains(m.Text(), "customer emails") {
				t.Error("the lead saw the held report")
			}
		}
		return finish("done")
	}
	hs := newHarness(t, h, Options{Screen: holdScreen(t, "report", `(?i)customer emails`)})
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	id, err := hs.engine.Start(ctx, Spec{Task: "summarise the CRM", Lead: "lead", Tiers: []string{"cheap"}})
	if err != nil {
		t.Fatal(err)
	}
	a := pending(t, hs, id)
	if a.Kind != "report" || a.NodeID == "" || !strings.HasPrefix(a.ID, a.NodeID+"/report-") {
		t.Fatalf("the request: %+v", a)
	}
	if err := hs.engine.Decide(ctx, id, a.ID, false, "personal data", "ada"); err != nil {
		t.Fatal(err)
	}
	res, err := hs.engine.Wait(ctx, id)
	if err != nil || res.Status != StatusDone {
		t.Fatalf("%+v %v", res, err)
	}
	if w := hs.worker(id); w.Report != "a summary without the list" {
		t.Fatalf("the accepted report %q", w.Report)
	}
}

// An MCP tool the policy names waits for a person at each call; nothing
// reaches the server until it is approved, and a denied call is an error
// the worker is told.
func TestApprovalHoldsTool(t *testing.T) {
	calc := newCalcServer(t)
	w := &steps{calls: []llmtest.ToolCall{
		toolCall("calc__add", map[string]any{"a": 2, "b": 40}),
		toolCall("calc__add", map[string]any{"a": 1, "b": 1}),
		toolCall("submit", map[string]any{"report": "42"}),
	}}
	h := func(c *llmtest.Call) llmtest.Reply {
		if isLead(c) {
			if turns(c) == 0 {
				return llmtest.Reply{ToolCalls: []llmtest.ToolCall{toolCall("delegate", delegateArgs{Tasks: tasks(1, "t")})}}
			}
			return finish("done")
		}
		return w.reply(c)
	}
	hs := newHarness(t, h, Options{Approval: &ApprovalPolicy{Tools: []string{"calc__*"}}})
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	id, err := hs.engine.Start(ctx, Spec{Task: "add", Lead: "lead", Tiers: []string{"cheap"}, MCP: map[string]*mcp.ServerConfig{
		"calc": {URL: calc.URL, Allow: []string{"add"}},
	}})
	if err != nil {
		t.Fatal(err)
	}
	a := pending(t, hs, id)
	if a.Kind != "tool" || !strings.Contains(a.What, `calc__add with {"a":2,"b":40}`) || calc.count("add") != 0 {
		t.Fatalf("the first request: %+v, %d calls reached the server", a, calc.count("add"))
	}
	if err := hs.engine.Decide(ctx, id, a.ID, true, "", "ada"); err != nil {
		t.Fatal(err)
	}
	b := pending(t, hs, id)
	if b.ID == a.ID {
		t.Fatalf("the second call reused the first request %s", a.ID)
	}
	if err := hs.engine.Decide(ctx, id, b.ID, false, "enough", "ada"); err != nil {
		t.Fatal(err)
	}
	res, err := hs.engine.Wait(ctx, id)
	if err != nil || res.Status != StatusDone {
		t.Fatalf("%+v %v", res, err)
	}
	if calc.count("add") != 1 || w.result(0) != "42" || !strings.Contains(w.result(1), "not allowed: denied by ada: enough") {
		t.Fatalf("%d calls reached the server; the worker saw %q and %q", calc.count("add"), w.result(0), w.result(1))
	}
}
