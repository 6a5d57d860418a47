package mcpserver_test

import (
	"context"
	"strings"
	"testing"

	"github.com/hive-swarm/hive/internal/mcpserver"
	"github.com/hive-swarm/hive/internal/swarm"
)

// TestHostileOtherRuns: an MCP client (its tool arguments are chosen by
// the client's model) can neither read nor cancel a run it did not start
// (one that hive run or POST /v1/runs started on the same journal),
// whether it guesses a prefix of the ids' time stamp or knows the whole
// id; the refusal is the same as for a run that does not exist.
func TestHostileOtherRuns(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	id, err := e.engine.Start(ctx, swarm.Spec{Task: "SLOW private job of another user", Lead: "lead", Tiers: []string{"cheap"}, BudgetUSD: 1e9})
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, "calling the lead", func() bool { return e.script.leadCalls.Load() > 0 })
	c, _ := e.connect(ctx)
	for _, guess := range []string{id[:4], id, "r0000000000000000000"} {
		res := c.call(t, ctx, "run_status", map[string]any{"run_id": guess}, nil)
		var st mcpserver.RunStatus
		structured(t, res, &st)
		if !res.IsError || strings.Contains(st.Task, "private job") || !strings.Contains(text(res), "no run") {
			t.Errorf("run_status %s: %s %q", guess, text(res), st.Task)
		}
		res = c.call(t, ctx, "cancel_run", map[string]any{"run_id": guess}, nil)
		if !res.IsError || !strings.Contains(text(res), "no run") {
			t.Errorf("cancel_run %s: %s", guess, text(res))
		}
	}
	if s := e.status(id); s != swarm.StatusRunning {
		t.Errorf("the other run is %s", s)
	}
	e.engine.Cancel(ctx, id)
}

// TestHostileTiersLength: tiers is bounded in its members (configured
// models) and in its length.
func TestHostileTiersLength(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	c, _ := e.connect(ctx)
	tiers := make([]string, 20000)
	for i := range tiers {
		tiers[i] = "cheap"
	}
	res := c.call(t, ctx, "run_swarm", map[string]any{"task": "x", "tiers": tiers, "wait": false}, nil)
	if !res.IsError || !strings.Contains(text(res), "give at most 8") {
		t.Errorf("20,000 tiers accepted: %s", text(res))
		var out mcpserver.RunResult
		structured(t, res, &out)
		c.call(t, ctx, "cancel_run", map[string]any{"run_id": out.RunID}, nil)
	}
}
