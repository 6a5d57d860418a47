package verify

import (
	"context"
	"strings"
	"testing"
)

// A host check's environment is only what HostCommand gives it, even when
// none of the usual variables is set: an empty list, never Hive's own
// environment (with its API keys) by default.
func TestHostCommandEnvironment(t *testing.T) {
	t.Setenv("ANTHROPIC_API_KEY", "sk-ant-not-for-checks")
	none := func(string) string { return "" }
	cmd := HostCommand(context.Background(), []string{"/bin/sh", "-c", "env"}, none, nil)
	out, err := cmd.Output()
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(out), "sk-ant-not-for-checks") {
		t.Fatalf("the check saw Hive's environment:\n%s", out)
	}
	cmd = HostCommand(context.Background(), []string{"/bin/sh", "-c", "env"}, func(k string) string { return map[string]string{"PATH": "/usr/bin:/bin"}[k] }, []string{"ONLY=this"})
	out, err = cmd.Output()
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"PATH=/usr/bin:/bin", "ONLY=this"} {
		if !strings.Contains(string(out), want) {
			t.Errorf("env lacks %s:\n%s", want, out)
		}
	}
}
