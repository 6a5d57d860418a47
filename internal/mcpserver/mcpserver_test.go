package mcpserver_test

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/hive-swarm/hive/internal/mcpserver"
	"github.com/hive-swarm/hive/internal/server"
	"github.com/hive-swarm/hive/internal/swarm"
)

func TestTools(t *testing.T) {
	e := newEnv(t)
	c, _ := e.connect(context.Background())
	res, err := c.ListTools(context.Background(), nil)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, tool := range res.Tools {
		names = append(names, tool.Name)
		if tool.InputSchema == nil || tool.OutputSchema == nil {
			t.Errorf("%s: input schema %v, output schema %v", tool.Name, tool.InputSchema, tool.OutputSchema)
		}
	}
	slices.Sort(names)
	if !slices.Equal(names, []string{"cancel_run", "run_status", "run_swarm"}) {
		t.Fatalf("tools %v", names)
	}
}

// TestRunSwarm: run_swarm waits for the run and answers with its answer,
// cost, tokens and id; the progress notifications rise with each one, and
// the last says every node is done.
func TestRunSwarm(t *testing.T) {
	e := newEnv(t)
	c, _ := e.connect(context.Background())
	res := c.call(t, context.Background(), "run_swarm", map[string]any{"task": "Count to three."}, "tok-1")
	if res.IsError {
		t.Fatalf("run_swarm failed: %s", text(res))
	}
	var out mcpserver.RunResult
	structured(t, res, &out)
	if out.Status != "done" || out.Answer != "3 reports" || out.RunID == "" || out.CostUSD <= 0 || out.Tokens.Total <= 0 || out.BudgetUSD != 1 {
		t.Fatalf("result %+v", out)
	}
	if got := text(res); !strings.HasPrefix(got, "3 reports\n") || !strings.Contains(got, out.RunID) {
		t.Errorf("text %q", got)
	}
	if st := e.status(out.RunID); st != swarm.StatusDone {
		t.Errorf("journal says %s", st)
	}

	notes := c.waitNotes(t, 4)
	if len(notes) < 2 {
		t.Fatalf("%d progress notifications", len(notes))
	}
	for i, n := range notes {
		if n.ProgressToken != "tok-1" {
			t.Errorf("notification %d has token %v", i, n.ProgressToken)
		}
		if n.Progress > n.Total {
			t.Errorf("notification %d: progress %v over total %v", i, n.Progress, n.Total)
		}
		if i > 0 && n.Progress <= notes[i-1].Progress {
			t.Errorf("notification %d: progress %v after %v", i, n.Progress, notes[i-1].Progress)
		}
		if !strings.Contains(n.Message, out.RunID) {
			t.Errorf("notification %d: %q", i, n.Message)
		}
	}
	last := notes[len(notes)-1]
	if last.Progress != 4 || last.Total != 4 || !strings.Contains(last.Message, "4 of 4 nodes done") {
		t.Errorf("last notification %+v", last)
	}
	t.Logf("%d notifications, the last %q", len(notes), last.Message)

	// A call without a progress token gets none, and a named swarm runs
	// with its own models and budget.
	before := len(c.notes())
	res = c.call(t, context.Background(), "run_swarm", map[string]any{"task": "Again.", "swarm": "fast", "budget_usd": 0.25}, nil)
	structured(t, res, &out)
	if res.IsError || out.Status != "done" || out.BudgetUSD != 0.25 {
		t.Fatalf("fast: %s %+v", text(res), out)
	}
	if n := len(c.notes()); n != before {
		t.Errorf("%d notifications for a call without a token", n-before)
	}
}

// TestRunSwarmPatch: a swarm with a workspace answers with the run's
// changes as a patch, and writes nothing.
func TestRunSwarmPatch(t *testing.T) {
	e := newEnv(t)
	c, _ := e.connect(context.Background())
	res := c.call(t, context.Background(), "run_swarm", map[string]any{"task": "FIX the file.", "swarm": "fixer"}, nil)
	var out mcpserver.RunResult
	structured(t, res, &out)
	if res.IsError || out.Status != "done" || out.Workspace != e.workspace || !strings.Contains(out.Patch, "-broken\n+fixed\n") {
		t.Fatalf("run_swarm: %s %+v", text(res), out)
	}
	if got := text(res); !strings.Contains(got, "hive apply "+out.RunID+" writes them there") || !strings.Contains(got, "+fixed") {
		t.Errorf("text %q", got)
	}
	if b, _ := os.ReadFile(filepath.Join(e.workspace, "a.txt")); string(b) != "broken\n" {
		t.Errorf("the run wrote the workspace: %q", b)
	}
}

// TestRunSwarmWorkspace: a caller may name a workspace only under the
// roots hive.toml allows, links followed; the run reads it and answers
// with a patch, writing nothing.
func TestRunSwarmWorkspace(t *testing.T) {
	e := newEnv(t)
	root, outside := t.TempDir(), t.TempDir()
	repo := filepath.Join(root, "repo")
	for _, f := range []string{filepath.Join(repo, "a.txt"), filepath.Join(outside, "a.txt")} {
		os.MkdirAll(filepath.Dir(f), 0o755)
		if err := os.WriteFile(f, []byte("broken\n"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	os.Symlink(outside, filepath.Join(root, "link"))
	os.WriteFile(filepath.Join(root, "file"), nil, 0o644)
	e.cfg.Workspace.Roots = []string{root}
	e.srv = mcpserver.New(e.engine, e.cfg, server.MCPPlanner(e.cfg), testLogger(t))
	c, _ := e.connect(context.Background())

	var schema struct {
		Properties map[string]struct{ Description string } `json:"properties"`
	}
	tools, err := c.ListTools(context.Background(), nil)
	if err != nil {
		t.Fatal(err)
	}
	i := slices.IndexFunc(tools.Tools, func(tl *mcp.Tool) bool { return tl.Name == "run_swarm" })
	if i < 0 {
		t.Fatal("no run_swarm")
	}
	b, _ := json.Marshal(tools.Tools[i].InputSchema)
	json.Unmarshal(b, &schema)
	if d := schema.Properties["workspace"].Description; !strings.Contains(d, root) {
		t.Errorf("run_swarm's workspace says %q, want the roots", d)
	}

	for _, tc := range []struct{ dir, want string }{
		{"repo", "not an absolute path"},
		{outside, "not under a directory Hive allows"},
		{filepath.Join(root, "link"), "not under a directory Hive allows"},
		{filepath.Join(root, "..", filepath.Base(outside)), "not under a directory Hive allows"},
		{filepath.Join(root, "missing"), "no such directory"},
		{filepath.Join(root, "file"), "not a directory"},
	} {
		res := c.call(t, context.Background(), "run_swarm", map[string]any{"task": "FIX the file.", "workspace": tc.dir}, nil)
		if !res.IsError || !strings.Contains(text(res), tc.want) {
			t.Errorf("workspace %s: error %v %q, want %q", tc.dir, res.IsError, clip(text(res)), tc.want)
		}
	}
	if n := e.runs(); n != 0 {
		t.Fatalf("%d runs started on refused workspaces", n)
	}

	res := c.call(t, context.Background(), "run_swarm", map[string]any{"task": "FIX the file.", "workspace": repo}, nil)
	var out mcpserver.RunResult
	structured(t, res, &out)
	if res.IsError || out.Status != "done" || out.Workspace != repo || !strings.Contains(out.Patch, "-broken\n+fixed\n") {
		t.Fatalf("run_swarm on %s: %s %+v", repo, text(res), out)
	}
	for _, f := range []string{filepath.Join(repo, "a.txt"), filepath.Join(outside, "a.txt")} {
		if b, _ := os.ReadFile(f); string(b) != "broken\n" {
			t.Errorf("%s was written: %q", f, b)
		}
	}
}

// TestStatusAndCancel: run_swarm with wait false returns at once;
// run_status shows the run going, cancel_run stops it, and both refuse
// what they cannot do with a tool error.
func TestStatusAndCancel(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	c, _ := e.connect(ctx)
	res := c.call(t, ctx, "run_swarm", map[string]any{"task": "SLOW job", "wait": false}, nil)
	var out mcpserver.RunResult
	structured(t, res, &out)
	if res.IsError || out.Status != "running" || out.RunID == "" {
		t.Fatalf("wait false: %s %+v", text(res), out)
	}
	waitFor(t, "calling the lead", func() bool { return e.script.leadCalls.Load() > 0 })

	res = c.call(t, ctx, "run_status", map[string]any{"run_id": out.RunID}, nil)
	var st mcpserver.RunStatus
	structured(t, res, &st)
	if res.IsError || st.RunID != out.RunID || st.Status != "running" || st.Task != "SLOW job" || st.Nodes.Total != 1 ||
		len(st.Tree) != 1 || st.Tree[0].Role != "lead" || st.Tree[0].Model != "lead" {
		t.Fatalf("run_status: %s %+v", text(res), st)
	}
	if !strings.Contains(text(res), "lead \"lead\"") {
		t.Errorf("run_status text %q", text(res))
	}

	res = c.call(t, ctx, "cancel_run", map[string]any{"run_id": out.RunID}, nil)
	structured(t, res, &out)
	if res.IsError || out.Status != "cancelled" {
		t.Fatalf("cancel_run: %s %+v", text(res), out)
	}
	if s := e.status(out.RunID); s != swarm.StatusCancelled {
		t.Errorf("journal says %s", s)
	}
	for _, tc := range []struct{ tool, id, want string }{
		{"cancel_run", out.RunID, "already ended (cancelled): nothing to cancel"},
		{"run_status", "r99999999", `no run "r99999999"`},
		{"run_status", out.RunID[:8], "give the whole id"},
		{"cancel_run", "", "run_id is empty"},
	} {
		res := c.call(t, ctx, tc.tool, map[string]any{"run_id": tc.id}, nil)
		if !res.IsError || !strings.Contains(text(res), tc.want) {
			t.Errorf("%s %q: error %v, %q; want %q", tc.tool, tc.id, res.IsError, text(res), tc.want)
		}
	}
}

// TestCancelledCallCancelsRun: while the lead thinks, heartbeats keep
// the progress rising; a caller that cancels its call cancels the run
// the call waited for.
func TestCancelledCallCancelsRun(t *testing.T) {
	e := newEnv(t)
	e.srv.Heartbeat = 30 * time.Millisecond
	c, _ := e.connect(context.Background())
	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error, 1)
	go func() {
		p := &mcp.CallToolParams{Name: "run_swarm", Arguments: map[string]any{"task": "SLOW job"}}
		p.SetProgressToken("slow")
		_, err := c.CallTool(ctx, p)
		errc <- err
	}()
	waitFor(t, "calling the lead", func() bool { return e.script.leadCalls.Load() > 0 })
	waitFor(t, "sending heartbeats", func() bool { return len(c.notes()) >= 4 })
	notes := c.notes()
	for i := 1; i < len(notes); i++ {
		if p := notes[i].Progress; p <= notes[i-1].Progress || p >= 1 || notes[i].Total != 1 {
			t.Fatalf("heartbeat %d: %v of %v after %v", i, p, notes[i].Total, notes[i-1].Progress)
		}
	}
	cancel()
	if err := <-errc; err == nil {
		t.Fatal("the cancelled call returned no error")
	}
	runs, err := e.store.Runs(context.Background(), 0)
	if err != nil || len(runs) != 1 {
		t.Fatalf("%d runs, %v", len(runs), err)
	}
	waitFor(t, "cancelled", func() bool { return e.status(runs[0].ID) == swarm.StatusCancelled })
}

// TestHangUpCancelsRun: a client that goes away while a call waits
// cancels the run: nobody is left to read its answer.
func TestHangUpCancelsRun(t *testing.T) {
	e := newEnv(t)
	c, served, hangUp := e.connectPipes(context.Background())
	go c.CallTool(context.Background(), &mcp.CallToolParams{Name: "run_swarm", Arguments: map[string]any{"task": "SLOW job"}})
	waitFor(t, "calling the lead", func() bool { return e.script.leadCalls.Load() > 0 })
	hangUp()
	select {
	case err := <-served:
		if err != nil {
			t.Fatalf("Serve: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Serve did not return")
	}
	runs, _ := e.store.Runs(context.Background(), 0)
	if len(runs) != 1 || swarm.Status(runs[0].Status) != swarm.StatusCancelled {
		t.Fatalf("runs %+v", runs)
	}
}

// TestServeStops: when Serve's context ends, a call that waits returns
// and the run is left unfinished, to resume, not cancelled.
func TestServeStops(t *testing.T) {
	e := newEnv(t)
	ctx, stop := context.WithCancel(context.Background())
	c, served := e.connect(ctx)
	got := make(chan *mcp.CallToolResult, 1)
	go func() {
		res, _ := c.CallTool(context.Background(), &mcp.CallToolParams{Name: "run_swarm", Arguments: map[string]any{"task": "SLOW job"}})
		got <- res
	}()
	waitFor(t, "calling the lead", func() bool { return e.script.leadCalls.Load() > 0 })
	stop()
	select {
	case err := <-served:
		if err != nil {
			t.Fatalf("Serve: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Serve did not return")
	}
	if res := <-got; res != nil && (!res.IsError || !strings.Contains(text(res), "resumes when Hive next starts")) {
		t.Errorf("the call's result: %v %q", res.IsError, text(res))
	}
	runs, _ := e.store.Runs(context.Background(), 0)
	if len(runs) != 1 || swarm.Status(runs[0].Status) != swarm.StatusRunning {
		t.Fatalf("runs %+v", runs)
	}
}

// TestHostileArguments: what a caller may not ask for is a tool error
// that says what to change, and starts no run.
func TestHostileArguments(t *testing.T) {
	e := newEnv(t)
	c, _ := e.connect(context.Background())
	for _, tc := range []struct {
		name string
		args map[string]any
		want string
	}{
		{"no task", map[string]any{}, "task"},
		{"empty task", map[string]any{"task": "  "}, "the task is empty"},
		{"huge task", map[string]any{"task": strings.Repeat("x", mcpserver.DefaultMaxTask+1)}, "over the 256 KiB run_swarm takes"},
		{"negative budget", map[string]any{"task": "x", "budget_usd": -1}, "give a positive number of dollars"},
		{"budget over the swarm's", map[string]any{"task": "x", "budget_usd": 5}, `budget_usd 5 is over swarm "hive"'s budget of $1.00`},
		{"no budget lifts the cap", map[string]any{"task": "x", "budget_usd": 0}, `budget_usd 0 is over swarm "hive"'s budget`},
		{"budget over a named swarm's", map[string]any{"task": "x", "swarm": "fast", "budget_usd": 0.75}, `over swarm "fast"'s budget of $0.50`},
		{"sub-nano budget", map[string]any{"task": "x", "budget_usd": 1e-12}, "more precise than a nano-dollar"},
		{"unknown model", map[string]any{"task": "x", "lead": "anthropic:claude-opus-4-1"}, `unknown model "anthropic:claude-opus-4-1": name one of hive.toml's models (cheap, lead, strong)`},
		{"unknown tier", map[string]any{"task": "x", "tiers": []string{"cheap", "openai:gpt-5"}}, `unknown model "openai:gpt-5"`},
		{"unknown swarm", map[string]any{"task": "x", "swarm": "huge"}, `no swarm "huge": use one of "hive", "fast"`},
		{"too many workers", map[string]any{"task": "x", "swarm": "fast", "max_workers": 50}, `max_workers 50 is over swarm "fast"'s 4`},
		{"negative workers", map[string]any{"task": "x", "max_workers": -3}, "give a positive number"},
		{"a verify command", map[string]any{"task": "x", "verify": map[string]any{"kind": "command", "command": "rm -rf ~"}}, `run_swarm takes no "verify": the checks a run may use are the [checks.NAME] tables of hive.toml`},
		{"an unknown argument", map[string]any{"task": "x", "model": "gpt"}, `run_swarm takes no "model": its arguments are budget_usd, lead, max_workers, swarm, task, tiers, wait, workspace`},
		{"wrong type", map[string]any{"task": 7}, "task"},
		{"a workspace with no roots", map[string]any{"task": "x", "workspace": "/etc"}, "no workspace may be named here"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			res := c.call(t, context.Background(), "run_swarm", tc.args, nil)
			if !res.IsError || !strings.Contains(text(res), tc.want) {
				t.Errorf("error %v, %q; want %q", res.IsError, clip(text(res)), tc.want)
			}
			t.Logf("%s", clip(text(res)))
		})
	}
	if n := e.runs(); n != 0 {
		t.Errorf("%d runs started", n)
	}
	if n := e.llm.Requests(); n != 0 {
		t.Errorf("%d model calls", n)
	}
}

func clip(s string) string {
	if len(s) > 300 {
		return s[:300] + "…"
	}
	return s
}
