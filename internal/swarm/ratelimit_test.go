package swarm

import (
	"sync"
	"testing"

	"github.com/hive-swarm/hive/internal/llm/llmtest"
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
