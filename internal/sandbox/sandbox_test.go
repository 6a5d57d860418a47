//go:build linux

package sandbox

import (
	"context"
	"log/slog"
	"os"
	"strings"
	"sync"
	"testing"
	"time"
)

func TestMain(m *testing.M) {
	Init(testProgram)
	if os.Getenv(fdLeakEnv) != "" {
		os.Exit(fdLeakChild())
	}
	os.Exit(m.Run())
}

// testLogger routes the sandbox's logs to t.Log.
func testLogger(t testing.TB) *slog.Logger {
	return slog.New(slog.NewTextHandler(tWriter{t}, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

type tWriter struct{ t testing.TB }

func (w tWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

var (
	sharedOnce sync.Once
	shared     *Sandbox
	sharedErr  error
)

// newSandbox returns a namespaced sandbox, failing the test when this
// machine cannot isolate code.
func newSandbox(t testing.TB) *Sandbox {
	t.Helper()
	sharedOnce.Do(func() {
		shared, sharedErr = New(context.Background(), Config{}, slog.New(slog.DiscardHandler))
	})
	if sharedErr != nil {
		t.Fatalf("New: %v", sharedErr)
	}
	return shared
}

func run(t *testing.T, sb *Sandbox, spec Spec) *Result {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	res, err := sb.Run(ctx, spec)
	if err != nil {
		t.Fatalf("Run: %v", err)
	}
	t.Logf("reason=%s exit=%d signal=%s wall=%v cpu=%v mem=%d stdout=%q stderr=%q",
		res.Reason, res.ExitCode, res.Signal, res.Wall, res.CPU, res.Memory, trunc(res.Stdout), trunc(res.Stderr))
	return res
}

func trunc(b []byte) string {
	if len(b) > 300 {
		return string(b[:300]) + "..."
	}
	return string(b)
}

func TestRunBasic(t *testing.T) {
	sb := newSandbox(t)
	tests := []struct {
		name       string
		spec       Spec
		wantExit   int
		wantStdout string
	}{
		{"python print", Spec{Lang: Python, Source: "print(1+1)"}, 0, "2\n"},
		{"python stdin", Spec{Lang: Python, Source: "import sys; print(sys.stdin.read().upper())", Stdin: []byte("abc")}, 0, "ABC\n"},
		{"python files", Spec{Lang: Python, Source: "import helper; print(helper.X, open('data/in.txt').read())",
			Files: map[string][]byte{"helper.py": []byte("X = 7\n"), "data/in.txt": []byte("hi")}}, 0, "7 hi\n"},
		{"python exit", Spec{Lang: Python, Source: "import sys; sys.exit(3)"}, 3, ""},
		// Hashing is fixed, so set order is too: the same code, the same verdict.
		{"python hash seed", Spec{Lang: Python, Source: "import sys; print(sys.flags.hash_randomization)"}, 0, "0\n"},
		{"python write work", Spec{Lang: Python, Source: "open('out.txt','w').write('ok'); print(open('/box/out.txt').read())"}, 0, "ok\n"},
		{"shell", Spec{Lang: Shell, Source: "echo hello; cat; exit 4", Stdin: []byte("in\n")}, 4, "hello\nin\n"},
		{"shell tmp", Spec{Lang: Shell, Source: "echo x > /tmp/f && cat /tmp/f && hostname"}, 0, "x\nsandbox\n"},
		{"js", Spec{Lang: JavaScript, Source: "console.log(1+1, 'a', {b: 2}); console.log(stdin)", Stdin: []byte("in")}, 0, "2 a {\"b\":2}\nin\n"},
		{"js throw", Spec{Lang: JavaScript, Source: "throw new Error('boom')"}, 1, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			res := run(t, sb, tt.spec)
			if res.Reason != Exited || res.ExitCode != tt.wantExit {
				t.Errorf("got %s exit %d, want exited %d", res.Reason, res.ExitCode, tt.wantExit)
			}
			if string(res.Stdout) != tt.wantStdout {
				t.Errorf("stdout = %q, want %q", res.Stdout, tt.wantStdout)
			}
		})
	}
}
