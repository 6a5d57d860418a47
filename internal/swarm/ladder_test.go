package swarm

import (
	"cmp"
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"

	"github.com/hive-swarm/hive/internal/journal"
	"github.com/hive-swarm/hive/internal/llm/llmtest"
	"github.com/hive-swarm/hive/internal/sandbox"
	"github.com/hive-swarm/hive/internal/verify"
)

var (
	sandboxOnce sync.Once
	sandboxBox  *sandbox.Sandbox
	sandboxErr  error
)

func testSandbox(t *testing.T) *sandbox.Sandbox {
	sandboxOnce.Do(func() {
		sandboxBox, sandboxErr = sandbox.New(context.Background(), sandbox.Config{}, testLogger(t))
	})
	if sandboxErr != nil {
		t.Fatalf("sandbox: %v", sandboxErr)
	}
	return sandboxBox
}

// A cheap model's code fails the tests, is repaired once and still fails,
// escalates, and the strong model's code passes; the tree shows every
// attempt with its cost.
func TestRepairThenEscalate(t *testing.T) {
	const tests = "assert add(2, 3) == 5\nassert add(-1, 1) == 0\n"
	h := func(c *llmtest.Call) llmtest.Reply {
		if isLead(c) {
			if len(c.ToolResults()) == 0 {
				return llmtest.Reply{ToolCalls: []llmtest.ToolCall{toolCall("delegate", delegateArgs{Tasks: []TaskSpec{{
					Name: "add", Instructions: "Write add(a, b) in Python.", Verify: &verify.Spec{Kind: "tests", Code: tests},
				}}})}}
			}
			r := reports(c)[0]
			return finish(string(r.Status) + " by " + r.Model + ": " + r.Report)
		}
		if c.Model == "cheap" {
			return llmtest.Reply{ToolCalls: []llmtest.ToolCall{toolCall("submit", submitArgs{Report: "done", Artifacts: map[string]string{"code": "def add(a, b):\n    return a - b\n"}})}}
		}
		return llmtest.Reply{ToolCalls: []llmtest.ToolCall{toolCall("submit", submitArgs{Report: "```python\ndef add(a, b):\n    return a + b\n```"})}}
	}
	sb := testSandbox(t)
	hs := newHarness(t, h, Options{Verifier: verify.New(sb, testLogger(t)), CodeRunner: SandboxRunner{Sandbox: sb}})
	res := hs.run(Spec{Task: "add", BudgetUSD: 1e9, Repairs: 1})
	if res.Status != StatusDone || !strings.HasPrefix(res.Answer, "done by strong") {
		t.Fatalf("run %s: %q %q", res.Status, res.Answer, res.Error)
	}
	nodes := hs.nodes(res.RunID)
	byID := map[string]Node{}
	for _, n := range nodes {
		byID[n.ID] = n
	}
	cheap, strong := byID["1"], byID["1^1"]
	if cheap.Status != StatusEscalated || cheap.Attempt != 1 || cheap.Calls != 2 || cheap.Cost <= 0 {
		t.Errorf("cheap attempt: %+v", cheap)
	}
	if cheap.Verdict == nil || cheap.Verdict.Outcome != verify.Fail || !strings.Contains(cheap.Verdict.Evidence, "assert add(2, 3) == 5") {
		t.Errorf("cheap verdict: %+v", cheap.Verdict)
	}
	if strong.Status != StatusDone || strong.Model != "strong" || strong.Parent != "lead" || strong.Verdict == nil || strong.Verdict.Outcome != verify.Pass || strong.Cost <= 0 {
		t.Errorf("strong attempt: %+v", strong)
	}
	// The repair went back to the cheap model with the evidence.
	sawEvidence := false
	for _, c := range hs.srv.Calls() {
		if c.Model == "cheap" && len(c.ToolResults()) > 0 && strings.Contains(c.ToolResults()[0].Content, "Verification failed") {
			sawEvidence = true
		}
	}
	if !sawEvidence {
		t.Error("the repair call did not carry the verifier's evidence")
	}
	// The escalated attempt saw the history.
	for _, c := range hs.srv.Calls() {
		if c.Model == "strong" && !strings.Contains(c.LastUserText(), "An earlier attempt by cheap failed verification") {
			t.Errorf("escalation prompt lacks the history: %q", clip(c.LastUserText(), 300))
		}
	}
}

// A gate decides escalation only: the cheap answer fails the vote and
// moves up (no repairs); at the top tier the vote is not taken again,
// because nothing is above it.
func TestGateSkippedAtTopTier(t *testing.T) {
	h := func(c *llmtest.Call) llmtest.Reply {
		if isLead(c) {
			if len(c.ToolResults()) == 0 {
				return llmtest.Reply{ToolCalls: []llmtest.ToolCall{toolCall("delegate", delegateArgs{Tasks: []TaskSpec{{
					Name: "sum", Instructions: "What is 40 + 2?", Verify: &verify.Spec{Kind: verify.KindVote, Models: []string{"strong"}, N: 1, Gate: true},
				}}})}}
			}
			r := reports(c)[0]
			return finish(string(r.Status) + " by " + r.Model + ": " + r.Report)
		}
		if len(c.Tools) == 0 { // a vote's sample: the task alone
			return llmtest.Reply{Text: "42"}
		}
		answer := map[string]string{"cheap": "The answer is 41.", "strong": "The answer is 42."}[c.Model]
		return llmtest.Reply{ToolCalls: []llmtest.ToolCall{toolCall("submit", submitArgs{Report: answer})}}
	}
	hs := newHarness(t, h, Options{Verifier: verify.New(nil, testLogger(t))})
	res := hs.run(Spec{Task: "sum", BudgetUSD: 1e9, Repairs: -1})
	if res.Status != StatusDone || res.Answer != "done by strong: The answer is 42." {
		t.Fatalf("run %s: %q %q", res.Status, res.Answer, res.Error)
	}
	samples := 0
	for _, c := range hs.srv.Calls() {
		if !isLead(c) && len(c.Tools) == 0 {
			samples++
		}
	}
	if samples != 1 {
		t.Errorf("%d vote samples, want 1 (the cheap tier's gate only)", samples)
	}
	for _, n := range hs.nodes(res.RunID) {
		if n.ID == "1^1" && n.Verdict != nil {
			t.Errorf("the top tier was verified: %+v", n.Verdict)
		}
	}
}

// unsureFor is a verifier that cannot tell for the named models' answers
// and passes the others'.
type unsureFor map[string]bool

func (u unsureFor) Verify(_ context.Context, spec verify.Spec, sub verify.Submission, _ verify.Caller) verify.Verdict {
	if u[sub.Model] {
		return verify.Verdict{Outcome: verify.Unsure, Verifier: spec.Kind, Evidence: "the sandbox failed"}
	}
	return verify.Verdict{Outcome: verify.Pass, Verifier: spec.Kind, Evidence: "ok"}
}

// An unsure verdict is handled by the task's policy, never passed
// silently: by default it moves the answer up a tier without a repair (and
// at the top tier the answer stands, marked unsure); "fail" repairs and
// escalates it; "accept" lets it pass.
func TestUnsurePolicy(t *testing.T) {
	for _, tt := range []struct {
		policy       string
		unsure       unsureFor
		want         string // the answer's status and model
		cheapCalls   int
		cheapOutcome string
	}{
		{"", unsureFor{"cheap": true}, "done by strong", 1, verify.Unsure},
		{verify.OnUnsureEscalate, unsureFor{"cheap": true, "strong": true}, "done by strong", 1, verify.Unsure},
		{verify.OnUnsureFail, unsureFor{"cheap": true}, "done by strong", 2, verify.Unsure},
		{verify.OnUnsureFail, unsureFor{"cheap": true, "strong": true}, "failed by strong", 2, verify.Unsure},
		{verify.OnUnsureAccept, unsureFor{"cheap": true}, "done by cheap", 1, verify.Unsure},
	} {
		t.Run(cmp.Or(tt.policy, "default")+fmt.Sprint(len(tt.unsure)), func(t *testing.T) {
			h := func(c *llmtest.Call) llmtest.Reply {
				if isLead(c) {
					if len(c.ToolResults()) == 0 {
						return llmtest.Reply{ToolCalls: []llmtest.ToolCall{toolCall("delegate", delegateArgs{Tasks: []TaskSpec{{
							Name: "t", Instructions: "Say hi.", Verify: &verify.Spec{Kind: verify.KindJudge, Rubric: "polite", OnUnsure: tt.policy},
						}}})}}
					}
					r := reports(c)[0]
					return finish(string(r.Status) + " by " + r.Model)
				}
				return llmtest.Reply{ToolCalls: []llmtest.ToolCall{toolCall("submit", submitArgs{Report: "hi from " + c.Model})}}
			}
			hs := newHarness(t, h, Options{Verifier: tt.unsure})
			res := hs.run(Spec{Task: "t", BudgetUSD: 1e9, Repairs: 1})
			if res.Status != StatusDone || res.Answer != tt.want {
				t.Fatalf("run %s: %q %q; want %q", res.Status, res.Answer, res.Error, tt.want)
			}
			cheapCalls := 0
			for _, c := range hs.srv.Calls() {
				if c.Model == "cheap" && !isLead(c) {
					cheapCalls++
				}
			}
			if cheapCalls != tt.cheapCalls {
				t.Errorf("cheap called %d times, want %d", cheapCalls, tt.cheapCalls)
			}
			for _, n := range hs.nodes(res.RunID) {
				if n.ID == "1" && (n.Verdict == nil || n.Verdict.Outcome != tt.cheapOutcome) {
					t.Errorf("cheap node's verdict %+v, want %s kept on it", n.Verdict, tt.cheapOutcome)
				}
				if n.ID == "1^1" && tt.unsure["strong"] && (n.Verdict == nil || n.Verdict.Outcome != verify.Unsure) {
					t.Errorf("strong node's verdict %+v, want unsure kept on it", n.Verdict)
				}
			}
		})
	}
}

// A fresh escalation gives the stronger model the task alone; the
// verifier still sees the earlier answer.
func TestFreshEscalation(t *testing.T) {
	const tests = "assert add(2, 3) == 5\n"
	h := func(c *llmtest.Call) llmtest.Reply {
		if isLead(c) {
			if len(c.ToolResults()) == 0 {
				return llmtest.Reply{ToolCalls: []llmtest.ToolCall{toolCall("delegate", delegateArgs{Tasks: []TaskSpec{{
					Name: "add", Instructions: "Write add(a, b) in Python.", Verify: &verify.Spec{Kind: "tests", Code: tests}, FreshEscalation: true,
				}}})}}
			}
			r := reports(c)[0]
			return finish(string(r.Status) + " by " + r.Model)
		}
		code := map[string]string{"cheap": "def add(a, b):\n    return a - b\n", "strong": "def add(a, b):\n    return a + b\n"}[c.Model]
		return llmtest.Reply{ToolCalls: []llmtest.ToolCall{toolCall("submit", submitArgs{Report: "done", Artifacts: map[string]string{"code": code}})}}
	}
	sb := testSandbox(t)
	hs := newHarness(t, h, Options{Verifier: verify.New(sb, testLogger(t)), CodeRunner: SandboxRunner{Sandbox: sb}})
	res := hs.run(Spec{Task: "add", BudgetUSD: 1e9, Repairs: -1})
	if res.Status != StatusDone || res.Answer != "done by strong" {
		t.Fatalf("run %s: %q %q", res.Status, res.Answer, res.Error)
	}
	strong := 0
	for _, c := range hs.srv.Calls() {
		if c.Model == "strong" && !isLead(c) {
			strong++
			if strings.Contains(c.LastUserText(), "earlier attempt") || strings.Contains(c.LastUserText(), "a - b") {
				t.Errorf("a fresh escalation carried the history: %q", clip(c.LastUserText(), 300))
			}
		}
	}
	if strong != 1 {
		t.Errorf("strong called %d times, want 1", strong)
	}
}

// A run whose process died after writing the run and before starting its
// workflow can still be cancelled: DBOS has no workflow to cancel, and the
// run ends cancelled.
func TestCancelRunWithoutWorkflow(t *testing.T) {
	hs := newHarness(t, func(c *llmtest.Call) llmtest.Reply { return finish("x") }, Options{})
	ctx := context.Background()
	if err := hs.engine.store.CreateRun(ctx, journal.Run{ID: "r-orphan", Task: "t", Status: string(StatusRunning), Spec: []byte(`{}`)}); err != nil {
		t.Fatal(err)
	}
	if err := hs.engine.Cancel(ctx, "r-orphan"); err != nil {
		t.Fatalf("cancel: %v", err)
	}
	jr, err := hs.engine.store.Run(ctx, "r-orphan")
	if err != nil || jr.Status != string(StatusCancelled) {
		t.Fatalf("run after cancel: %+v, %v", jr, err)
	}
}

// A worker names its artifacts plainly: a slash would let it place one
// where Hive keeps its own (NODE/x/patch looks like a patch Hive made),
// and the report is Hive's.
func TestArtifactNames(t *testing.T) {
	for _, ok := range []string{"code", "main.go", "notes_v2-final.md", "patch"} {
		if err := checkArtifactName(ok); err != nil {
			t.Errorf("%q refused: %v", ok, err)
		}
	}
	for _, bad := range []string{"x/patch", "report", "../a", "", ".hidden", "a b", strings.Repeat("a", 65)} {
		if err := checkArtifactName(bad); err == nil {
			t.Errorf("%q allowed", bad)
		}
	}
}
