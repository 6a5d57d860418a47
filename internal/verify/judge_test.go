package verify

import (
	"errors"
	"strings"
	"testing"
)

func TestParseJudgement(t *testing.T) {
	tests := []struct {
		in              string
		outcome, reason string
		ok              bool
	}{
		{`{"verdict": "pass", "reason": "All parts answered."}`, Pass, "All parts answered.", true},
		{"```json\n{\"verdict\": \"FAIL\", \"reason\": \"Misses the edge case n=0.\"}\n```", Fail, "Misses the edge case n=0.", true},
		{"Let me check.\nThe code handles {x}.\n{\"verdict\": \"passed\", \"reason\": \"ok\", \"details\": {\"n\": 1}}\nThanks", Pass, "ok", true},
		{`{"details": {"n": 1}, "verdict": "fail", "reason": "r"}`, Fail, "r", true},
		{`{"pass": false, "reason": "wrong unit"}`, Fail, "wrong unit", true},
		{`{"verdict": true}`, Pass, "", true},
		{"Verdict: **FAIL** because the total is wrong", Fail, "Verdict: **FAIL** because the total is wrong", true},
		{"PASS", Pass, "", true},
		{"fail.", Fail, "", true},
		{"I am not sure about this one.", "", "", false},
		{`{"verdict": "maybe"}`, "", "", false},
		{"", "", "", false},
	}
	for _, tt := range tests {
		out, reason, ok := ParseJudgement(tt.in)
		if out != tt.outcome || reason != tt.reason || ok != tt.ok {
			t.Errorf("ParseJudgement(%q) = %q, %q, %v; want %q, %q, %v", tt.in, out, reason, ok, tt.outcome, tt.reason, tt.ok)
		}
	}
}

func TestJudge(t *testing.T) {
	v := New(nil, testLogger(t))
	sub := Submission{Task: "Summarise the report in 3 bullets.", Report: "- a\n- b", Artifacts: map[string]string{"notes": "draft"}, Model: "worker"}
	tests := []struct {
		name     string
		spec     Spec
		answer   string
		err      error
		outcome  string
		evidence []string
		model    string
	}{
		{"pass", Spec{Rubric: "Exactly 3 bullets.", Model: "judge"}, `{"verdict":"pass","reason":"fine"}`, nil, Pass, []string{"fine"}, "judge"},
		{"fail", Spec{Rubric: "Exactly 3 bullets.", Model: "judge"}, "Looking at it...\n```json\n{\"verdict\": \"fail\", \"reason\": \"Only 2 bullets; add a third.\"}\n```", nil, Fail, []string{"Only 2 bullets; add a third."}, "judge"},
		{"unparseable", Spec{Rubric: "Exactly 3 bullets.", Model: "judge"}, "Hmm, hard to say.", nil, Unsure, []string{"no verdict", "Hmm, hard to say."}, "judge"},
		{"call fails", Spec{Rubric: "Exactly 3 bullets.", Model: "judge"}, "", errors.New("overloaded"), Unsure, []string{"overloaded"}, "judge"},
		{"default model", Spec{Rubric: "Exactly 3 bullets."}, `{"verdict":"fail","reason":"two"}`, nil, Fail, []string{"two"}, "worker"},
		{"no rubric", Spec{Model: "judge"}, "", nil, Unsure, []string{"no rubric"}, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := &fakeCaller{answers: map[string]string{tt.model: tt.answer}}
			if tt.err != nil {
				c.errs = map[string]error{tt.model: tt.err}
			}
			tt.spec.Kind = KindJudge
			got := v.Verify(testCtx(t), tt.spec, sub, c)
			checkVerdict(t, got, tt.outcome, tt.evidence...)
			if tt.model == "" {
				if len(c.reqs) != 0 {
					t.Errorf("%d calls, want none", len(c.reqs))
				}
				return
			}
			if len(c.reqs) != 1 {
				t.Fatalf("%d calls, want 1", len(c.reqs))
			}
			r := c.reqs[0]
			if r.Model != tt.model {
				t.Errorf("asked %q, want %q", r.Model, tt.model)
			}
			prompt := r.Messages[0].Text()
			for _, want := range []string{tt.spec.Rubric, sub.Task, sub.Report, `<artifact name="notes">`, "draft"} {
				if !strings.Contains(prompt, want) {
					t.Errorf("prompt lacks %q:\n%s", want, prompt)
				}
			}
			if !strings.Contains(r.System, `{"verdict": "pass" or "fail"`) {
				t.Errorf("system prompt does not ask for the JSON verdict:\n%s", r.System)
			}
		})
	}
}
