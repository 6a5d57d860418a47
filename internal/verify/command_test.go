package verify

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// checkEnv is what the checks below may read: one variable they name, one
// secret they do not.
func checkEnv(name string) string {
	switch name {
	case "CHECK_LEVEL":
		return "strict"
	case "OPENAI_API_KEY":
		return "sk-test-must-never-reach-a-check"
	case "PATH":
		return os.Getenv("PATH")
	}
	return ""
}

func commandCases(t *testing.T, dir string) []struct {
	name     string
	check    CommandCheck
	report   string
	outcome  string
	evidence []string
} {
	marker := filepath.Join(dir, "written-from-a-check")
	return []struct {
		name     string
		check    CommandCheck
		report   string
		outcome  string
		evidence []string
	}{
		{"pass on stdin", CommandCheck{Argv: []string{"sh", "-c", "grep -q 'total: 42'"}}, "the total: 42\n", Pass, []string{"exited 0"}},
		{"pass on the report file", CommandCheck{Argv: []string{"sh", "-c", `test "$(cat "$HIVE_REPORT_FILE")" = "hello"`}}, "hello", Pass, nil},
		{"fail with output", CommandCheck{Argv: []string{"sh", "-c", "echo checking; echo 'price must be positive' >&2; exit 3"}}, "x", Fail,
			[]string{"exit status 3", "checking", "price must be positive"}},
		{"timeout kills the group", CommandCheck{Argv: []string{"sh", "-c", "echo started; sleep 30 & wait"}, Timeout: 2 * time.Second}, "x", Fail, []string{"timed out after 2s", "started"}},
		{"named env only", CommandCheck{Argv: []string{"sh", "-c", `env; test "$CHECK_LEVEL" = strict && test -z "$OPENAI_API_KEY"`}, Env: []string{"CHECK_LEVEL"}}, "x", Pass, []string{"CHECK_LEVEL=strict"}},
		{"not found", CommandCheck{Argv: []string{"hive-no-such-checker-xyz"}}, "x", Unsure, []string{"not found"}},
		{"writes outside", CommandCheck{Argv: []string{"sh", "-c", "echo owned > " + marker}}, "x", "", nil},
	}
}

func TestCommandInSandbox(t *testing.T) {
	v := newVerifiers(t)
	v.Getenv = checkEnv
	dir := t.TempDir()
	for _, tt := range commandCases(t, dir) {
		t.Run(tt.name, func(t *testing.T) {
			ch := tt.check
			ch.Name = "c"
			got := v.Verify(testCtx(t), Spec{Kind: KindCommand, Trusted: &ch}, Submission{Report: tt.report}, nil)
			if tt.outcome != "" {
				checkVerdict(t, got, tt.outcome, tt.evidence...)
			}
			if strings.Contains(got.Evidence, "sk-test") {
				t.Errorf("a secret reached the evidence: %s", got.Evidence)
			}
		})
	}
	// The sandbox's root is its own: a check cannot write into the host's
	// directories.
	if _, err := os.Stat(filepath.Join(dir, "written-from-a-check")); err == nil {
		t.Error("a sandboxed check wrote a file on the host")
	}
}

func TestCommandOnHost(t *testing.T) {
	if _, err := exec.LookPath("sh"); err != nil {
		t.Fatalf("the command tests need sh: %v", err)
	}
	v := New(nil, testLogger(t))
	v.Getenv = checkEnv
	dir := t.TempDir()
	for _, tt := range commandCases(t, dir) {
		t.Run(tt.name, func(t *testing.T) {
			ch := tt.check
			ch.Name, ch.OnHost = "c", true
			start := time.Now()
			got := v.Verify(testCtx(t), Spec{Kind: KindCommand, Trusted: &ch}, Submission{Report: tt.report}, nil)
			if tt.outcome != "" {
				checkVerdict(t, got, tt.outcome, tt.evidence...)
			}
			if strings.Contains(got.Evidence, "sk-test") {
				t.Errorf("a secret reached the evidence: %s", got.Evidence)
			}
			if d := time.Since(start); d > 10*time.Second {
				t.Errorf("took %v", d)
			}
		})
	}
	// On the host (as configured) it can: that is what on_host means.
	if _, err := os.Stat(filepath.Join(dir, "written-from-a-check")); err != nil {
		t.Errorf("an on-host check did not run on the host: %v", err)
	}
}

// TestCommandFromSpecNeverRuns: a command written into a spec (by a model)
// is not run, with or without a sandbox.
func TestCommandFromSpecNeverRuns(t *testing.T) {
	marker := filepath.Join(t.TempDir(), "x")
	for _, v := range []*Verifiers{New(nil, testLogger(t)), newVerifiers(t)} {
		got := v.Verify(testCtx(t), Spec{Kind: KindCommand, Command: []string{"sh", "-c", "id > " + marker}}, Submission{Report: "x"}, nil)
		checkVerdict(t, got, Unsure, "never run", "check")
		got = v.Verify(testCtx(t), Spec{Kind: KindCommand}, Submission{Report: "x"}, nil)
		checkVerdict(t, got, Unsure, "no configured check")
	}
	if _, err := os.Stat(marker); err == nil {
		t.Fatal("a command from a spec ran")
	}
}

func TestCommandWithoutSandbox(t *testing.T) {
	v := New(nil, testLogger(t))
	got := v.Verify(testCtx(t), Spec{Kind: KindCommand, Trusted: &CommandCheck{Name: "pytest", Argv: []string{"true"}}}, Submission{Report: "x"}, nil)
	checkVerdict(t, got, Unsure, "on_host = true", "[checks.pytest]")
}

func TestTailBuffer(t *testing.T) {
	b := &tailBuffer{max: 400}
	for i := range 1000 {
		b.Write([]byte(strings.Repeat("x", i%7) + "\n"))
	}
	b.Write([]byte("THE END\n"))
	s := b.String()
	if len(s) > 500 || !strings.HasSuffix(s, "THE END\n") || !strings.Contains(s, "bytes cut") {
		t.Errorf("kept %d bytes: %q", len(s), s)
	}
	small := &tailBuffer{max: 400}
	small.Write([]byte("short"))
	if small.String() != "short" {
		t.Errorf("small = %q", small.String())
	}
}
