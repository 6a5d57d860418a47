package swarm

import (
	"strings"
	"testing"

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
