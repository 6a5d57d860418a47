package swarm

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hive-swarm/hive/internal/llm/llmtest"
	"github.com/hive-swarm/hive/internal/verify"
)

// workspaceDir makes a small tree to be a run's workspace.
func workspaceDir(t *testing.T, files map[string]string) string {
	t.Helper()
	dir := t.TempDir()
	for p, body := range files {
		full := filepath.Join(dir, filepath.FromSlash(p))
		if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(full, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

// steps scripts a worker as a list of tool calls, one a turn, and keeps
// the result each call got.
type steps struct {
	calls []llmtest.ToolCall
	mu    sync.Mutex
	seen  map[int]string // the result of call i, as the model read it; guarded by mu
}

func (s *steps) reply(c *llmtest.Call) llmtest.Reply {
	n := turns(c)
	if n > 0 {
		s.mu.Lock()
		if s.seen == nil {
			s.seen = map[int]string{}
		}
		s.seen[n-1] = lastResult(c)
		s.mu.Unlock()
	}
	if n >= len(s.calls) {
		return llmtest.Reply{ToolCalls: []llmtest.ToolCall{toolCall("submit", submitArgs{Report: "no more steps"})}}
	}
	return llmtest.Reply{ToolCalls: []llmtest.ToolCall{s.calls[n]}}
}

func (s *steps) result(i int) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.seen[i]
}

// leadOneTask delegates one task and finishes with its report.
func leadOneTask(c *llmtest.Call, t TaskSpec) llmtest.Reply {
	if turns(c) == 0 {
		return llmtest.Reply{ToolCalls: []llmtest.ToolCall{toolCall("delegate", delegateArgs{Tasks: []TaskSpec{t}})}}
	}
	rs := reports(c)
	if len(rs) == 0 {
		return finish("no report")
	}
	return finish(string(rs[0].Status) + ": " + rs[0].Report)
}

// scriptOneTask scripts a run of one task: the lead delegates t and finishes
// with its report; the worker follows w.
func scriptOneTask(t TaskSpec, w *steps) func(*llmtest.Call) llmtest.Reply {
	return func(c *llmtest.Call) llmtest.Reply {
		if isLead(c) {
			return leadOneTask(c, t)
		}
		return w.reply(c)
	}
}

// TestWorkspaceTools: a worker lists, reads, greps, writes and edits its
// workspace; run_code sees the tree with its changes; paths outside the
// tree are refused and the worker goes on; the directory itself is never
// written; every call is counted on the node.
func TestWorkspaceTools(t *testing.T) {
	dir := workspaceDir(t, map[string]string{
		"README.md":  "# demo\n",
		"src/a.go":   "package src\n\nfunc A() int { return 1 }\n",
		"src/b.go":   "package src\n\nfunc B() int { return 2 }\n",
		".env":       "TOKEN=hunter2hunter2\n",
		".gitignore": "build/\n",
		"build/x":    "ignored\n",
	})
	w := &steps{calls: []llmtest.ToolCall{
		toolCall("list_files", map[string]any{"recursive": true}),
		toolCall("read_file", map[string]any{"path": "src/a.go", "start_line": 3}),
		toolCall("grep", map[string]any{"pattern": `func \w+\(\)`, "glob": "*.go"}),
		toolCall("edit_file", map[string]any{"path": "src/a.go", "old_string": "return 1", "new_string": "return 10"}),
		toolCall("write_file", map[string]any{"path": "src/c.go", "content": "package src\n\nfunc C() int { return 3 }\n"}),
		toolCall("read_file", map[string]any{"path": "../outside.txt"}),
		toolCall("run_code", map[string]any{"language": "shell", "code": "cat src/a.go; ls src; ls -a"}),
		toolCall("submit", map[string]any{"report": "changed A, added C"}),
	}}
	h := scriptOneTask(TaskSpec{Name: "change", Instructions: "Change the code."}, w)
	sb := testSandbox(t)
	hs := newHarness(t, h, Options{CodeRunner: SandboxRunner{Sandbox: sb}})
	res := hs.run(Spec{Task: "work on files", BudgetUSD: 1e9, Workspace: dir})
	if res.Status != StatusDone || res.Answer != "done: changed A, added C" {
		t.Fatalf("run %s: %q %q", res.Status, res.Answer, res.Error)
	}
	for i, want := range map[int][]string{
		0: {"README.md", "src/a.go", "src/b.go", ".gitignore"},
		1: {"src/a.go: lines 3-3 of 3", "func A() int { return 1 }"},
		2: {"src/a.go:3:func A() int { return 1 }", "src/b.go:3:func B()"},
		3: {"replaced 1 occurrence in src/a.go"},
		4: {"wrote src/c.go"},
		5: {"outside the workspace"},
		6: {"exit status 0", "return 10", "c.go", "README.md"},
	} {
		got := w.result(i)
		for _, s := range want {
			if !strings.Contains(got, s) {
				t.Errorf("call %d (%s): %q lacks %q", i, w.calls[i].Name, got, s)
			}
		}
		// The copy code runs in holds what the worker sees, no more: no
		// secret, nothing .gitignore ignores.
		hidden := []string{".env", "build", "hunter2"}
		for _, s := range hidden {
			if i != 5 && strings.Contains(got, s) {
				t.Errorf("call %d (%s) shows the hidden %s: %q", i, w.calls[i].Name, s, got)
			}
		}
	}
	if b, _ := os.ReadFile(filepath.Join(dir, "src/a.go")); !strings.Contains(string(b), "return 1 }") {
		t.Errorf("the workspace itself was written: %s", b)
	}
	if _, err := os.Stat(filepath.Join(dir, "src/c.go")); err == nil {
		t.Error("the workspace itself has the new file")
	}
	for _, n := range hs.nodes(res.RunID) {
		if n.ID == "1" && (n.ToolCalls != 7 || n.ToolErrors != 1) {
			t.Errorf("worker node counts %d tool calls, %d failed; want 7 and 1", n.ToolCalls, n.ToolErrors)
		}
	}
}

// TestWorkspaceResume: a run cancelled after its worker edited a file
// resumes with the edit put back from the journal, not done again: the
// directory changed meanwhile so that the edit would now fail.
func TestWorkspaceResume(t *testing.T) {
	dir := workspaceDir(t, map[string]string{"a.txt": "one\ntwo\n"})
	started := make(chan struct{})
	release := make(chan struct{})
	var once sync.Once
	w := &steps{calls: []llmtest.ToolCall{
		toolCall("edit_file", map[string]any{"path": "a.txt", "old_string": "two", "new_string": "TWO"}),
		toolCall("read_file", map[string]any{"path": "a.txt"}),
		toolCall("submit", map[string]any{"report": "edited"}),
	}}
	h := func(c *llmtest.Call) llmtest.Reply {
		if isLead(c) {
			return leadOneTask(c, TaskSpec{Name: "edit", Instructions: "Edit a.txt."})
		}
		if turns(c) == 1 {
			once.Do(func() { close(started) })
			<-release
		}
		return w.reply(c)
	}
	hs := newHarness(t, h, Options{})
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	id, err := hs.engine.Start(ctx, Spec{Task: "edit and resume", Lead: "lead", Tiers: []string{"cheap"}, BudgetUSD: 1e9, Workspace: dir})
	if err != nil {
		t.Fatal(err)
	}
	select {
	case <-started:
	case <-ctx.Done():
		t.Fatal("the worker did not edit")
	}
	if err := hs.engine.Cancel(ctx, id); err != nil {
		t.Fatal(err)
	}
	close(release)
	if res, err := hs.engine.Wait(ctx, id); err != nil || res.Status != StatusCancelled {
		t.Fatalf("after cancel: %+v, %v", res, err)
	}
	os.WriteFile(filepath.Join(dir, "a.txt"), []byte("one\nthree\n"), 0o644)
	edits := 0
	for _, c := range hs.srv.Calls() {
		if !isLead(c) && turns(c) == 0 {
			edits++
		}
	}
	if _, err := hs.engine.Resume(ctx, id); err != nil {
		t.Fatal(err)
	}
	res, err := hs.engine.Wait(ctx, id)
	if err != nil || res.Status != StatusDone || res.Answer != "done: edited" {
		t.Fatalf("after resume: %+v, %v", res, err)
	}
	if got := w.result(1); !strings.Contains(got, "one\nTWO\n") {
		t.Errorf("after resume the worker read %q; want its edit, restored from the journal", got)
	}
	after := 0
	for _, c := range hs.srv.Calls() {
		if !isLead(c) && turns(c) == 0 {
			after++
		}
	}
	if after != edits {
		t.Errorf("the worker's first call was made again on resume (%d → %d)", edits, after)
	}
}

// TestWorkspacePatches: workers' changes come back as patches named in
// their reports; a configured check runs against the workspace with a
// worker's changes, and a failing one is repaired in the same overlay;
// finish refuses conflicting patches and says where, then merges the ones
// it names into the run's patch; the directory is untouched.
func TestWorkspacePatches(t *testing.T) {
	dir := workspaceDir(t, map[string]string{
		"a.txt": "one\ntwo\nthree\nfour\nfive\nsix\nseven\neight\n",
		"b.txt": "bee\n",
	})
	edit := func(path, old, new string) llmtest.ToolCall {
		return toolCall("edit_file", map[string]any{"path": path, "old_string": old, "new_string": new})
	}
	workers := map[string]*steps{
		"top": {calls: []llmtest.ToolCall{
			edit("a.txt", "one\n", "ONE\n"),
			toolCall("submit", map[string]any{"report": "capitalised one"}),
			edit("a.txt", "two\n", "TWO\n"), // the repair, after the check's evidence
			toolCall("submit", map[string]any{"report": "capitalised one and two", "artifacts": map[string]string{"patch": "not what I changed"}}),
		}},
		"bee":   {calls: []llmtest.ToolCall{edit("b.txt", "bee", "BEE"), toolCall("submit", map[string]any{"report": "capitalised bee"})}},
		"clash": {calls: []llmtest.ToolCall{edit("a.txt", "two\n", "2\n"), toolCall("submit", map[string]any{"report": "numbered two"})}},
	}
	check := &verify.Spec{Kind: verify.KindCommand, Check: "two"}
	var refusal notes
	h := func(c *llmtest.Call) llmtest.Reply {
		if isLead(c) {
			switch turns(c) {
			case 0:
				return llmtest.Reply{ToolCalls: []llmtest.ToolCall{toolCall("delegate", delegateArgs{Tasks: []TaskSpec{
					{Name: "top", Instructions: "Capitalise the first lines of a.txt.", Verify: check},
					{Name: "bee", Instructions: "Capitalise b.txt."},
					{Name: "clash", Instructions: "Number line two of a.txt."},
				}})}}
			case 1:
				refusal.add(lastResult(c))
				return finish("all three")
			case 2:
				refusal.add(lastResult(c))
				return llmtest.Reply{ToolCalls: []llmtest.ToolCall{toolCall("finish", finishArgs{Answer: "top and bee", Patches: []string{"1/patch", "2/patch"}})}}
			}
			refusal.add(lastResult(c))
			return finish("again?")
		}
		return workers[taskName(c)].reply(c)
	}
	sb := testSandbox(t)
	runner := SandboxRunner{Sandbox: sb}
	hs := newHarness(t, h, Options{CodeRunner: runner, TreeChecker: runner})
	res := hs.run(Spec{Task: "patch it", BudgetUSD: 1e9, Workspace: dir, Checks: map[string]verify.CommandCheck{
		"two": {Name: "two", Argv: []string{"sh", "-c", "grep -q '^TWO$' a.txt || { echo 'a.txt: line two is not TWO'; exit 1; }"}},
	}})
	if res.Status != StatusDone || res.Answer != "top and bee" {
		t.Fatalf("run %s: %q %q", res.Status, res.Answer, res.Error)
	}
	seen := refusal.all()
	if len(seen) != 2 {
		t.Fatalf("the lead saw %d finish results: %q", len(seen), seen)
	}
	reps := seen[0]
	if !strings.Contains(reps, `"patch":"1/patch (1 file, +2 -2: a.txt)"`) || !strings.Contains(reps, `"patch":"2/patch (1 file, +1 -1: b.txt)"`) {
		t.Errorf("the reports do not name the patches: %s", reps)
	}
	if !strings.Contains(seen[1], "a.txt: patches") || !strings.Contains(seen[1], "1/patch") || !strings.Contains(seen[1], "3/patch") || !strings.Contains(seen[1], "delegate a task that makes both changes") {
		t.Errorf("the conflict was not told: %s", seen[1])
	}
	// The repair: the check's evidence went back, and the worker's second
	// edit was made on top of its first.
	if got := workers["top"].result(1); !strings.Contains(got, "line two is not TWO") {
		t.Errorf("the repair did not carry the check's evidence: %q", got)
	}
	_, _, patch, err := hs.store.Artifact(context.Background(), res.RunID, "lead/patch")
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range []string{"+ONE", "+TWO", "+BEE", "-one", "-two", "-bee"} {
		if !strings.Contains(string(patch), s) {
			t.Errorf("the run's patch lacks %q:\n%s", s, patch)
		}
	}
	if strings.Contains(string(patch), "+2\n") || strings.Contains(string(patch), "not what I changed") {
		t.Errorf("the run's patch has what it should not:\n%s", patch)
	}
	if b, _ := os.ReadFile(filepath.Join(dir, "a.txt")); string(b) != "one\ntwo\nthree\nfour\nfive\nsix\nseven\neight\n" {
		t.Errorf("the workspace was written: %q", b)
	}
	var top Node
	for _, n := range hs.nodes(res.RunID) {
		if n.ID == "1" {
			top = n
		}
	}
	if top.Attempt != 1 || top.Verdict == nil || top.Verdict.Outcome != verify.Pass {
		t.Errorf("top: attempt %d verdict %+v", top.Attempt, top.Verdict)
	}
}

// notes collects what scripted models saw, from the server's goroutines.
type notes struct {
	mu   sync.Mutex
	list []string
}

func (n *notes) add(s string) {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.list = append(n.list, s)
}

func (n *notes) all() []string {
	n.mu.Lock()
	defer n.mu.Unlock()
	return append([]string(nil), n.list...)
}
