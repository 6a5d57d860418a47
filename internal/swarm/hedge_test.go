package swarm

import (
	"sync"
	"testing"
	"time"

	"github.com/hive-swarm/hive/internal/config"
	"github.com/hive-swarm/hive/internal/llm/llmtest"
)

// A worker whose call straggles gets a second copy after the model's hedge
// delay; the copy's answer is taken, the straggler is cancelled, and both
// are billed on the node. Workers that answer in time are not hedged.
func TestHedgedStraggler(t *testing.T) {
	var mu sync.Mutex
	sent := map[string]int{}
	h := func(c *llmtest.Call) llmtest.Reply {
		if !isLead(c) {
			name := taskName(c)
			mu.Lock()
			sent[name]++
			n := sent[name]
			mu.Unlock()
			r := llmtest.Reply{ToolCalls: []llmtest.ToolCall{toolCall("submit", submitArgs{Report: "ok " + name})}}
			if name == "t-1" && n == 1 {
				r.Latency = 20 * time.Second // the straggler; its context ends it
			}
			return r
		}
		if len(c.ToolResults()) == 0 {
			return llmtest.Reply{ToolCalls: []llmtest.ToolCall{toolCall("delegate", delegateArgs{Tasks: tasks(4, "t")})}}
		}
		return llmtest.Reply{ToolCalls: []llmtest.ToolCall{toolCall("finish", finishArgs{Answer: "done"})}}
	}
	hs := newHarnessWith(t, h, Options{}, func(c *config.Config) {
		c.Models["cheap"].Hedge = &config.Hedge{After: "1s", MaxShare: 1}
	})
	start := time.Now()
	res := hs.run(Spec{Task: "four", BudgetUSD: 1e9})
	took := time.Since(start)
	if res.Status != StatusDone {
		t.Fatalf("run ended %s: %s", res.Status, res.Error)
	}
	if took > 15*time.Second {
		t.Fatalf("the run took %v: the straggler (20 s) was waited for", took)
	}
	mu.Lock()
	if sent["t-1"] != 2 || sent["t-0"] != 1 {
		t.Errorf("requests per task %v: want t-1 twice, the others once", sent)
	}
	mu.Unlock()
	var sum int64
	for _, n := range hs.nodes(res.RunID) {
		sum += int64(n.Cost)
		switch {
		case n.Name == "t-1":
			if n.Hedges != 1 || n.HedgeWins != 1 || n.HedgeCost <= 0 || n.Cost <= n.HedgeCost || n.Report != "ok t-1" {
				t.Errorf("t-1: hedges %d, wins %d, hedge cost %d of %d, report %q", n.Hedges, n.HedgeWins, n.HedgeCost, n.Cost, n.Report)
			}
		case n.Role == RoleWorker:
			if n.Hedges != 0 {
				t.Errorf("%s answered at once but was hedged", n.Name)
			}
		}
	}
	if sum != int64(res.Cost) {
		t.Errorf("node costs sum to %d, the run's cost is %d", sum, res.Cost)
	}
}
