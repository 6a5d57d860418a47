package main

import (
	"github.com/hive-swarm/hive/internal/mcp"
	"github.com/hive-swarm/hive/internal/sandbox"
	"github.com/hive-swarm/hive/internal/swarm"
	"github.com/hive-swarm/hive/internal/verify"

	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/hive-swarm/hive/internal/llm/llmtest"
)

// TestMain lets the test binary act as hive itself, so that tests can run
// it as a real process (for signals and exit codes) without a build.
func TestMain(m *testing.M) {
	sandbox.Init(verify.Programs()...) // in-process commands start sandboxes, which re-execute this binary
	mcp.Init()                         // and MCP servers in network namespaces
	if os.Getenv(fetchServerEnv) != "" {
		serveFetchMCP()
	}
	if os.Getenv("HIVE_TEST_AS_MAIN") == "1" {
		main()
		return
	}
	os.Exit(m.Run())
}

// world is a local OpenAI-compatible server with models "lead", "cheap"
// and "strong", and a hive.toml in a temporary directory naming them (as
// the defaults of a run) with a journal beside it.
type world struct {
	t    *testing.T
	srv  *llmtest.Server
	dir  string
	cfg  string
	slow atomic.Bool // the lead of a task with "SLOW" in it answers only after a long wait
	// script, when set, answers every call instead of the default script.
	script llmtest.Handler
	// env holds more variables of the commands' environment.
	env map[string]string
}

func newWorld(t *testing.T) *world {
	t.Helper()
	return newWorldDB(t, "runs/hive.db")
}

// newWorldDB is newWorld with the journal at db.
func newWorldDB(t *testing.T, db string) *world {
	t.Helper()
	w := &world{t: t, dir: t.TempDir()}
	w.srv = llmtest.NewOpenAI(w.handle)
	t.Cleanup(w.srv.Close)
	var b strings.Builder
	fmt.Fprintf(&b, "[defaults]\nlead = \"lead\"\ntiers = [\"cheap\", \"strong\"]\ndb = %q\n", db)
	for _, m := range []struct {
		name    string
		tier    int
		in, out string
	}{{"cheap", 0, "0.1", "0.2"}, {"strong", 1, "1", "2"}, {"lead", 2, "1", "2"}} {
		fmt.Fprintf(&b, "\n[models.%s]\nprovider = \"openai\"\nbase_url = %q\ntier = %d\n[models.%s.price]\ninput = %s\noutput = %s\n",
			m.name, w.srv.URL+"/v1", m.tier, m.name, m.in, m.out)
	}
	w.cfg = filepath.Join(w.dir, "hive.toml")
	if err := os.WriteFile(w.cfg, []byte(b.String()), 0o600); err != nil {
		t.Fatal(err)
	}
	return w
}

// handle scripts the models: the lead delegates three tasks, the workers
// submit a report each, and the lead finishes with "three reports".
func (w *world) handle(c *llmtest.Call) llmtest.Reply {
	if w.script != nil {
		return w.script(c)
	}
	if !strings.Contains(c.System, "lead of Hive") {
		return llmtest.Reply{Latency: 150 * time.Millisecond, ToolCalls: []llmtest.ToolCall{tool("submit", map[string]any{"report": "done"})}}
	}
	if w.slow.Load() && mentions(c, "SLOW") {
		return llmtest.Reply{Latency: time.Minute}
	}
	if len(c.ToolResults()) == 0 {
		tasks := []map[string]string{}
		for i := range 3 {
			tasks = append(tasks, map[string]string{"name": fmt.Sprintf("t-%d", i), "instructions": fmt.Sprintf("Say %d.", i)})
		}
		return llmtest.Reply{ToolCalls: []llmtest.ToolCall{tool("delegate", map[string]any{"tasks": tasks})}}
	}
	return llmtest.Reply{ToolCalls: []llmtest.ToolCall{tool("finish", map[string]any{"answer": "three reports"})}}
}

func mentions(c *llmtest.Call, s string) bool {
	for _, m := range c.Messages {
		if strings.Contains(m.Text(), s) {
			return true
		}
	}
	return false
}

func tool(name string, args any) llmtest.ToolCall {
	b, _ := json.Marshal(args)
	return llmtest.ToolCall{Name: name, Input: string(b)}
}

func (w *world) getenv(k string) string {
	switch k {
	case "HIVE_CONFIG":
		return w.cfg
	case "HOME":
		return w.dir
	}
	return w.env[k]
}

// hive runs a command in-process.
func (w *world) hive(args ...string) (code int, stdout, stderr string) {
	w.t.Helper()
	return w.hiveFor(30*time.Second, args...)
}

// hiveFor runs a command in-process, for at most timeout.
func (w *world) hiveFor(timeout time.Duration, args ...string) (code int, stdout, stderr string) {
	w.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	var out, errb syncBuffer
	env := &Env{Stdin: strings.NewReader(""), Stdout: &out, Stderr: &errb, Getenv: w.getenv}
	code = Main(ctx, env, args)
	w.t.Logf("hive %s → %d\n%s", strings.Join(args, " "), code, errb.String())
	return code, out.String(), errb.String()
}

// process starts hive as a real process.
func (w *world) process(args ...string) (*exec.Cmd, *bytes.Buffer, *bytes.Buffer) {
	w.t.Helper()
	cmd := exec.Command(os.Args[0], args...)
	cmd.Env = []string{"HIVE_TEST_AS_MAIN=1", "HIVE_CONFIG=" + w.cfg, "HOME=" + w.dir, "PATH=" + os.Getenv("PATH")}
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Start(); err != nil {
		w.t.Fatal(err)
	}
	w.t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	return cmd, &out, &errb
}

// waitRun waits until the journal holds a run and the lead has been
// called, and returns the run's id.
func (w *world) waitRun() string {
	w.t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) {
		if w.srv.Requests() > 0 {
			_, out, _ := w.hive("runs", "--json")
			var runs []swarm.RunView
			if json.Unmarshal([]byte(out), &runs) == nil && len(runs) > 0 {
				return runs[0].ID
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	w.t.Fatal("no run started within 20s")
	return ""
}

func exitCode(t *testing.T, cmd *exec.Cmd) int {
	t.Helper()
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case <-done:
		return cmd.ProcessState.ExitCode()
	case <-time.After(20 * time.Second):
		cmd.Process.Kill()
		t.Fatal("hive did not exit within 20s")
		return -1
	}
}

func TestRunPrintsAnswer(t *testing.T) {
	w := newWorld(t)
	code, out, errOut := w.hive("run", "count to three")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	if out != "three reports\n" {
		t.Fatalf("stdout = %q, want the answer alone", out)
	}
	// Not a terminal: no live drawing, the final tree once.
	if strings.Contains(errOut, "\x1b[") {
		t.Fatalf("ANSI escapes on a non-terminal: %q", errOut)
	}
	for _, want := range []string{"· 4 nodes: 4 done", "lead done", "t-2 · cheap", " done · $"} {
		if !strings.Contains(errOut, want) {
			t.Errorf("stderr lacks %q:\n%s", want, errOut)
		}
	}
	if _, err := os.Stat(filepath.Join(w.dir, "runs", "hive.db")); err != nil {
		t.Fatalf("defaults.db is not resolved next to hive.toml: %v", err)
	}
}

func TestRunJSON(t *testing.T) {
	w := newWorld(t)
	code, out, errOut := w.hive("run", "--json", "--budget", "0.50", "count to three")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) < 5 {
		t.Fatalf("%d JSON lines, want events and a result:\n%s", len(lines), out)
	}
	var last int64
	types := map[string]int{}
	for _, l := range lines[:len(lines)-1] {
		var ev struct {
			Seq  int64  `json:"seq"`
			Type string `json:"type"`
		}
		if err := json.Unmarshal([]byte(l), &ev); err != nil {
			t.Fatalf("line %q: %v", l, err)
		}
		if ev.Seq != last+1 {
			t.Fatalf("event seq %d after %d", ev.Seq, last)
		}
		last = ev.Seq
		types[ev.Type]++
	}
	if types["run_started"] != 1 || types["run_finished"] != 1 || types["node"] < 4 {
		t.Fatalf("event types %v", types)
	}
	var res resultJSON
	if err := json.Unmarshal([]byte(lines[len(lines)-1]), &res); err != nil {
		t.Fatal(err)
	}
	if res.Type != "result" || res.Status != "done" || res.Answer != "three reports" || res.CostUSD <= 0 || res.CostNanos <= 0 {
		t.Fatalf("result line %+v", res)
	}
}

func TestRunsAndShowJSON(t *testing.T) {
	w := newWorld(t)
	if code, _, errOut := w.hive("run", "count to three"); code != 0 {
		t.Fatalf("run: exit %d: %s", code, errOut)
	}
	code, out, _ := w.hive("runs", "--json")
	if code != 0 {
		t.Fatalf("runs: exit %d", code)
	}
	var runs []map[string]any
	if err := json.Unmarshal([]byte(out), &runs); err != nil || len(runs) != 1 {
		t.Fatalf("runs --json: %v\n%s", err, out)
	}
	for _, k := range []string{"id", "status", "task", "cost_usd", "created", "answer", "error"} {
		if _, ok := runs[0][k]; !ok {
			t.Errorf("runs --json lacks %q", k)
		}
	}
	id, _ := runs[0]["id"].(string)
	if runs[0]["status"] != "done" || runs[0]["task"] != "count to three" || runs[0]["answer"] != "three reports" || runs[0]["cost_usd"].(float64) <= 0 {
		t.Fatalf("runs --json: %v", runs[0])
	}

	code, out, _ = w.hive("show", "--json", id[:8])
	if code != 0 {
		t.Fatalf("show: exit %d", code)
	}
	var show struct {
		Run   swarm.RunView `json:"run"`
		Nodes []struct {
			ID        string `json:"id"`
			Status    string `json:"status"`
			CostNanos int64  `json:"cost_nanos"`
		} `json:"nodes"`
		Totals totalsJSON  `json:"totals"`
		Tiers  []tierStats `json:"tiers"`
	}
	if err := json.Unmarshal([]byte(out), &show); err != nil {
		t.Fatal(err)
	}
	var sum int64
	for _, n := range show.Nodes {
		sum += n.CostNanos
	}
	if show.Run.ID != id || len(show.Nodes) != 4 || show.Totals.Nodes != 4 {
		t.Fatalf("show --json: run %s, %d nodes, totals %+v", show.Run.ID, len(show.Nodes), show.Totals)
	}
	if sum <= 0 || show.Totals.CostNanos != sum || show.Run.CostNanos != sum {
		t.Fatalf("node costs sum to %d; totals say %d, the run %d", sum, show.Totals.CostNanos, show.Run.CostNanos)
	}
	if len(show.Tiers) != 1 || show.Tiers[0].Nodes != 3 || show.Tiers[0].Models[0] != "cheap" || show.Tiers[0].Failed != 0 {
		t.Fatalf("tiers %+v", show.Tiers)
	}

	code, out, _ = w.hive("show", id)
	t.Logf("show:\n%s", out)
	if code != 0 || !strings.Contains(out, "lead done") || !strings.Contains(out, "answer:\nthree reports") || !strings.Contains(out, "TIER") {
		t.Fatalf("show: exit %d:\n%s", code, out)
	}
	code, out, _ = w.hive("runs")
	t.Logf("runs:\n%s", out)
	if code != 0 || !strings.Contains(out, id+"  done") || !strings.Contains(out, "count to three") {
		t.Fatalf("runs: exit %d:\n%s", code, out)
	}
}

func TestRunErrors(t *testing.T) {
	w := newWorld(t)
	noDefaults := filepath.Join(w.dir, "bare.toml")
	cfg, _ := os.ReadFile(w.cfg)
	bare := strings.Replace(string(cfg), "lead = \"lead\"\ntiers = [\"cheap\", \"strong\"]\n", "", 1)
	os.WriteFile(noDefaults, []byte(bare), 0o600)
	for _, c := range []struct {
		args []string
		code int
		want string
	}{
		{[]string{"show", "rnope123"}, 1, "hive: no run rnope123; list runs with hive runs\n"},
		{[]string{"cancel", "rnope123"}, 1, "no run rnope123; list runs with hive runs"},
		{[]string{"show", "r26"}, 1, "no run r26; a run is found by its whole id or its first 4 characters or more"},
		{[]string{"resume", "rnope123"}, 1, "no run rnope123; list runs with hive runs"},
		{[]string{"run", "--bogus", "x"}, 2, "flag provided but not defined: -bogus"},
		{[]string{"run"}, 2, "run needs a task"},
		{[]string{"run", "--budget", "1e3", "x"}, 2, `budget "1e3"`},
		{[]string{"run", "--db", "mysql://h/db", "x"}, 1, "--db and defaults.db take a file path, sqlite:PATH, or a postgres:// URL"},
		{[]string{"run", "--config", noDefaults, "x"}, 2, "no lead model: pass --lead NAME or set lead under [defaults]"},
		{[]string{"run", "--config", noDefaults, "--lead", "lead", "x"}, 2, "pass --tiers NAME,NAME"},
		{[]string{"run", "--tiers", "nosuch", "x"}, 1, `unknown model "nosuch"`},
		{[]string{"show"}, 2, "show takes one run id"},
		{[]string{"runs", "--limit", "-1"}, 2, "--limit"},
	} {
		code, _, errOut := w.hive(c.args...)
		if code != c.code || !strings.Contains(errOut, c.want) {
			t.Errorf("hive %s: exit %d, stderr %q; want exit %d and %q", strings.Join(c.args, " "), code, errOut, c.code, c.want)
		}
		if n := strings.Count(errOut, "\n"); c.code == 1 && n != 1 {
			t.Errorf("hive %s: %d lines of error, want one", strings.Join(c.args, " "), n)
		}
	}
	if w.srv.Requests() != 0 {
		t.Fatalf("failed commands called a model %d times", w.srv.Requests())
	}
}

func TestRunTaskFile(t *testing.T) {
	w := newWorld(t)
	f := filepath.Join(w.dir, "task.toml")
	os.WriteFile(f, []byte("task = \"from the file\"\nbudget_usd = 0.25\nmax_workers = 2\n"), 0o600)
	code, out, errOut := w.hive("run", "-f", f, "--max-depth", "1", "--json")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	_, out, _ = w.hive("runs", "--json")
	var runs []swarm.RunView
	json.Unmarshal([]byte(out), &runs)
	if len(runs) != 1 || runs[0].Task != "from the file" || runs[0].Spec == nil {
		t.Fatalf("runs: %s", out)
	}
	if spec := runs[0].Spec; spec.BudgetUSD != 250_000_000 || spec.MaxWorkers != 2 || spec.MaxDepth != 1 || runs[0].BudgetUSD != 0.25 {
		t.Fatalf("spec %+v, want the file's budget and workers and the flag's depth", spec)
	}
	os.WriteFile(f, []byte("task = \"x\"\nbudget = 1\n"), 0o600)
	if code, _, errOut := w.hive("run", "-f", f); code != 1 || !strings.Contains(errOut, "unknown key budget") {
		t.Fatalf("a misspelt key: exit %d, %s", code, errOut)
	}
	for body, want := range map[string]string{
		"task = \"x\"\n[checks.t]\ncommand = \"pytest -q\"\n": "line 3: checks.t.command takes a list, not a string (fix the task file)",
		"task = \"x\"\n[checks.t]\ncommand = []\n":            "checks.t: command is missing",
	} {
		os.WriteFile(f, []byte(body), 0o600)
		if code, _, errOut := w.hive("run", "-f", f); code != 1 || !strings.Contains(errOut, want) || strings.Count(strings.TrimSpace(errOut), "\n") > 0 {
			t.Errorf("task file %q: exit %d, %q; want one line with %q", body, code, errOut, want)
		}
	}
	// A task file's check reaches the run's spec, beside hive.toml's.
	os.WriteFile(f, []byte("task = \"checked\"\n[checks.lint]\ncommand = [\"ruff\", \"check\"]\ntimeout = \"1m\"\n"), 0o600)
	if code, _, errOut := w.hive("run", "-f", f, "--json"); code != 0 {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	_, out, _ = w.hive("runs", "--json")
	json.Unmarshal([]byte(out), &runs)
	var spec *swarm.Spec
	for _, r := range runs {
		if r.Task == "checked" {
			spec = r.Spec
		}
	}
	if spec == nil || strings.Join(spec.Checks["lint"].Argv, " ") != "ruff check" || spec.Checks["lint"].Timeout != time.Minute || len(spec.Models) != 3 {
		t.Fatalf("spec %+v: want the task file's check and hive.toml's models", spec)
	}
}

// TestRunWorkspaceSettings: a task file's workspace (relative to the file)
// and [mcp.NAME] tables reach the run's spec, with the workspace's
// fingerprint; --workspace overrides the file's; mistakes name the table
// or the directory and say what to do.
func TestRunWorkspaceSettings(t *testing.T) {
	w := newWorld(t)
	repo := filepath.Join(w.dir, "repo")
	os.MkdirAll(repo, 0o755)
	os.WriteFile(filepath.Join(repo, "a.txt"), []byte("hello\n"), 0o644)
	f := filepath.Join(w.dir, "task.toml")
	os.WriteFile(f, []byte(`task = "with a workspace"
workspace = "repo"
[mcp.echo]
command = "echo-server"
env = ["ECHO_TOKEN"]
allow = ["echo"]
roles = ["worker", "lead"]
tiers = ["strong"]
`), 0o600)
	if code, _, errOut := w.hive("run", "-f", f, "--json"); code != 0 {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	_, out, _ := w.hive("runs", "--json")
	var runs []swarm.RunView
	json.Unmarshal([]byte(out), &runs)
	if len(runs) != 1 || runs[0].Spec == nil {
		t.Fatalf("runs: %s", out)
	}
	spec := runs[0].Spec
	echo := spec.MCP["echo"]
	if spec.Workspace != repo || !strings.HasPrefix(spec.WorkspaceBase, "sha256:") || echo == nil || echo.Name != "echo" || echo.Command != "echo-server" || !echo.Offers("lead", "lead") {
		t.Fatalf("spec: workspace %q base %q mcp %+v", spec.Workspace, spec.WorkspaceBase, echo)
	}

	other := t.TempDir()
	for _, c := range []struct {
		body string
		args []string
		code int
		want string
	}{
		{"task = \"x\"\n[mcp.echo]\ncommand = \"e\"\n", nil, 1, "mcp.echo: allow is empty"},
		{"task = \"x\"\n[mcp.echo]\ncommand = \"e\"\nallow = [\"*\"]\ntiers = [\"huge\"]\n", nil, 2, `mcp.echo: tiers names "huge"`},
		{"task = \"x\"\nworkspace = \"nowhere\"\n", nil, 2, "workspace " + filepath.Join(w.dir, "nowhere") + ": no such file or directory (give a directory"},
		{"task = \"x\"\nworkspace = \"task.toml\"\n", nil, 2, "is not a directory"},
		{"task = \"x\"\nworkspace = \"nowhere\"\n", []string{"--workspace", other, "--tiers", "nosuch"}, 1, `unknown model "nosuch"`},
	} {
		os.WriteFile(f, []byte(c.body), 0o600)
		code, _, errOut := w.hive(append([]string{"run", "-f", f}, c.args...)...)
		if code != c.code || !strings.Contains(errOut, c.want) || strings.Count(strings.TrimSpace(errOut), "\n") > 0 {
			t.Errorf("task file %q %v: exit %d, %q; want %d and one line with %q", c.body, c.args, code, errOut, c.code, c.want)
		}
	}
}

// TestRunUnpriced: models without a price (a local server) run under
// budget_usd = 0, bounded by tokens; with a dollar budget the error names
// both ways out.
func TestRunUnpriced(t *testing.T) {
	w := newWorld(t)
	cfg, _ := os.ReadFile(w.cfg)
	unpriced := regexp.MustCompile(`(?m)^\[models\.\w+\.price\]\ninput = .*\noutput = .*\n`).ReplaceAllString(string(cfg), "")
	if strings.Contains(unpriced, "price") {
		t.Fatalf("prices left:\n%s", unpriced)
	}
	os.WriteFile(w.cfg, []byte(unpriced), 0o600)
	code, _, errOut := w.hive("run", "count to three")
	if code != 2 && code != 1 || !strings.Contains(errOut, "--budget 0") || !strings.Contains(errOut, "budget_tokens") {
		t.Fatalf("a dollar budget over unpriced models: exit %d, %s", code, errOut)
	}
	os.WriteFile(w.cfg, []byte(strings.Replace(unpriced, "[defaults]\n", "[defaults]\nbudget_usd = 0\nbudget_tokens = 100000\n", 1)), 0o600)
	code, out, errOut := w.hive("run", "count to three")
	if code != 0 || out != "three reports\n" {
		t.Fatalf("budget_usd = 0: exit %d, %q, %s", code, out, errOut)
	}
	_, out, _ = w.hive("runs", "--json")
	var runs []swarm.RunView
	json.Unmarshal([]byte(out), &runs)
	if len(runs) != 1 || runs[0].Spec.BudgetUSD != 0 || runs[0].Spec.MaxTokens != 100000 {
		t.Fatalf("runs: %s", out)
	}
}

func TestRunFailedExitCode(t *testing.T) {
	w := newWorld(t)
	// A budget too small for one call: the run cannot finish.
	code, _, errOut := w.hive("run", "--budget", "0.000000001", "count")
	if code != exitBudget && code != exitFailed {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	if !strings.Contains(errOut, "(see hive show r") {
		t.Fatalf("stderr: %s", errOut)
	}
	t.Logf("a run over budget exits %d", code)
}

// TestRunContextOverflow: a model whose context overflows fails the run
// at once, and says what to do.
func TestRunContextOverflow(t *testing.T) {
	w := newWorld(t)
	w.srv.ContextTokens = 10
	code, _, errOut := w.hive("run", "count")
	if code != exitFailed {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	if !strings.Contains(errOut, "context_too_long") || !strings.Contains(errOut, runContextHint) {
		t.Fatalf("stderr: %s", errOut)
	}
	if n := w.srv.Requests(); n != 1 {
		t.Errorf("%d requests, want 1", n)
	}
}

// TestInterruptAndResume stops hive run with SIGINT while the lead thinks,
// then resumes the run in a new process.
func TestInterruptAndResume(t *testing.T) {
	w := newWorld(t)
	w.slow.Store(true)
	cmd, out, errb := w.process("run", "SLOW count to three")
	id := w.waitRun()
	cmd.Process.Signal(syscall.SIGINT)
	if code := exitCode(t, cmd); code != exitInterrupted {
		t.Fatalf("exit %d after SIGINT, want 130; stderr:\n%s", code, errb)
	}
	want := fmt.Sprintf("run %s interrupted; continue it with: hive resume %s\n", id, id)
	if !strings.Contains(errb.String(), want) || out.Len() != 0 {
		t.Fatalf("stderr %q, stdout %q; want %q", errb, out, want)
	}
	_, stdout, _ := w.hive("show", "--json", id)
	var show showJSON
	json.Unmarshal([]byte(stdout), &show)
	if show.Run.Status == "done" || show.Run.Answer != "" {
		t.Fatalf("an interrupted run shows as %s with answer %q", show.Run.Status, show.Run.Answer)
	}
	t.Logf("an interrupted run is journaled as %s", show.Run.Status)
	w.slow.Store(false)
	code, stdout, errOut := w.hive("resume", id[:10])
	if code != 0 || stdout != "three reports\n" || !strings.Contains(errOut, "4 nodes: 4 done") {
		t.Fatalf("resume: exit %d, stdout %q:\n%s", code, stdout, errOut)
	}
}

// TestCancelThenShow cancels a run that a killed process left unfinished.
func TestCancelThenShow(t *testing.T) {
	w := newWorld(t)
	w.slow.Store(true)
	cmd, _, _ := w.process("run", "SLOW count to three")
	id := w.waitRun()
	cmd.Process.Kill()
	cmd.Wait()
	code, out, errOut := w.hive("cancel", id)
	if code != 0 || !strings.Contains(out, "cancelled run "+id) {
		t.Fatalf("cancel: exit %d, %q %q", code, out, errOut)
	}
	_, out, _ = w.hive("show", "--json", id)
	var show showJSON
	if err := json.Unmarshal([]byte(out), &show); err != nil {
		t.Fatal(err)
	}
	if show.Run.Status != "cancelled" {
		t.Fatalf("show after cancel: status %s", show.Run.Status)
	}
	if code, _, errOut := w.hive("cancel", id); code != 1 || !strings.Contains(errOut, "already ended (cancelled)") {
		t.Fatalf("second cancel: exit %d, %s", code, errOut)
	}
}

// TestRecoveredRunsNoted: a run a killed process left is continued by the
// next hive run, which says so.
func TestRecoveredRunsNoted(t *testing.T) {
	w := newWorld(t)
	w.slow.Store(true)
	cmd, _, _ := w.process("run", "SLOW count to three")
	id := w.waitRun()
	cmd.Process.Kill()
	cmd.Wait()
	code, out, errOut := w.hive("run", "count to three")
	if code != 0 || out != "three reports\n" {
		t.Fatalf("run: exit %d, %q", code, out)
	}
	if want := "hive: also continuing 1 unfinished run(s) in this process until it exits: " + id + "\n"; !strings.Contains(errOut, want) {
		t.Fatalf("stderr lacks %q:\n%s", want, errOut)
	}
}

// TestHelpExitsZero: -h is asked for, not a mistake: the flags are
// printed and the exit code is 0.
func TestHelpExitsZero(t *testing.T) {
	w := newWorld(t)
	for _, cmd := range []string{"run", "show", "apply", "mcp", "serve", "eval"} {
		code, _, errOut := w.hive(cmd, "-h")
		if code != 0 || !strings.Contains(errOut, "Usage: hive "+cmd) {
			t.Errorf("hive %s -h: exit %d\n%s", cmd, code, errOut)
		}
	}
}
