package verify

import (
	"os/exec"
	"strings"
	"testing"
	"time"
)

func TestCommand(t *testing.T) {
	if _, err := exec.LookPath("sh"); err != nil {
		t.Fatalf("the command tests need sh: %v", err)
	}
	v := New(nil, testLogger(t))
	v.CommandTimeout = 2 * time.Second
	tests := []struct {
		name     string
		argv     []string
		report   string
		outcome  string
		evidence []string
	}{
		{"pass on stdin", []string{"sh", "-c", "grep -q 'total: 42'"}, "the total: 42\n", Pass, []string{"exited 0"}},
		{"pass on the report file", []string{"sh", "-c", `test "$(cat "$HIVE_REPORT_FILE")" = "hello"`}, "hello", Pass, nil},
		{"fail with output", []string{"sh", "-c", "echo checking; echo 'price must be positive' >&2; exit 3"}, "x", Fail,
			[]string{"exit status 3", "checking", "price must be positive"}},
		{"timeout kills the group", []string{"sh", "-c", "echo started; sleep 30 & wait"}, "x", Fail, []string{"timed out after 2s", "started"}},
		{"not found", []string{"hive-no-such-checker-xyz"}, "x", Unsure, []string{"command not found"}},
		{"empty", nil, "x", Unsure, []string{"no command"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			start := time.Now()
			got := v.Verify(testCtx(t), Spec{Kind: KindCommand, Command: tt.argv}, Submission{Report: tt.report}, nil)
			checkVerdict(t, got, tt.outcome, tt.evidence...)
			if d := time.Since(start); d > 10*time.Second {
				t.Errorf("took %v", d)
			}
		})
	}
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
