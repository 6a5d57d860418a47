package swarm

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/hive-swarm/hive/internal/llm/llmtest"
	"github.com/hive-swarm/hive/internal/verify"
	"github.com/hive-swarm/hive/internal/workspace"
)

// overlayOf opens dir as a workspace and returns an overlay over it with
// the files written.
func overlayOf(t *testing.T, dir string, files map[string]string) *workspace.Overlay {
	t.Helper()
	ws, err := workspace.Open(dir, workspace.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ws.Close() })
	ov := ws.NewOverlay()
	for p, body := range files {
		if err := ov.Write(p, body); err != nil {
			t.Fatal(err)
		}
	}
	return ov
}

// TestCheckReportHostile: a worker that writes files named as the check's
// report (or as a directory above it) neither forges the report the check
// reads nor stops the check from running; its files are left as it wrote
// them.
func TestCheckReportHostile(t *testing.T) {
	const report = "the real report"
	runner := SandboxRunner{Sandbox: testSandbox(t)}
	for name, files := range map[string]map[string]string{
		"a file where a directory was": {".hive": "FORGED"},
		"the report's names": {
			".hive/report.txt":  "FORGED",
			".hive-report":      "FORGED",
			".hive-report-2/x":  "FORGED",
			".hive-report-3":    "FORGED",
			"hive-report":       "FORGED",
			".hive-report-4.md": "FORGED",
		},
	} {
		t.Run(name, func(t *testing.T) {
			ov := overlayOf(t, workspaceDir(t, map[string]string{"a.txt": "a\n"}), files)
			var script strings.Builder
			script.WriteString(`test "$(cat "$HIVE_REPORT_FILE")" = "` + report + `" || { echo "report: $(cat "$HIVE_REPORT_FILE")"; exit 1; }` + "\n")
			for p := range files {
				script.WriteString(`test "$(cat '` + p + `')" = FORGED || { echo "` + p + ` changed"; exit 1; }` + "\n")
			}
			ch := verify.CommandCheck{Name: "report", Argv: []string{"sh", "-c", script.String()}}
			v := runner.CheckTree(context.Background(), ch, ov, report)
			if v.Outcome != verify.Pass {
				t.Errorf("check: %s: %s", v.Outcome, v.Evidence)
			}
		})
	}
}

// TestTreeTooLarge: a tree over the copy's budget makes run_code a tool
// error that says so, and fails a check, in the sandbox and on the host:
// never a pass, never unsure.
func TestTreeTooLarge(t *testing.T) {
	dir := workspaceDir(t, map[string]string{"big.txt": strings.Repeat("x", 4000), ".gitignore": "*.log\n", "huge.log": strings.Repeat("y", 1<<20)})
	ov := overlayOf(t, dir, map[string]string{"more.txt": strings.Repeat("z", 2000)})
	runner := SandboxRunner{Sandbox: testSandbox(t), MaxTree: 5000}
	ctx := context.Background()
	out, failed, err := runner.RunCode(ctx, "shell", "echo ran", "", ov)
	if err != nil || !failed || !strings.Contains(out, "over") || strings.Contains(out, "ran\n") {
		t.Errorf("run_code of a tree too large: %q, failed %v, %v", out, failed, err)
	}
	for _, onHost := range []bool{false, true} {
		ch := verify.CommandCheck{Name: "ok", Argv: []string{"true"}, OnHost: onHost}
		if v := runner.CheckTree(ctx, ch, ov, "r"); v.Outcome != verify.Fail || !strings.Contains(v.Evidence, "over") {
			t.Errorf("check (on_host %v) of a tree too large: %s: %s", onHost, v.Outcome, v.Evidence)
		}
	}
	// Within the budget (the ignored log is not copied), all is well.
	runner.MaxTree = 7000
	if out, failed, err := runner.RunCode(ctx, "shell", "ls", "", ov); err != nil || failed || strings.Contains(out, "huge.log") {
		t.Errorf("run_code of a tree within the budget: %q, failed %v, %v", out, failed, err)
	}
	if v := runner.CheckTree(ctx, verify.CommandCheck{Name: "ok", Argv: []string{"true"}, OnHost: true}, ov, "r"); v.Outcome != verify.Pass {
		t.Errorf("check of a tree within the budget: %s: %s", v.Outcome, v.Evidence)
	}
}

// TestNoHostPaths: a hostile worker provokes every error it can from its
// tools, and runs code and a check on the host that print where they run;
// nothing it is told holds the host's path of the workspace or of a copy
// of it.
func TestNoHostPaths(t *testing.T) {
	dir := workspaceDir(t, map[string]string{"a.txt": "a\n", "sub/b.txt": "b\n", ".env": "K=v\n"})
	os.Symlink(filepath.Join(dir, "a.txt"), filepath.Join(dir, "abs-link"))
	os.Symlink("loop", filepath.Join(dir, "loop"))
	os.Symlink("../..", filepath.Join(dir, "sub/up"))
	if err := syscall.Mkfifo(filepath.Join(dir, "fifo"), 0o644); err != nil {
		t.Fatal(err)
	}
	ok := toolCall("read_file", map[string]any{"path": "a.txt"}) // errors in a row end a worker
	calls := []llmtest.ToolCall{
		toolCall("run_code", map[string]any{"language": "shell", "code": "pwd; echo $HOME $TMPDIR; ls -la; cat nonexistent; ls /tmp"}),
		toolCall("run_code", map[string]any{"language": "python", "code": "import os; print(os.getcwd()); open('/nonexistent/x')"}),
		toolCall("read_file", map[string]any{"path": "abs-link"}),
		toolCall("read_file", map[string]any{"path": "loop"}),
		toolCall("read_file", map[string]any{"path": "sub/up/x"}),
		ok,
		toolCall("read_file", map[string]any{"path": "fifo"}),
		toolCall("read_file", map[string]any{"path": "sub"}),
		toolCall("read_file", map[string]any{"path": "../../../../etc/passwd"}),
		ok,
		toolCall("read_file", map[string]any{"path": "/etc/passwd"}),
		toolCall("list_files", map[string]any{"path": "a.txt"}),
		toolCall("list_files", map[string]any{"path": "abs-link"}),
		toolCall("list_files", map[string]any{"recursive": true}),
		toolCall("grep", map[string]any{"pattern": "(", "path": "sub"}),
		toolCall("grep", map[string]any{"pattern": "a", "path": "abs-link"}),
		toolCall("write_file", map[string]any{"path": "abs-link", "content": "x"}),
		ok,
		toolCall("write_file", map[string]any{"path": "a.txt/x", "content": "x"}),
		toolCall("write_file", map[string]any{"path": ".git\u200c/hooks/pre-commit", "content": "x"}),
		toolCall("edit_file", map[string]any{"path": "fifo", "old_string": "a", "new_string": "b"}),
		ok,
		toolCall("edit_file", map[string]any{"path": "a.txt", "old_string": "zzz", "new_string": "b"}),
		toolCall("write_file", map[string]any{"path": "c.txt", "content": "c\n"}),
		toolCall("submit", map[string]any{"report": "done"}),
	}
	w := &steps{calls: calls}
	h := scriptOneTask(TaskSpec{Name: "probe", Instructions: "Probe.", Verify: &verify.Spec{Kind: verify.KindCommand, Check: "where"}}, w)
	runner := SandboxRunner{Sandbox: testSandbox(t)}
	hs := newHarness(t, h, Options{CodeRunner: runner, TreeChecker: runner})
	res := hs.run(Spec{Task: "probe the host", BudgetUSD: 1e9, Workspace: dir, Repairs: 1, MaxTurns: 60, MaxToolErrors: 10, Checks: map[string]verify.CommandCheck{
		"where": {Name: "where", OnHost: true, Argv: []string{"sh", "-c", `pwd; echo "$HIVE_REPORT_FILE"; ls "$PWD/a.txt" "$PWD/nonexistent"; cat "$(dirname "$HIVE_REPORT_FILE")/nothing"; exit 1`}},
	}})
	if res.Status == "" {
		t.Fatal("the run did not end")
	}
	if got := w.result(0); !strings.Contains(got, "exit status") {
		t.Errorf("run_code did not run: %q", got)
	}
	if got := w.result(len(calls) - 2); !strings.Contains(got, "wrote c.txt") {
		t.Errorf("the worker did not make all its calls: the last but one got %q", got)
	}
	leaks := []string{filepath.Dir(dir), filepath.Join(filepath.Clean(os.TempDir()), "hive-")}
	if real, err := filepath.EvalSymlinks(dir); err == nil {
		leaks = append(leaks, filepath.Dir(real))
	}
	sawCheck := false
	for _, c := range hs.srv.Calls() {
		body := string(c.Body)
		if strings.Contains(body, "check where") {
			sawCheck = true
		}
		for _, l := range leaks {
			if i := strings.Index(body, l); i >= 0 {
				t.Errorf("a model was told the host path %s: …%s…", l, body[max(0, i-200):min(len(body), i+200)])
			}
		}
	}
	if !sawCheck {
		t.Error("no model saw the check's evidence")
	}
}
