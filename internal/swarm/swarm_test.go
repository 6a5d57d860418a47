package swarm

import (
	"runtime"
	"strings"
	"testing"
	"time"
	"weak"

	"github.com/hive-swarm/hive/internal/llm/llmtest"
)

func TestDelegateAndFinish(t *testing.T) {
	h := func(c *llmtest.Call) llmtest.Reply {
		if !isLead(c) {
			return llmtest.Reply{ToolCalls: []llmtest.ToolCall{toolCall("submit", submitArgs{Report: "report of " + taskName(c)})}}
		}
		if len(c.ToolResults()) == 0 {
			return llmtest.Reply{ToolCalls: []llmtest.ToolCall{toolCall("delegate", delegateArgs{Tasks: tasks(3, "t")})}}
		}
		var parts []string
		for _, r := range reports(c) {
			parts = append(parts, r.Report)
		}
		return llmtest.Reply{ToolCalls: []llmtest.ToolCall{toolCall("finish", finishArgs{Answer: strings.Join(parts, "; ")})}}
	}
	hs := newHarness(t, h, Options{})
	res := hs.run(Spec{Task: "count to three", BudgetUSD: 1e9})
	if res.Status != StatusDone {
		t.Fatalf("run ended %s: %s", res.Status, res.Error)
	}
	want := "report of t-0; report of t-1; report of t-2"
	if res.Answer != want {
		t.Fatalf("answer = %q, want %q", res.Answer, want)
	}
	if got := hs.srv.Requests(); got != 5 {
		t.Fatalf("server saw %d requests, want 5 (2 lead + 3 workers)", got)
	}
	nodes := hs.nodes(res.RunID)
	if len(nodes) != 4 {
		t.Fatalf("%d nodes, want 4", len(nodes))
	}
	var sum int64
	for _, n := range nodes {
		if n.Status != StatusDone {
			t.Errorf("node %s is %s", n.ID, n.Status)
		}
		sum += int64(n.Cost)
	}
	if sum != int64(res.Cost) || res.Cost <= 0 {
		t.Fatalf("node costs sum to %d, run cost %d", sum, res.Cost)
	}
}

// A finished run's state (its tree, its journaled steps) is not kept by the
// engine: a long-lived process that runs many swarms must not keep it
// (TestEndedRunsLeaveNoState checks that nothing else stays either).
func TestFinishedRunIsReleased(t *testing.T) {
	var hs *harness
	var live weak.Pointer[run]
	h := func(c *llmtest.Call) llmtest.Reply {
		if !isLead(c) {
			return llmtest.Reply{ToolCalls: []llmtest.ToolCall{toolCall("submit", submitArgs{Report: "ok"})}}
		}
		if turns(c) == 0 {
			return llmtest.Reply{ToolCalls: []llmtest.ToolCall{toolCall("delegate", delegateArgs{Tasks: tasks(20, "t")})}}
		}
		hs.engine.mu.Lock()
		for _, s := range hs.engine.slots {
			if s.run != nil {
				live = weak.Make(s.run)
			}
		}
		hs.engine.mu.Unlock()
		return finish("done")
	}
	hs = newHarness(t, h, Options{})
	if res := hs.run(Spec{Task: "release", BudgetUSD: 1e9}); res.Answer != "done" {
		t.Fatalf("run: %+v", res)
	}
	if live.Value() == nil {
		t.Fatal("the run was not live during its lead's last turn")
	}
	for range 5 {
		runtime.GC()
		if live.Value() == nil {
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Error("the engine still holds the finished run")
}
