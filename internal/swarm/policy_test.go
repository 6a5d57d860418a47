package swarm

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hive-swarm/hive/internal/config"
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

// A cancelled run counts for what it spent, so resuming it must fit
// under today's cap again for its whole budget: with the cap taken by a
// run started after the cancel, the resumption is refused, naming the
// rule, and the run stays cancelled; once that run ends it resumes.
func TestPolicyResumeReadmits(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	slow, slowA := make(chan struct{}), make(chan struct{})
	var once, onceA sync.Once
	release := func() { once.Do(func() { close(slow) }) }
	releaseA := func() { onceA.Do(func() { close(slowA) }) }
	hs := newHarness(t, func(c *llmtest.Call) llmtest.Reply {
		switch {
		case strings.Contains(c.LastUserText(), "a: wait"):
			<-slowA
		case strings.Contains(c.LastUserText(), "wait"):
			<-slow
		}
		return finish("done")
	}, Options{Policy: &RunPolicy{DailyBudget: 3 * price.Dollar}})
	t.Cleanup(release)
	t.Cleanup(releaseA)
	a, err := hs.engine.Start(ctx, Spec{Task: "a: wait", Lead: "lead", Tiers: []string{"cheap"}, BudgetUSD: 2 * price.Dollar})
	if err != nil {
		t.Fatal(err)
	}
	if err := hs.engine.Cancel(ctx, a); err != nil {
		t.Fatal(err)
	}
	releaseA() // its server answers, as a real one would
	if res, _ := hs.engine.Wait(ctx, a); res.Status != StatusCancelled {
		t.Fatalf("a: %s", res.Status)
	}
	b, err := hs.engine.Start(ctx, Spec{Task: "b: wait", Lead: "lead", Tiers: []string{"cheap"}, BudgetUSD: 2 * price.Dollar})
	if err != nil {
		t.Fatalf("b after a was cancelled: %v", err)
	}
	_, err = hs.engine.Resume(ctx, a)
	var pe *PolicyError
	if !errors.As(err, &pe) || pe.Rule != "policy.daily_budget_usd" {
		t.Fatalf("resuming a with today's budget taken by b: %v", err)
	}
	if jr, _ := hs.store.Run(ctx, a); jr.Status != string(StatusCancelled) {
		t.Fatalf("a refused resumption left a %s", jr.Status)
	}
	release()
	if res, _ := hs.engine.Wait(ctx, b); res.Status != StatusDone {
		t.Fatalf("b: %s %s", res.Status, res.Error)
	}
	if _, err := hs.engine.Resume(ctx, a); err != nil {
		t.Fatalf("resuming a once b ended: %v", err)
	}
	if res, _ := hs.engine.Wait(ctx, a); res.Status != StatusDone {
		t.Fatalf("a resumed: %s %s", res.Status, res.Error)
	}
}

// An API token's own bounds: its runs' budgets and what they may spend
// together today, beside the day's cap of all runs; another token's runs
// and the command line's do not count against it.
func TestPolicyPrincipal(t *testing.T) {
	ctx := context.Background()
	slow := make(chan struct{})
	var once sync.Once
	release := func() { once.Do(func() { close(slow) }) }
	hs := newHarness(t, func(c *llmtest.Call) llmtest.Reply { <-slow; return finish("done") },
		Options{Policy: &RunPolicy{Principals: map[string]PrincipalPolicy{"ci": {MaxBudget: price.Dollar, DailyBudget: 2 * price.Dollar}}}})
	t.Cleanup(release)
	spec := func(who string, b price.Amount) Spec {
		return Spec{Task: "t", Lead: "lead", Tiers: []string{"cheap"}, BudgetUSD: b, Principal: who}
	}
	var pe *PolicyError
	if _, err := hs.engine.Start(ctx, spec("ci", 2*price.Dollar)); !errors.As(err, &pe) || pe.Rule != "serve.tokens.ci.max_budget_usd" {
		t.Fatalf("a ci run over its max budget: %v", err)
	}
	// A budget the configuration gave by default, not one asked for, is
	// lowered to the token's bound: ci's $1 a run, not the default $2.
	dflt := spec("ci", 2*price.Dollar)
	dflt.BudgetDefault = true
	var ids []string
	for _, s := range []Spec{dflt, spec("ci", price.Dollar), spec("", 5*price.Dollar), spec("ops", 5*price.Dollar)} {
		id, err := hs.engine.Start(ctx, s)
		if err != nil {
			t.Fatalf("%+v: %v", s, err)
		}
		ids = append(ids, id)
	}
	if jr, _ := hs.store.Run(ctx, ids[0]); jr.Principal != "ci" || !strings.Contains(string(jr.Spec), `"budget_nanos":1000000000`) {
		t.Fatalf("a ci run without a budget: principal %q, spec %s", jr.Principal, jr.Spec)
	}
	_, err := hs.engine.Start(ctx, spec("ci", price.Dollar))
	if !errors.As(err, &pe) || pe.Rule != "serve.tokens.ci.daily_budget_usd" || !strings.Contains(err.Error(), "token ci") {
		t.Fatalf("ci's third run of $1 under its $2 a day: %v", err)
	}
	release()
	for _, id := range ids {
		hs.engine.Wait(ctx, id)
	}
}

// A tier whose hedges go to a model the policy does not allow is refused:
// a hedged call is a call to that model.
func TestPolicyHedgeTarget(t *testing.T) {
	hs := newHarnessWith(t, func(c *llmtest.Call) llmtest.Reply { return finish("done") },
		Options{Policy: &RunPolicy{Models: []string{"lead", "cheap"}}}, func(c *config.Config) {
			c.Models["backup"] = &config.Model{Name: "backup", Provider: "openai", ID: "backup", BaseURL: c.Models["cheap"].BaseURL}
			c.Models["cheap"].Hedge = &config.Hedge{After: "200ms", To: "backup", MaxShare: 1}
		})
	_, err := hs.engine.Start(context.Background(), Spec{Task: "t", Lead: "lead", Tiers: []string{"cheap"}})
	var pe *PolicyError
	if !errors.As(err, &pe) || pe.Rule != "policy.models" || !strings.Contains(err.Error(), "hedges to backup") {
		t.Fatalf("a tier hedging outside the policy: %v", err)
	}
	if n := len(hs.srv.Calls()); n != 0 {
		t.Fatalf("%d model calls", n)
	}
}

// A tier's rule bounds its workers: only the built-in tools it names are
// offered, and a hostile worker calling another (run_code) is refused;
// it writes only the paths its globs name, however it spells another
// ("docs/../src/x", "./src/x", "DOCS/x"); the MCP servers it does not
// name are not offered, and their tools are unknown to it. The lead's
// rule bounds the lead's MCP servers the same way.
func TestPolicyToolRules(t *testing.T) {
	dir := workspaceDir(t, map[string]string{"docs/a.md": "# a\n", "src/x.go": "package src\n"})
	calc := newCalcServer(t)
	w := &steps{calls: []llmtest.ToolCall{
		toolCall("run_code", map[string]any{"language": "python", "code": "print(1)"}),
		toolCall("write_file", map[string]any{"path": "src/x.go", "content": "package evil\n"}),
		toolCall("write_file", map[string]any{"path": "docs/../src/x.go", "content": "package evil\n"}),
		toolCall("edit_file", map[string]any{"path": "./src/x.go", "old_string": "src", "new_string": "evil"}),
		toolCall("write_file", map[string]any{"path": "DOCS/b.md", "content": "x"}),
		toolCall("calc__add", map[string]any{"a": 1, "b": 2}),
		toolCall("write_file", map[string]any{"path": "docs/b.md", "content": "# b\n"}),
		toolCall("submit", map[string]any{"report": "wrote docs/b.md"}),
	}}
	var workerTools, leadTools notes
	h := func(c *llmtest.Call) llmtest.Reply {
		if isLead(c) {
			if turns(c) == 0 {
				leadTools.add(strings.Join(c.Tools, " "))
			}
			return leadOneTask(c, TaskSpec{Name: "docs", Instructions: "Write docs."})
		}
		if turns(c) == 0 {
			workerTools.add(strings.Join(c.Tools, " "))
		}
		return w.reply(c)
	}
	pol := &RunPolicy{
		Workers: &ToolRule{Key: "policy.workers", Tools: BuiltinTools},
		Tiers: map[string]*ToolRule{"cheap": {Key: "policy.tiers.cheap", Tools: []string{"list_files", "read_file", "write_file", "edit_file"},
			Write: []string{"docs/**"}, MCPServers: []string{}}},
		Lead: &ToolRule{Key: "policy.lead", MCPServers: []string{}},
	}
	hs := newHarness(t, h, Options{Policy: pol})
	res := hs.run(Spec{Task: "docs", BudgetUSD: 1e9, Workspace: dir, MCP: map[string]*mcp.ServerConfig{
		"calc": {URL: calc.URL, Allow: []string{"add"}, Roles: []string{"worker", "lead"}}}})
	if res.Status != StatusDone {
		t.Fatalf("run %s: %s", res.Status, res.Error)
	}
	if got := workerTools.all(); len(got) != 1 || got[0] != "submit list_files read_file write_file edit_file" {
		t.Fatalf("the cheap worker was offered %q", got)
	}
	if got := leadTools.all(); len(got) != 1 || strings.Contains(got[0], "calc__") {
		t.Fatalf("the lead was offered %q", got)
	}
	if r := w.result(0); !strings.Contains(r, "policy.tiers.cheap.tools") {
		t.Errorf("run_code: %q", r)
	}
	for i := 1; i <= 4; i++ {
		if r := w.result(i); !strings.Contains(r, "policy.tiers.cheap.write") {
			t.Errorf("write %d: %q", i, r)
		}
	}
	if r := w.result(5); !strings.Contains(r, `unknown tool "calc__add"`) || calc.count("add") != 0 {
		t.Errorf("calc__add: %q, %d calls reached the server", r, calc.count("add"))
	}
	if r := w.result(6); strings.Contains(r, "policy") || strings.Contains(r, "rror") {
		t.Errorf("the allowed write: %q", r)
	}
	_, _, patch, err := hs.store.Artifact(context.Background(), res.RunID, "1/patch")
	if err != nil || !strings.Contains(string(patch), "docs/b.md") || strings.Contains(string(patch), "src/x.go") || strings.Contains(string(patch), "evil") {
		t.Fatalf("the worker's patch (%v):\n%s", err, patch)
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

// A tier's read rule bounds what its file tools show: read_file refuses a
// path outside it, also one that leads outside through a link; list_files
// leaves out the files outside it and grep their lines.
func TestPolicyReadRule(t *testing.T) {
	dir := workspaceDir(t, map[string]string{"docs/a.md": "hello docs\n", "src/secret.go": "hello secret\n"})
	if err := os.Symlink("../src/secret.go", filepath.Join(dir, "docs", "ln.md")); err != nil {
		t.Fatal(err)
	}
	w := &steps{calls: []llmtest.ToolCall{
		toolCall("read_file", map[string]any{"path": "src/secret.go"}),
		toolCall("read_file", map[string]any{"path": "docs/ln.md"}),
		toolCall("list_files", map[string]any{"recursive": true}),
		toolCall("grep", map[string]any{"pattern": "hello"}),
		toolCall("read_file", map[string]any{"path": "docs/a.md"}),
		toolCall("submit", map[string]any{"report": "read"}),
	}}
	h := scriptOneTask(TaskSpec{Name: "docs", Instructions: "Read the docs."}, w)
	pol := &RunPolicy{Tiers: map[string]*ToolRule{"cheap": {Key: "policy.tiers.cheap", Tools: []string{"list_files", "read_file", "grep"}, Read: []string{"docs/**"}}}}
	hs := newHarness(t, h, Options{Policy: pol})
	if res := hs.run(Spec{Task: "docs", BudgetUSD: 1e9, Workspace: dir}); res.Status != StatusDone {
		t.Fatalf("run %s: %s", res.Status, res.Error)
	}
	for i := range 2 {
		if r := w.result(i); !strings.Contains(r, "policy.tiers.cheap.read") || strings.Contains(r, "hello secret") {
			t.Errorf("read %d: %q", i, r)
		}
	}
	if r := w.result(2); strings.Contains(r, "secret.go") || strings.Contains(r, "ln.md") || !strings.Contains(r, "docs/a.md") {
		t.Errorf("list_files: %q", r)
	}
	if r := w.result(3); strings.Contains(r, "secret") || !strings.Contains(r, "hello docs") {
		t.Errorf("grep: %q", r)
	}
	if r := w.result(4); !strings.Contains(r, "hello docs") {
		t.Errorf("the allowed read: %q", r)
	}
}
