package main

import (
	"fmt"
	"os"
	"strings"
	"testing"
)

// TestSecondProcessLeavesRunsAlone: while hive run executes a run, a hive
// run in another terminal neither continues nor re-executes it, and hive
// resume of it says where it runs, in one line.
func TestSecondProcessLeavesRunsAlone(t *testing.T) {
	w := newWorld(t)
	w.slow.Store(true)
	cmd, _, _ := w.process("run", "SLOW count to three")
	id := w.waitRun()
	leadCalls := func() int {
		n := 0
		for _, c := range w.srv.Calls() {
			if strings.Contains(c.System, "lead of Hive") && mentions(c, "SLOW") {
				n++
			}
		}
		return n
	}
	if n := leadCalls(); n != 1 {
		t.Fatalf("%d calls of the slow run's lead, want 1", n)
	}

	code, out, errOut := w.hive("run", "count to three")
	if code != 0 || out != "three reports\n" || strings.Contains(errOut, "also continuing") {
		t.Fatalf("second run: exit %d, stdout %q, stderr:\n%s", code, out, errOut)
	}
	host, _ := os.Hostname()
	code, _, errOut = w.hive("resume", id)
	want := fmt.Sprintf("hive: run %s is running in another Hive process (pid %d on %s); cancel it there or wait\n", id, cmd.Process.Pid, host)
	if code != 1 || errOut != want {
		t.Fatalf("resume of a run another process runs: exit %d, stderr %q; want %q", code, errOut, want)
	}
	if n := leadCalls(); n != 1 {
		t.Fatalf("%d calls of the slow run's lead after the second process, want 1", n)
	}
	if cmd.ProcessState != nil {
		t.Fatalf("the first process exited: %v", cmd.ProcessState)
	}
}
