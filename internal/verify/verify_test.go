package verify

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hive-swarm/hive/internal/llm"
	"github.com/hive-swarm/hive/internal/sandbox"
)

// The tests run submitted code in the real sandbox, which re-executes the
// test binary as its init.
func TestMain(m *testing.M) {
	sandbox.Init(Programs()...)
	os.Exit(m.Run())
}

var (
	sbOnce sync.Once
	sb     *sandbox.Sandbox
	sbErr  error
)

// newVerifiers returns verifiers over a real namespaced sandbox, with a
// short CPU limit so that the infinite-loop cases stay quick, and a wall
// limit far above what a run takes on a loaded two-core machine under
// -race (where starting the sandbox's stages alone takes a second or
// more). It fails the test when this machine cannot isolate code.
func newVerifiers(t testing.TB) *Verifiers {
	t.Helper()
	sbOnce.Do(func() {
		sb, sbErr = sandbox.New(context.Background(), sandbox.Config{}, slog.New(slog.DiscardHandler))
	})
	if sbErr != nil {
		t.Fatalf("sandbox.New: %v", sbErr)
	}
	v := New(sb, testLogger(t))
	v.Limits = sandbox.Limits{Wall: 30 * time.Second, CPU: 3 * time.Second}
	return v
}

func testLogger(t testing.TB) *slog.Logger {
	return slog.New(slog.NewTextHandler(tWriter{t}, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

type tWriter struct{ t testing.TB }

func (w tWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

func testCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// fakeCaller answers each model with a fixed text (or error) and records
// the requests it got.
type fakeCaller struct {
	answers map[string]string
	errs    map[string]error

	mu   sync.Mutex // guards reqs
	reqs []*llm.Request
}

func (f *fakeCaller) Call(ctx context.Context, model string, req *llm.Request) (*llm.Response, error) {
	f.mu.Lock()
	f.reqs = append(f.reqs, req)
	f.mu.Unlock()
	if err := f.errs[model]; err != nil {
		return nil, err
	}
	a, ok := f.answers[model]
	if !ok {
		return nil, fmt.Errorf("fake: no answer for model %q", model)
	}
	return &llm.Response{Model: model, Parts: []llm.Part{llm.Text{Text: a}}, StopReason: llm.StopEnd}, nil
}

func checkVerdict(t *testing.T, got Verdict, outcome string, evidence ...string) {
	t.Helper()
	t.Logf("verdict %s (%s): %s", got.Outcome, got.Verifier, got.Evidence)
	if got.Outcome != outcome {
		t.Errorf("outcome = %s, want %s; evidence:\n%s", got.Outcome, outcome, got.Evidence)
	}
	for _, e := range evidence {
		if !strings.Contains(got.Evidence, e) {
			t.Errorf("evidence lacks %q:\n%s", e, got.Evidence)
		}
	}
	if len(got.Evidence) > maxEvidence+200 {
		t.Errorf("evidence is %d bytes, want about %d at most", len(got.Evidence), maxEvidence)
	}
}

func TestDispatch(t *testing.T) {
	v := New(nil, testLogger(t))
	ctx := testCtx(t)
	tests := []struct {
		spec     Spec
		sub      Submission
		outcome  string
		evidence string
	}{
		{Spec{Kind: "frobnicate"}, Submission{}, Unsure, "unknown verifier kind"},
		{Spec{Kind: ""}, Submission{}, Unsure, "unknown verifier kind"},
		{Spec{Kind: "tests", Code: "assert f() == 1"}, Submission{Report: "```python\ndef f(): return 1\n```"}, Unsure, "no sandbox"},
		{Spec{Kind: "Schema", Schema: []byte(`{"type":"object"}`)}, Submission{Report: `{}`}, Pass, ""},
		{Spec{Kind: "vote"}, Submission{Task: "2+2?", Report: "4"}, Unsure, "no model caller"},
		{Spec{Kind: "judge", Rubric: "r"}, Submission{Report: "x"}, Unsure, "no model caller"},
		{Spec{Kind: "command", Command: []string{"true"}}, Submission{Report: "x"}, Unsure, "never run"},
		{Spec{Kind: "command", Trusted: &CommandCheck{Name: "t", Argv: []string{"true"}, OnHost: true}}, Submission{Report: "x"}, Pass, ""},
	}
	for _, tt := range tests {
		t.Run(tt.spec.Kind, func(t *testing.T) {
			got := v.Verify(ctx, tt.spec, tt.sub, nil)
			checkVerdict(t, got, tt.outcome, tt.evidence)
		})
	}
}

func TestExtractCode(t *testing.T) {
	tests := []struct {
		in, want string
		ok       bool
	}{
		{"Here:\n```python\ndef f():\n    return 1\n```\nDone.", "def f():\n    return 1\n", true},
		{"```\na\n```\n```py\nlonger\n```", "longer\n", true},
		{"def f(): pass", "def f(): pass\n", true},
		{"The answer is 4.", "", false},
	}
	for _, tt := range tests {
		got, ok := ExtractCode(tt.in)
		if got != tt.want || ok != tt.ok {
			t.Errorf("ExtractCode(%q) = %q, %v; want %q, %v", tt.in, got, ok, tt.want, tt.ok)
		}
	}
}

// Without a wall-clock limit of their own, runs get three times their CPU
// limit: a busy machine must not fail a right answer.
func TestLimitsWallFollowsCPU(t *testing.T) {
	for _, tt := range []struct {
		set        sandbox.Limits
		wall, cpuL time.Duration
	}{
		{sandbox.Limits{}, 3 * sandbox.DefaultLimits.CPU, sandbox.DefaultLimits.CPU},
		{sandbox.Limits{CPU: 2 * time.Second}, 6 * time.Second, 2 * time.Second},
		{sandbox.Limits{CPU: 2 * time.Second, Wall: time.Second}, time.Second, 2 * time.Second},
	} {
		v := New(nil, testLogger(t))
		v.Limits = tt.set
		if got := v.limits(); got.Wall != tt.wall || got.CPU != tt.cpuL {
			t.Errorf("limits %+v: wall %v cpu %v, want %v %v", tt.set, got.Wall, got.CPU, tt.wall, tt.cpuL)
		}
	}
}
