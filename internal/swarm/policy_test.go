package swarm

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hive-swarm/hive/internal/llm/llmtest"
	"github.com/hive-swarm/hive/internal/mcp"
	"github.com/hive-swarm/hive/internal/price"
)

// Each bound of the policy refuses a run that asks past it, naming its
// rule, before any model is called; knobs left at zero take the policy's
// bounds; the daily budget counts what today's runs may still spend.
func TestPolicyRefuses(t *testing.T) {
	h := func(c *llmtest.Call) llmtest.Reply { return finish("done") }
	pol := &RunPolicy{Models: []string{"lead", "cheap"}, LeadModels: []string{"lead"}, MCPServers: []string{},
		MaxBudget: 2 * price.Dollar, DailyBudget: 3 * price.Dollar, MaxWorkers: 10, MaxDepth: 1, MaxWall: time.Minute}
	hs := newHarness(t, h, Options{Policy: pol})
	ctx := context.Background()
	base := Spec{Task: "t", Lead: "lead", Tiers: []string{"cheap"}, BudgetUSD: price.Dollar}
	for rule, mod := range map[string]func(*Spec){
		"policy.max_workers":    func(s *Spec) { s.MaxWorkers = 11 },
		"policy.max_depth":      func(s *Spec) { s.MaxDepth = 2 },
		"policy.max_wall":       func(s *Spec) { s.Wall = time.Hour },
		"policy.max_budget_usd": func(s *Spec) { s.BudgetUSD = 5 * price.Dollar },
		"policy.models":         func(s *Spec) { s.Tiers = []string{"cheap", "strong"} },
		"policy.lead_models":    func(s *Spec) { s.Lead = "cheap" },
		"policy.mcp_servers":    func(s *Spec) { s.MCP = map[string]*mcp.ServerConfig{"fs": {Command: "x"}} },
	} {
		s := base
		mod(&s)
		_, err := hs.engine.Start(ctx, s)
		var pe *PolicyError
		if !errors.As(err, &pe) || pe.Rule != rule {
			t.Errorf("%s: Start = %v", rule, err)
		}
	}
	if n := len(hs.srv.Calls()); n != 0 {
		t.Fatalf("%d model calls for refused runs", n)
	}
	// A run that leaves its budget, workers and depth at zero gets the
	// policy's bounds.
	res := hs.run(Spec{Task: "a", Lead: "lead", Tiers: []string{"cheap"}})
	if res.Status != StatusDone {
		t.Fatalf("%s %s", res.Status, res.Error)
	}
	jr, _ := hs.store.Run(ctx, res.RunID)
	if !strings.Contains(string(jr.Spec), `"budget_nanos":2000000000`) || !strings.Contains(string(jr.Spec), `"max_workers":10`) || !strings.Contains(string(jr.Spec), `"max_depth":1`) {
		t.Errorf("the policy's bounds were not given to a run that left them at zero: %s", jr.Spec)
	}
	// Two runs held open (their lead waits) reserve $2 each of today's $3:
	// the second is refused while the first may still spend.
	slow := make(chan struct{})
	var once sync.Once
	release := func() { once.Do(func() { close(slow) }) }
	hs2 := newHarness(t, func(c *llmtest.Call) llmtest.Reply { <-slow; return finish("done") }, Options{Policy: &RunPolicy{DailyBudget: 3 * price.Dollar}})
	t.Cleanup(release) // before the harness closes, on every way out
	id, err := hs2.engine.Start(ctx, Spec{Task: "first", Lead: "lead", Tiers: []string{"cheap"}, BudgetUSD: 2 * price.Dollar})
	if err != nil {
		t.Fatal(err)
	}
	_, err = hs2.engine.Start(ctx, Spec{Task: "second", Lead: "lead", Tiers: []string{"cheap"}, BudgetUSD: 2 * price.Dollar})
	var pe *PolicyError
	if !errors.As(err, &pe) || pe.Rule != "policy.daily_budget_usd" || !strings.Contains(err.Error(), "may still spend $2") {
		t.Fatalf("a second run past today's budget: %v", err)
	}
	if _, err := hs2.engine.Start(ctx, Spec{Task: "small", Lead: "lead", Tiers: []string{"cheap"}}); !errors.As(err, &pe) || !strings.Contains(err.Error(), "needs a dollar budget") {
		t.Fatalf("a run without a budget under a daily budget: %v", err)
	}
	release()
	if res, err := hs2.engine.Wait(ctx, id); err != nil || res.Status != StatusDone {
		t.Fatalf("%+v %v", res, err)
	}
	// Done, the first run counts at what it spent: the second fits now.
	if _, err := hs2.engine.Start(ctx, Spec{Task: "second", Lead: "lead", Tiers: []string{"cheap"}, BudgetUSD: 2 * price.Dollar}); err != nil {
		t.Fatalf("after the first ended: %v", err)
	}
}

// policy.mcp_network refuses a run with an MCP server whose network it
// does not allow (one from a task file among them), before anything
// starts.
func TestPolicyMCPNetwork(t *testing.T) {
	host := &mcp.ServerConfig{Command: "x", Allow: []string{"*"}}
	none := &mcp.ServerConfig{Command: "x", Allow: []string{"*"}, Network: mcp.Network{Mode: mcp.NetworkNone}}
	list := &mcp.ServerConfig{Command: "x", Allow: []string{"*"}, Network: mcp.Network{Mode: mcp.NetworkAllow, Allow: []string{"a.org:443"}}}
	for _, tc := range []struct {
		req     string
		servers map[string]*mcp.ServerConfig
		refused string // the server named, or "" for none
	}{
		{"", map[string]*mcp.ServerConfig{"h": host}, ""},
		{mcp.RequireAllowlist, map[string]*mcp.ServerConfig{"n": none, "l": list}, ""},
		{mcp.RequireAllowlist, map[string]*mcp.ServerConfig{"n": none, "h": host}, "MCP server h has network \"host\""},
		{mcp.RequireNone, map[string]*mcp.ServerConfig{"n": none}, ""},
		{mcp.RequireNone, map[string]*mcp.ServerConfig{"n": none, "l": list}, `MCP server l has network ["a.org:443"], and every one must have network = "none"`},
	} {
		p := &RunPolicy{MCPNetwork: tc.req}
		_, err := p.apply(Spec{Task: "t", Lead: "lead", MCP: tc.servers})
		var pe *PolicyError
		switch {
		case tc.refused == "" && err != nil:
			t.Errorf("%q: %v", tc.req, err)
		case tc.refused != "" && (!errors.As(err, &pe) || pe.Rule != "policy.mcp_network" || !strings.Contains(pe.Why, tc.refused)):
			t.Errorf("%q: %v, want policy.mcp_network refusing %s", tc.req, err, tc.refused)
		}
	}
}
