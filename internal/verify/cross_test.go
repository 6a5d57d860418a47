package verify

import (
	"strings"
	"testing"
	"time"
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
		{name: "a sample with the same code confirms: it saw the task alone", code: right, samples: map[string]string{"m1": right}, n: 1,
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
		{Model: "sleeps", Report: "```python\nimport signal, time\nsignal.signal(signal.SIGALRM, signal.SIG_IGN)\ntime.sleep(100)\n```"},
		{Model: "good", Report: "```python\ndef double(x):\n    return x + x\n```"},
	}}
	got := v.Verify(testCtx(t), Spec{Kind: KindCross, Code: tests}, sub, nil)
	checkVerdict(t, got, Pass, "good (earlier) agrees")
	for _, who := range []string{"loops", "exits", "sleeps"} {
		if strings.Contains(got.Evidence, who+" (earlier) agrees") {
			t.Errorf("%s confirmed: %s", who, got.Evidence)
		}
	}
}

// A submission that attacks the check from inside — forging another
// candidate's result through /proc, freezing what it finds — finds no
// other candidate beside it, as it runs in a sandbox of its own; what it
// does to the driver fails it.
func TestCrossSubmissionAlone(t *testing.T) {
	const forger = `import os, sys, json, signal, time
M = sys.modules['__main__']
# The attack needs the driver's names: without them the code does not
# load, and the test below fails instead of passing for the wrong reason.
M.run, M.probes
def add(a, b):
    return 3 if (a, b) == (1, 2) else 0
if os.fork() == 0:
    try:
        data = json.dumps(M.run("def add(a, b):\n    return 3 if (a, b) == (1, 2) else 0\n", M.probes)).encode()
        t0 = time.time()
        while time.time() - t0 < 3:
            for p in os.listdir('/proc'):
                if not p.isdigit() or int(p) in (os.getpid(), os.getppid()):
                    continue
                try:
                    for f in os.listdir('/proc/%s/fd' % p):
                        if os.readlink('/proc/%s/fd/%s' % (p, f)).startswith('pipe:'):
                            os.kill(int(p), signal.SIGSTOP)
                            fd = os.open('/proc/%s/fd/%s' % (p, f), os.O_WRONLY)
                            os.write(fd, data)
                            os.close(fd)
                            os.kill(int(p), signal.SIGKILL)
                except Exception:
                    pass
            time.sleep(0.005)
    finally:
        os._exit(0)
`
	v := newVerifiers(t)
	// The frozen driver is stopped by the sandbox's wall clock, which
	// grows with the CPU limit: the least keeps the test short.
	v.Limits.CPU = time.Second
	sub := Submission{Task: "add", Artifacts: map[string]string{"code": forger}, Earlier: []Answer{
		{Model: "good", Report: "```python\nimport time\ntime.sleep(0.5)\ndef add(a, b):\n    return a + b\n```"},
	}}
	got := v.Verify(testCtx(t), Spec{Kind: KindCross, Code: "assert add(1, 2) == 3\n"}, sub, nil)
	// It finds only the driver, and freezes it: that fails the submission
	// (an unsure verdict would pass a gate).
	if got.Outcome != Fail || !(got.Unconfirmed || strings.Contains(got.Evidence, "stopped the cross-check itself")) {
		t.Fatalf("want the forger loaded and failed; got %+v", got)
	}
}

// Probes come from what the submission defines, functions, lambdas and
// classes alike; a copy of the submission confirms nothing; tests that
// call nothing the submission defines give no probe, and no confirmation.
func TestCrossProbes(t *testing.T) {
	v := newVerifiers(t)
	tests := []struct {
		name, code, tests, earlier string
		outcome                    string
		evidence                   string
	}{
		{"a lambda right on the tests only", "sq = lambda x: 9 if x == 3 else 0\n", "assert sq(3) == 9\n",
			"def sq(x):\n    return x * x\n", Fail, "sq(4) gives 16 where this submission gives 0"},
		{"a class's method", "class Solution:\n    def add(self, a, b):\n        return a + b\n", "assert Solution().add(1, 2) == 3\n",
			"class Solution:\n    cache = {}\n    def add(self, a, b):\n        return b + a\n", Pass, "agrees on all"},
		{"whole floats and ints", "def half(x):\n    return x / 2\n", "assert half(4) == 2\n",
			"def half(x):\n    return x // 2 if x % 2 == 0 else x / 2\n", Pass, "agrees on all"},
		{"a copy", "def inc(x):\n    return x + 1\n", "assert inc(1) == 2\n",
			"def inc(x):\n        return x + 1\n", Fail, "the same code as the submission"},
		{"no probe", "def inc(x):\n    return x + 1\n", "assert 1 + 1 == 2\n",
			"def inc(x):\n    return 1 + x\n", Fail, "no probe could be derived"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			sub := Submission{Task: "t", Artifacts: map[string]string{"code": tt.code},
				Earlier: []Answer{{Model: "other", Artifacts: map[string]string{"code": tt.earlier}}}}
			got := v.Verify(testCtx(t), Spec{Kind: KindCross, Code: tt.tests}, sub, nil)
			checkVerdict(t, got, tt.outcome, tt.evidence)
			if tt.outcome == Fail && !got.Unconfirmed {
				t.Errorf("a failure of confirmation not marked unconfirmed: %+v", got)
			}
		})
	}
}

// A net vote: of the answers that pass the tests, those that agree less
// those that do not; agreement on a share of the probes, where any
// exception agrees with any other; a fresh submission's copy of an earlier
// answer is agreement.
func TestCrossNet(t *testing.T) {
	v := newVerifiers(t)
	const tests = "assert count_vowels('hello') == 2\nassert count_vowels('sky') == 0\n"
	right := "def count_vowels(s):\n    return sum(c in 'aeiouAEIOU' for c in s)\n"
	rightToo := "```python\ndef count_vowels(s):\n    n = 0\n    for c in s.lower():\n        if c in 'aeiou':\n            n += 1\n    return n\n```"
	lowerOnly := "def count_vowels(s):\n    return sum(c in 'aeiou' for c in s)\n"
	failsTests := "def count_vowels(s):\n    return len(s)\n"
	// Differs from right on the empty string alone: one probe in many.
	emptyOdd := "def count_vowels(s):\n    if s == '':\n        return -1\n    return sum(c in 'aeiouAEIOU' for c in s)\n"
	earlier := func(reports ...string) []Answer {
		var out []Answer
		for i, r := range reports {
			out = append(out, Answer{Model: string(rune('a' + i)), Report: r})
		}
		return out
	}
	for _, tt := range []struct {
		name     string
		code     string
		earlier  []Answer
		agree    float64
		margin   int
		fresh    bool
		outcome  string
		evidence []string
	}{
		{"one dissent, one abstains: net -1", lowerOnly, earlier(rightToo, failsTests), 0, 0, false, Fail,
			[]string{"0 agree", "1 does not", "net -1, at least 0 needed", "a (earlier) passes the tests too, but count_vowels('HELLO') gives 2", "b (earlier) fails the tests"}},
		{"one for, one against: net 0 passes", right, earlier(rightToo, lowerOnly), 0, 0, false, Pass,
			[]string{"1 agrees", "1 does not", "net 0"}},
		{"a margin of 1 needs more", right, earlier(rightToo, lowerOnly), 0, 1, false, Fail,
			[]string{"net 0, at least 1 needed"}},
		{"nothing to compare: net 0", right, nil, 0, 0, false, Pass,
			[]string{"none disagrees (net 0)"}},
		{"all probes must agree by default", right, earlier(emptyOdd), 0, 1, false, Fail,
			[]string{"count_vowels('') gives -1 where this submission gives 0"}},
		{"a share of the probes", right, earlier(emptyOdd), 0.7, 1, false, Pass,
			[]string{"at least 70% of"}},
		{"a copy of an earlier answer is no vote", right, earlier(right), 0, 1, false, Fail,
			[]string{"same code as the submission"}},
		{"unless the submission never saw it", right, earlier(right), 0, 1, true, Pass,
			[]string{"1 agrees"}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			spec := Spec{Kind: KindCross, Code: tests, Net: true, Agree: tt.agree, Margin: tt.margin}
			sub := Submission{Task: "Write count_vowels(s).", Report: tt.code, Earlier: tt.earlier, Fresh: tt.fresh}
			checkVerdict(t, v.Verify(testCtx(t), spec, sub, nil), tt.outcome, tt.evidence...)
		})
	}
}

func TestSameOut(t *testing.T) {
	for _, tt := range []struct {
		a, b  string
		loose bool
		want  bool
	}{
		{"2", "2", false, true},
		{"raises TypeError", "raises ValueError", false, false},
		{"raises TypeError", "raises ValueError", true, true},
		{"raises TypeError", "None", true, false},
		{"time limit", "time limit", true, false},
		{"raises Timeout", "raises TypeError", true, false},
	} {
		if got := sameOut(tt.a, tt.b, tt.loose); got != tt.want {
			t.Errorf("sameOut(%q, %q, %v) = %v", tt.a, tt.b, tt.loose, got)
		}
	}
}

// A net vote's verdict records each vote's share of the probes, highest
// first, and NetVote counts it again as the cross-check did.
func TestCrossNetAgreement(t *testing.T) {
	v := newVerifiers(t)
	const tests = "assert count_vowels('hello') == 2\nassert count_vowels('sky') == 0\n"
	right := "def count_vowels(s):\n    return sum(c in 'aeiouAEIOU' for c in s)\n"
	lowerOnly := "def count_vowels(s):\n    return sum(c in 'aeiou' for c in s)\n"
	failsTests := "def count_vowels(s):\n    return len(s)\n"
	earlier := []Answer{{Model: "a", Report: lowerOnly}, {Model: "b", Report: right}, {Model: "c", Report: failsTests}}
	for _, margin := range []int{0, 1} {
		spec := Spec{Kind: KindCross, Code: tests, Net: true, Agree: 0.95, Margin: margin}
		got := v.Verify(testCtx(t), spec, Submission{Task: "Write count_vowels(s).", Report: right, Earlier: earlier, Fresh: true}, nil)
		a := got.Agreement
		// lowerOnly differs on the upper-cased probes alone.
		if len(a) != 2 || a[0] != 1 || !(a[1] > 0.7 && a[1] < 0.95) {
			t.Fatalf("margin %d: agreement %v, want [1, between 0.7 and 0.95] (the answer that fails the tests has no vote): %s", margin, a, got.Evidence)
		}
		if n := NetVote(a, 0.95); n != 0 {
			t.Errorf("NetVote = %d, want 0", n)
		}
		if n := NetVote(a, 0.7); n != 2 {
			t.Errorf("NetVote at 70%% = %d, want 2", n)
		}
		want := Pass
		if margin > 0 {
			want = Fail
		}
		if got.Outcome != want {
			t.Errorf("margin %d: %s, want %s", margin, got.Outcome, want)
		}
	}
}
