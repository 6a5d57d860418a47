package verify

import (
	"strings"
	"testing"
)

// The cross-check catches what the tests let through: an answer right on
// the tests' inputs and wrong next to them.
func TestCross(t *testing.T) {
	v := newVerifiers(t)
	const tests = "assert count_vowels('hello') == 2\nassert count_vowels('sky') == 0\n"
	right := "def count_vowels(s):\n    return sum(c in 'aeiouAEIOU' for c in s)\n"
	rightToo := "```python\ndef count_vowels(s):\n    n = 0\n    for c in s.lower():\n        if c in 'aeiou':\n            n += 1\n    return n\n```"
	// Lower case only: passes both tests, but 'HELLO' (a probe: the test
	// argument upper-cased) gives 0.
	lowerOnly := "def count_vowels(s):\n    return sum(c in 'aeiou' for c in s)\n"
	failsTests := "def count_vowels(s):\n    return len(s)\n"
	noCode := "I would count the vowels."

	earlier := func(reports ...string) []Answer {
		var out []Answer
		for i, r := range reports {
			out = append(out, Answer{Model: []string{"cheap", "middle"}[i], Report: r})
		}
		return out
	}
	tests_ := []struct {
		name        string
		code        string
		earlier     []Answer
		samples     map[string]string
		n           int
		outcome     string
		unconfirmed bool
		evidence    []string
	}{
		{name: "confirmed by an earlier answer", code: right, earlier: earlier(rightToo),
			outcome: Pass, evidence: []string{"cheap (earlier) agrees on all", "probes"}},
		{name: "a wrong answer that passes the tests is caught", code: lowerOnly, earlier: earlier(rightToo),
			outcome: Fail, unconfirmed: true, evidence: []string{"0 of the independent answers agree", "count_vowels('HELLO') gives 2 where this submission gives 0"}},
		{name: "an earlier answer that fails the tests confirms nothing", code: right, earlier: earlier(failsTests, noCode),
			outcome: Fail, unconfirmed: true, evidence: []string{"cheap (earlier) fails the tests", "middle (earlier) has no code"}},
		{name: "nothing to compare with", code: right,
			outcome: Fail, unconfirmed: true, evidence: []string{"no independent answer to compare with"}},
		{name: "failing the tests is an ordinary failure", code: failsTests, earlier: earlier(right),
			outcome: Fail, evidence: []string{"AssertionError", "count_vowels('hello') == 2"}},
		{name: "confirmed by a sample", code: rightToo, samples: map[string]string{"m1": right}, n: 1,
			outcome: Pass, evidence: []string{"m1 agrees"}},
	}
	for _, tt := range tests_ {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			c := &fakeCaller{answers: tt.samples}
			spec := Spec{Kind: KindCross, Code: tests, N: tt.n, Models: []string{"m1"}}
			sub := Submission{Task: "Write count_vowels(s).", Report: tt.code, Earlier: tt.earlier}
			got := v.Verify(testCtx(t), spec, sub, c)
			checkVerdict(t, got, tt.outcome, tt.evidence...)
			if got.Unconfirmed != tt.unconfirmed {
				t.Errorf("unconfirmed = %v, want %v", got.Unconfirmed, tt.unconfirmed)
			}
			if got.Verifier != KindCross {
				t.Errorf("verifier = %q", got.Verifier)
			}
			if len(c.reqs) != tt.n {
				t.Errorf("%d samples asked, want %d", len(c.reqs), tt.n)
			}
		})
	}
}

// Answers that hang or crash the interpreter are contained, and the rest
// are still compared.
func TestCrossHostileEarlier(t *testing.T) {
	v := newVerifiers(t)
	const tests = "assert double(2) == 4\n"
	sub := Submission{Task: "double", Artifacts: map[string]string{"code": "def double(x):\n    return 2 * x\n"}, Earlier: []Answer{
		{Model: "loops", Report: "```python\ndef double(x):\n    while True:\n        pass\n```"},
		{Model: "exits", Report: "```python\nimport os\nos._exit(3)\n```"},
		{Model: "good", Report: "```python\ndef double(x):\n    return x + x\n```"},
	}}
	got := v.Verify(testCtx(t), Spec{Kind: KindCross, Code: tests}, sub, nil)
	checkVerdict(t, got, Pass, "good (earlier) agrees")
	if strings.Contains(got.Evidence, "loops (earlier) agrees") {
		t.Errorf("a hanging answer confirmed: %s", got.Evidence)
	}
}
