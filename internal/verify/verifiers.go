package verify

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/hive-swarm/hive/internal/sandbox"
)

// The kinds of verifier a [Spec] names.
const (
	KindTests   = "tests"
	KindSchema  = "schema"
	KindVote    = "vote"
	KindJudge   = "judge"
	KindCommand = "command"
	KindCross   = "cross"
	// KindArithmetic recomputes the calculations a numeric answer shows.
	KindArithmetic = "arithmetic"
)

// maxEvidence is about how much evidence a verdict carries: enough for a
// model to act on, small enough to go back in a repair prompt.
const maxEvidence = 2048

// Verifiers is Hive's [Verifier]: it dispatches on [Spec.Kind] to
// [Verifiers.Tests], [Verifiers.Schema], [Verifiers.Vote],
// [Verifiers.Judge], [Verifiers.Command], [Verifiers.Cross] and
// [Verifiers.Arithmetic]. It is safe for concurrent
// use once its fields are set.
//
// It never passes what it could not check: a verifier that cannot run (no
// sandbox, no model caller, a bad spec) answers [Unsure] and says why.
type Verifiers struct {
	sb  *sandbox.Sandbox // nil: code cannot be run
	log *slog.Logger

	// Limits bound each sandboxed run of submitted code; zero fields take
	// the sandbox's defaults (10 s of wall time among them).
	Limits sandbox.Limits
	// CommandTimeout bounds a command verifier's run; zero means 30 s.
	CommandTimeout time.Duration
	// CommandOutput is how many bytes of a command's output are kept;
	// zero means 64 KiB.
	CommandOutput int
	// SchemaLimits bound the sandboxed run of a schema too costly to apply
	// in Hive's process; zero fields mean 2 s of CPU, 10 s of wall time,
	// 256 MiB.
	SchemaLimits sandbox.Limits
	// Getenv reads the variables a check names; nil means os.Getenv.
	Getenv func(string) string
}

// New returns the verifiers. sb runs submitted code; with a nil sb the
// verifiers that run code (tests, vote on code) answer unsure.
func New(sb *sandbox.Sandbox, log *slog.Logger) *Verifiers {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Verifiers{sb: sb, log: log}
}

// Verify implements [Verifier].
func (v *Verifiers) Verify(ctx context.Context, spec Spec, sub Submission, c Caller) Verdict {
	kind := strings.ToLower(strings.TrimSpace(spec.Kind))
	var out Verdict
	switch kind {
	case KindTests:
		out = v.Tests(ctx, spec, sub)
	case KindSchema:
		out = v.Schema(ctx, spec, sub)
	case KindVote:
		out = v.Vote(ctx, spec, sub, c)
	case KindJudge:
		out = v.Judge(ctx, spec, sub, c)
	case KindCommand:
		out = v.Command(ctx, spec, sub)
	case KindCross:
		out = v.Cross(ctx, spec, sub, c)
	case KindArithmetic:
		out = v.Arithmetic(sub)
	default:
		out = unsure(spec.Kind, fmt.Sprintf("unknown verifier kind %q (want tests, schema, vote, judge, command, cross or arithmetic)", spec.Kind))
	}
	v.log.Debug("verdict", "kind", kind, "outcome", out.Outcome, "evidence_bytes", len(out.Evidence))
	return out
}

func pass(kind, evidence string) Verdict {
	return Verdict{Outcome: Pass, Verifier: kind, Evidence: evidence}
}

func fail(kind, evidence string) Verdict {
	return Verdict{Outcome: Fail, Verifier: kind, Evidence: evidence}
}

func unsure(kind, evidence string) Verdict {
	return Verdict{Outcome: Unsure, Verifier: kind, Evidence: evidence}
}

// submittedCode returns the code of a submission: its "code" artifact, or
// the code in its report (see [ExtractCode]).
func submittedCode(sub Submission) (string, bool) {
	if c, ok := sub.Artifacts["code"]; ok && strings.TrimSpace(c) != "" {
		return c, true
	}
	return ExtractCode(sub.Report)
}

// headTail returns s when it fits in n bytes, else its head and tail with
// a marker between, cut at line ends where it can.
func headTail(s string, n int) string {
	if len(s) <= n {
		return s
	}
	h := n / 4
	t := n - h - 40
	head := s[:h]
	if i := strings.LastIndexByte(head, '\n'); i > h/2 {
		head = head[:i+1]
	}
	tail := s[len(s)-t:]
	if i := strings.IndexByte(tail, '\n'); i >= 0 && i < t/2 {
		tail = tail[i+1:]
	}
	return fmt.Sprintf("%s[… %d bytes cut …]\n%s", head, len(s)-len(head)-len(tail), tail)
}

// tailOf returns the last n bytes of s, starting at a line when it can.
func tailOf(s string, n int) string {
	if len(s) <= n {
		return s
	}
	t := s[len(s)-n:]
	if i := strings.IndexByte(t, '\n'); i >= 0 && i < n/2 {
		t = t[i+1:]
	}
	return "[…]\n" + t
}
