package main

import (
	"os"
	"strings"
	"testing"
	"time"
)

// A task carrying a credential is refused before any model call, naming
// the rule and not repeating the credential; a policy that does not parse
// says which key is wrong.
func TestRunRefusedByPolicy(t *testing.T) {
	w := newWorld(t)
	cred := "AK" + "IA" + "Q7XW2M4N6P8R0T1V"
	code, out, errOut := w.hive("run", "deploy with "+cred)
	if code == 0 || out != "" || !strings.Contains(errOut, "refused by policy") || !strings.Contains(errOut, "aws-access-key") || strings.Contains(errOut, cred[4:]) {
		t.Fatalf("exit %d\nstdout %q\nstderr %s", code, out, errOut)
	}
	if n := len(w.srv.Calls()); n != 0 {
		t.Fatalf("%d model calls for a refused task", n)
	}
	cfg, _ := os.ReadFile(w.cfg)
	if err := os.WriteFile(w.cfg, append(cfg, "\n[policy.screen]\nsecrets = \"maybe\"\n"...), 0o600); err != nil {
		t.Fatal(err)
	}
	code, _, errOut = w.hive("run", "count to three")
	if code == 0 || !strings.Contains(errOut, "policy.screen") || !strings.Contains(errOut, "want block, hold, flag or off") {
		t.Fatalf("a bad policy: exit %d: %s", code, errOut)
	}
}

// A task the policy holds waits in its own process until a person approves
// it from another: hive approvals lists it, hive approve decides it, and
// the waiting run goes on to its answer.
func TestApproveFromAnotherProcess(t *testing.T) {
	w := newWorld(t)
	cfg, _ := os.ReadFile(w.cfg)
	policy := "\n[[policy.screen.rules]]\nname = \"prod\"\npattern = '(?i)production'\non = [\"task\"]\naction = \"hold\"\n"
	if err := os.WriteFile(w.cfg, append(cfg, policy...), 0o600); err != nil {
		t.Fatal(err)
	}
	cmd, out, errb := w.process("run", "count the production servers")
	var list string
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) {
		if _, l, _ := w.hive("approvals"); strings.Contains(l, "task") {
			list = l
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	if !strings.Contains(list, "pending") || !strings.Contains(list, "prod") {
		t.Fatalf("hive approvals: %q\nthe run's stderr: %s", list, errb)
	}
	if w.srv.Requests() != 0 {
		t.Fatalf("%d model requests while the task waited", w.srv.Requests())
	}
	runID := strings.Fields(strings.Split(list, "\n")[1])[0]
	if code, _, errOut := w.hive("approve", runID); code != 2 || !strings.Contains(errOut, "--yes and --no") {
		t.Fatalf("approve without a decision: exit %d: %s", code, errOut)
	}
	// Without the approval's id, nothing is decided: the person names
	// what they read, shown whole by hive approvals RUN.
	if code, _, errOut := w.hive("approve", runID, "--yes"); code != 2 || !strings.Contains(errOut, "waits for task") {
		t.Fatalf("approve without an id: exit %d: %s", code, errOut)
	}
	if _, o, _ := w.hive("approvals", runID); !strings.Contains(o, "── task task (pending") || !strings.Contains(o, "count the production servers") {
		t.Fatalf("hive approvals RUN: %q", o)
	}
	if code, o, errOut := w.hive("approve", runID, "task", "--yes", "--note", "a read-only count", "--as", "ada"); code != 0 || !strings.Contains(o, "approved task") {
		t.Fatalf("approve: exit %d: %s%s", code, o, errOut)
	}
	if code := exitCode(t, cmd); code != 0 || out.String() != "three reports\n" {
		t.Fatalf("the approved run: exit %d, %q\n%s", code, out, errb)
	}
	if code, _, errOut := w.hive("approve", runID, "task", "--no"); code == 0 || !strings.Contains(errOut, "already decided: approved by ada") {
		t.Fatalf("a second decision: exit %d: %s", code, errOut)
	}
	_, o, _ := w.hive("approvals", "--all", "--json", runID)
	if !strings.Contains(o, `"decided_by": "ada"`) || !strings.Contains(o, `"note": "a read-only count"`) {
		t.Fatalf("approvals --all --json: %s", o)
	}
}
