package main

import (
	"os"
	"strings"
	"testing"
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
	if code == 0 || !strings.Contains(errOut, "policy.screen") || !strings.Contains(errOut, "want block, flag or off") {
		t.Fatalf("a bad policy: exit %d: %s", code, errOut)
	}
}
