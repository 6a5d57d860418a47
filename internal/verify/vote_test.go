package verify

import (
	"errors"
	"strings"
	"testing"

	"github.com/hive-swarm/hive/internal/llm"
)

func TestVoteNumbers(t *testing.T) {
	v := New(nil, testLogger(t))
	models := []string{"m1", "m2"}
	tests := []struct {
		name      string
		report    string
		answers   map[string]string
		errs      map[string]error
		threshold float64
		outcome   string
		evidence  []string
	}{
		{name: "three agree", report: "So she pays 20 dollars. The answer is 20.",
			answers: map[string]string{"m1": "Step 1 ... 15 + 5\n#### 20", "m2": "Total: $20.00"},
			outcome: Pass, evidence: []string{"got 3 of 3 votes", "20: 3 votes"}},
		{name: "two to one for", report: "#### 1,200",
			answers: map[string]string{"m1": "the answer is 1200.", "m2": "I think 1199"},
			outcome: Pass, evidence: []string{"got 2 of 3 votes", "1200: 2 votes (the submission, m1)", "1199: 1 vote (m2)"}},
		{name: "two to one against", report: "The answer is 20.",
			answers: map[string]string{"m1": "The answer is 21.", "m2": "21"},
			outcome: Fail, evidence: []string{"got 1 of 3 votes", "21: 2 votes (m1, m2)", "20: 1 vote (the submission)"}},
		{name: "all differ", report: "20",
			answers: map[string]string{"m1": "21", "m2": "22%"},
			outcome: Fail, evidence: []string{"got 1 of 3 votes", "21: 1 vote (m1)"}},
		{name: "threshold above the share", report: "20", threshold: 0.7,
			answers: map[string]string{"m1": "20", "m2": "21"},
			outcome: Fail, evidence: []string{"got 2 of 3 votes", "more than 70%"}},
		{name: "a failed sample does not vote", report: "20",
			answers: map[string]string{"m1": "20"}, errs: map[string]error{"m2": errors.New("overloaded")},
			outcome: Pass, evidence: []string{"got 2 of 2 votes", "1 sample failed"}},
		{name: "every sample failed", report: "20",
			errs:    map[string]error{"m1": errors.New("overloaded"), "m2": errors.New("rate limited")},
			outcome: Unsure, evidence: []string{"every sample failed", "rate limited"}},
		{name: "text", report: "Paris",
			answers: map[string]string{"m1": "  paris.", "m2": "Lyon"},
			outcome: Pass, evidence: []string{`"paris": 2 votes`}},
		{name: "no number in a sample", report: "The answer is 7",
			answers: map[string]string{"m1": "seven", "m2": "I cannot tell"},
			outcome: Fail, evidence: []string{"(no number)"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := &fakeCaller{answers: tt.answers, errs: tt.errs}
			spec := Spec{Kind: KindVote, N: 2, Models: models, Threshold: tt.threshold}
			got := v.Verify(testCtx(t), spec, Submission{Task: "How much does she pay?", Report: tt.report, Model: "worker"}, c)
			checkVerdict(t, got, tt.outcome, tt.evidence...)
			// Each model sampled once, with the task as the user message.
			seen := map[string]int{}
			for _, r := range c.reqs {
				seen[r.Model]++
				if len(r.Messages) != 1 || r.Messages[0].Role != llm.RoleUser || r.Messages[0].Text() != "How much does she pay?" {
					t.Errorf("request messages = %+v, want the task as one user message", r.Messages)
				}
			}
			if seen["m1"] != 1 || seen["m2"] != 1 {
				t.Errorf("sampled %v, want m1 and m2 once each", seen)
			}
		})
	}
}

// With no models named, the submission's model is sampled N times.
func TestVoteDefaults(t *testing.T) {
	v := New(nil, testLogger(t))
	c := &fakeCaller{answers: map[string]string{"worker": "42"}}
	got := v.Vote(testCtx(t), Spec{Kind: KindVote}, Submission{Task: "6*7?", Report: "42", Model: "worker"}, c)
	checkVerdict(t, got, Pass, "got 4 of 4 votes")
	if len(c.reqs) != 3 {
		t.Errorf("%d samples, want 3 (the default n)", len(c.reqs))
	}
	for _, tt := range []Spec{{Kind: KindVote, N: 1000}, {Kind: KindVote, Threshold: 1}} {
		checkVerdict(t, v.Vote(testCtx(t), tt, Submission{Task: "t", Report: "1"}, c), Unsure, "bad vote")
	}
}

func TestFinalNumber(t *testing.T) {
	tests := []struct{ in, want string }{
		{"The answer is 20.", "20"},
		{"$20.00", "20"},
		{"20%", "20"},
		{"costs $1,234.50 in total", "1234.5"},
		{"#### 72\nextra 5", "72"},
		{"first 3 then 4, so the answer is -0.50 and not 9", "-0.5"},
		{"from 3-4 days: 4", "4"},
		{"x2 + 7", "7"},
		{"007", "7"},
		{"-0", "0"},
		{".5 of it", "0.5"},
		{"none", ""},
	}
	for _, tt := range tests {
		got, ok := FinalNumber(tt.in)
		if got != tt.want || ok != (tt.want != "") {
			t.Errorf("FinalNumber(%q) = %q, %v; want %q", tt.in, got, ok, tt.want)
		}
	}
}

// Code answers are compared by what they do: two textually different
// correct implementations agree, a wrong one does not.
func TestVoteCodeByBehaviour(t *testing.T) {
	v := newVerifiers(t)
	const probe = "print(sort_list([3, 1, 2]))\nprint(sort_list([]))\nprint(sort_list([5, -1, 5]))\n"
	builtin := "def sort_list(xs):\n    return sorted(xs)\n"
	insertion := "Here you go:\n```python\ndef sort_list(xs):\n    out = []\n    for x in xs:\n        i = 0\n        while i < len(out) and out[i] <= x:\n            i += 1\n        out.insert(i, x)\n    return out\n```\n"
	reversed := "```python\ndef sort_list(xs):\n    return sorted(xs, reverse=True)\n```"
	crash := "```python\ndef sort_list(xs):\n    return xs.sorted()\n```"
	tests := []struct {
		name     string
		answers  map[string]string
		outcome  string
		evidence []string
	}{
		{"different correct code agrees", map[string]string{"m1": insertion, "m2": reversed}, Pass,
			[]string{"got 2 of 3 votes", `prints "[1, 2, 3] [] [-1, 5, 5]"`, "(the submission, m1)"}},
		{"wrong code outvotes", map[string]string{"m1": reversed, "m2": reversed}, Fail,
			[]string{"got 1 of 3 votes", "(m1, m2)"}},
		{"crashes agree with nobody", map[string]string{"m1": crash, "m2": "I would use sorted()."}, Fail,
			[]string{"crashed:", "AttributeError", "(no code)"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			c := &fakeCaller{answers: tt.answers}
			spec := Spec{Kind: KindVote, N: 2, Models: []string{"m1", "m2"}, Code: probe}
			sub := Submission{Task: "Write sort_list(xs).", Report: "done", Artifacts: map[string]string{"code": builtin}}
			got := v.Verify(testCtx(t), spec, sub, c)
			checkVerdict(t, got, tt.outcome, tt.evidence...)
		})
	}
	t.Run("no sandbox", func(t *testing.T) {
		c := &fakeCaller{answers: map[string]string{"m1": insertion}}
		got := New(nil, testLogger(t)).Vote(testCtx(t), Spec{N: 1, Models: []string{"m1"}, Code: probe},
			Submission{Task: "t", Artifacts: map[string]string{"code": builtin}}, c)
		checkVerdict(t, got, Unsure, "no sandbox")
		if !strings.Contains(got.Evidence, "not checked") {
			t.Errorf("evidence %q", got.Evidence)
		}
	})
}
