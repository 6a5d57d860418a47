package main

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/hive-swarm/hive/internal/llm/llmtest"
)

// TestApply: a run's workers change a workspace, hive show names the run's
// patch, hive apply writes it into the directory, and refuses, with the
// way to rebase it, once the directory has changed; --print prints it,
// --dir writes it into a copy of the tree; hive run --apply does it at the
// end of a done run.
func TestApply(t *testing.T) {
	w := newWorld(t)
	w.script = func(c *llmtest.Call) llmtest.Reply {
		if isLead(c) {
			if assistantTurns(c) == 0 {
				return delegate(map[string]any{"name": "upper", "instructions": "Capitalise greeting.txt."})
			}
			return finish("capitalised")
		}
		if assistantTurns(c) == 0 {
			return llmtest.Reply{ToolCalls: []llmtest.ToolCall{tool("edit_file", map[string]any{"path": "greeting.txt", "old_string": "hello", "new_string": "HELLO"})}}
		}
		return submit("done")
	}
	files := map[string]string{"greeting.txt": "hello\n", "other.txt": "same\n"}
	repo, twin := filepath.Join(w.dir, "repo"), filepath.Join(w.dir, "twin")
	for _, d := range []string{repo, twin} {
		os.MkdirAll(d, 0o755)
		for p, body := range files {
			os.WriteFile(filepath.Join(d, p), []byte(body), 0o644)
		}
	}
	if code, out, errOut := w.hive("run", "--workspace", repo, "capitalise"); code != 0 || out != "capitalised\n" {
		t.Fatalf("run: exit %d %q %s", code, out, errOut)
	}
	_, out, _ := w.hive("runs", "--json")
	var runs []struct{ ID string }
	json.Unmarshal([]byte(out), &runs)
	id := runs[0].ID
	if code, out, _ := w.hive("show", id); code != 0 || !strings.Contains(out, "patch lead/patch: 1 file, +1 -1: greeting.txt") || !strings.Contains(out, "hive apply "+id) {
		t.Errorf("show does not name the patch:\n%s", out)
	}
	code, out, _ := w.hive("show", "--json", id)
	var shown showJSON
	if code != 0 || json.Unmarshal([]byte(out), &shown) != nil || shown.Patch == nil || shown.Patch.Workspace != repo {
		t.Errorf("show --json: %s", out)
	}
	if code, out, _ := w.hive("apply", "--print", id); code != 0 || !strings.Contains(out, "-hello\n+HELLO\n") {
		t.Errorf("apply --print: exit %d\n%s", code, out)
	}
	if b, _ := os.ReadFile(filepath.Join(repo, "greeting.txt")); string(b) != "hello\n" {
		t.Fatalf("the run wrote the workspace: %q", b)
	}
	if code, _, errOut := w.hive("apply", "--dir", twin, id); code != 0 || !strings.Contains(errOut, "applied run "+id+"'s patch to "+twin) {
		t.Errorf("apply --dir: exit %d: %s", code, errOut)
	}
	if code, _, errOut := w.hive("apply", id); code != 0 {
		t.Fatalf("apply: exit %d: %s", code, errOut)
	}
	if b, _ := os.ReadFile(filepath.Join(repo, "greeting.txt")); string(b) != "HELLO\n" {
		t.Errorf("after apply: %q", b)
	}
	// Applied, the directory is no longer as the run found it.
	code, _, errOut := w.hive("apply", id)
	if code != 1 || !strings.Contains(errOut, "changed since the run began") || !strings.Contains(errOut, "git apply --reject") || strings.Count(errOut, "\n") != 1 {
		t.Errorf("a second apply: exit %d: %q", code, errOut)
	}
	// The advice works on a tree that changed elsewhere.
	os.WriteFile(filepath.Join(repo, "greeting.txt"), []byte("hello\n"), 0o644)
	os.WriteFile(filepath.Join(repo, "notes.txt"), []byte("new\n"), 0o644)
	if code, _, _ := w.hive("apply", id); code != 1 {
		t.Fatalf("apply to a changed tree: exit %d", code)
	}
	_, patch, _ := w.hive("apply", "--print", id)
	os.WriteFile(filepath.Join(w.dir, id+".patch"), []byte(patch), 0o644)
	if out, err := exec.Command("git", "-C", repo, "apply", "--reject", filepath.Join(w.dir, id+".patch")).CombinedOutput(); err != nil {
		t.Errorf("git apply --reject, as the advice says: %v\n%s", err, out)
	}
	if b, _ := os.ReadFile(filepath.Join(repo, "greeting.txt")); string(b) != "HELLO\n" {
		t.Errorf("after git apply --reject: %q", b)
	}
	os.Remove(filepath.Join(repo, "notes.txt"))

	// --apply at the end of the run.
	os.WriteFile(filepath.Join(repo, "greeting.txt"), []byte("hello\n"), 0o644)
	if code, _, errOut := w.hive("run", "--workspace", repo, "--apply", "capitalise"); code != 0 || !strings.Contains(errOut, "applied run") {
		t.Fatalf("run --apply: exit %d: %s", code, errOut)
	}
	if b, _ := os.ReadFile(filepath.Join(repo, "greeting.txt")); string(b) != "HELLO\n" {
		t.Errorf("after run --apply: %q", b)
	}
	for _, c := range []struct {
		args []string
		code int
		want string
	}{
		{[]string{"run", "--apply", "x"}, 2, "this run has none: give --workspace DIR"},
		{[]string{"apply", "rnope"}, 1, "no run rnope"},
	} {
		if code, _, errOut := w.hive(c.args...); code != c.code || !strings.Contains(errOut, c.want) {
			t.Errorf("hive %v: exit %d %q, want %d %q", c.args, code, errOut, c.code, c.want)
		}
	}
}

// Model text reaches a terminal with its escape sequences and
// bidirectional controls shown, not acted on.
func TestTermSafe(t *testing.T) {
	in := "ok\x1b]52;c;Y3VybA==\x07\x1b[2K\rharmless\u202Ehs.txt\u009b31m\ttab\nnaïve"
	want := `ok\u001b]52;c;Y3VybA==\u0007\u001b[2K\u000dharmless\u202ehs.txt\u009b31m` + "\ttab\nnaïve"
	if got := termSafe(in); got != want {
		t.Errorf("termSafe = %q, want %q", got, want)
	}
	if s := "plain text\n"; termSafe(s) != s {
		t.Error("plain text changed")
	}
}
