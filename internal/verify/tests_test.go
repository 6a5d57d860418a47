package verify

import (
	"strings"
	"testing"
	"time"
)

func TestTests(t *testing.T) {
	v := newVerifiers(t)
	const addTests = "assert add(1, 2) == 3\nassert add(-1, 1) == 0\n"
	tests := []struct {
		name     string
		spec     Spec
		sub      Submission
		outcome  string
		evidence []string
		absent   []string
	}{
		{name: "correct", spec: Spec{Code: addTests},
			sub:     Submission{Artifacts: map[string]string{"code": "def add(a, b):\n    return a + b\n"}},
			outcome: Pass},
		{name: "correct in report", spec: Spec{Code: addTests},
			sub:     Submission{Report: "Done.\n```python\ndef add(a, b):\n    return a + b\n```\n"},
			outcome: Pass},
		{name: "off by one", spec: Spec{Code: addTests},
			sub:      Submission{Artifacts: map[string]string{"code": "def add(a, b):\n    return a + b + 1\n"}},
			outcome:  Fail,
			evidence: []string{"exit status 1", "AssertionError", "assert add(1, 2) == 3", `File "tests", line 1`},
			absent:   []string{"main.py", "/box"}},
		{name: "assert message", spec: Spec{Code: "def test():\n    got = add(2, 2)\n    assert got == 4, f'add(2, 2) = {got}, want 4'\ntest()\n"},
			sub:      Submission{Artifacts: map[string]string{"code": "def add(a, b):\n    return a * b + 1\n"}},
			outcome:  Fail,
			evidence: []string{"AssertionError: add(2, 2) = 5, want 4", `File "tests", line 3, in test`, `File "tests", line 4`}},
		{name: "error in the submission", spec: Spec{Code: addTests},
			sub:      Submission{Artifacts: map[string]string{"code": "def add(a, b):\n    x = 1\n    return a + b + undefined_name\n"}},
			outcome:  Fail,
			evidence: []string{"NameError", `File "submission", line 3, in add`, `File "tests", line 1`}},
		{name: "infinite loop", spec: Spec{Code: addTests},
			sub:      Submission{Artifacts: map[string]string{"code": "def add(a, b):\n    while True:\n        pass\n"}},
			outcome:  Fail,
			evidence: []string{"timed out"}},
		{name: "syntax error", spec: Spec{Code: addTests},
			sub:      Submission{Artifacts: map[string]string{"code": "def add(a, b)\n    return a + b\n"}},
			outcome:  Fail,
			evidence: []string{"SyntaxError", `File "submission", line 1`, "def add(a, b)"}},
		{name: "output flood", spec: Spec{Code: addTests},
			sub:      Submission{Artifacts: map[string]string{"code": "while True:\n    print('spam' * 1000)\n"}},
			outcome:  Fail,
			evidence: []string{"output too long", "spam"}},
		{name: "deep recursion", spec: Spec{Code: addTests},
			sub:      Submission{Artifacts: map[string]string{"code": "def add(a, b):\n    return add(a, b + 1)\n"}},
			outcome:  Fail,
			evidence: []string{"RecursionError", `File "submission", line 2, in add`}},
		{name: "out of memory", spec: Spec{Code: addTests},
			sub:      Submission{Artifacts: map[string]string{"code": "def add(a, b):\n    return len(bytearray(8 << 30))\n"}},
			outcome:  Fail,
			evidence: []string{"MemoryError"}},
		{name: "no code", spec: Spec{Code: addTests},
			sub:      Submission{Report: "I added the numbers."},
			outcome:  Fail,
			evidence: []string{"no code in the submission"}},
		{name: "no tests", spec: Spec{},
			sub:      Submission{Artifacts: map[string]string{"code": "x = 1"}},
			outcome:  Unsure,
			evidence: []string{"no test code"}},
		{name: "bad language", spec: Spec{Code: addTests, Lang: "cobol"},
			sub:      Submission{Artifacts: map[string]string{"code": "x = 1"}},
			outcome:  Unsure,
			evidence: []string{"unknown language"}},
		{name: "javascript pass", spec: Spec{Lang: "javascript", Code: "if (add(1, 2) !== 3) throw new Error('add(1, 2) = ' + add(1, 2));\n"},
			sub:     Submission{Report: "```js\nfunction add(a, b) { return a + b; }\n```"},
			outcome: Pass},
		{name: "javascript fail", spec: Spec{Lang: "js", Code: "if (add(1, 2) !== 3) throw new Error('add(1, 2) = ' + add(1, 2));\n"},
			sub:      Submission{Report: "```js\nfunction add(a, b) { return a + b + 1; }\n```"},
			outcome:  Fail,
			evidence: []string{"add(1, 2) = 4"}},
		{name: "shell pass", spec: Spec{Lang: "shell", Code: `[ "$(add 1 2)" = 3 ] || { echo "add 1 2 gave $(add 1 2)" >&2; exit 1; }`},
			sub:     Submission{Artifacts: map[string]string{"code": "add() { echo $(($1 + $2)); }"}},
			outcome: Pass},
		{name: "shell fail", spec: Spec{Lang: "sh", Code: `[ "$(add 1 2)" = 3 ] || { echo "add 1 2 gave $(add 1 2)" >&2; exit 1; }`},
			sub:      Submission{Artifacts: map[string]string{"code": "add() { echo $(($1 + $2 + 1)); }"}},
			outcome:  Fail,
			evidence: []string{"add 1 2 gave 4", "exit status 1"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got := v.Tests(testCtx(t), tt.spec, tt.sub)
			checkVerdict(t, got, tt.outcome, tt.evidence...)
			for _, a := range tt.absent {
				if strings.Contains(got.Evidence, a) {
					t.Errorf("evidence holds %q:\n%s", a, got.Evidence)
				}
			}
			if got.Verifier != KindTests {
				t.Errorf("verifier = %q", got.Verifier)
			}
		})
	}
}

// A program that sleeps past the wall limit is reported as timed out.
func TestTestsWallTimeout(t *testing.T) {
	v := newVerifiers(t)
	v.Limits.Wall = 3 * time.Second
	got := v.Tests(testCtx(t), Spec{Code: "assert slow() == 1"}, Submission{Artifacts: map[string]string{"code": "import time\ndef slow():\n    time.sleep(600)\n"}})
	checkVerdict(t, got, Fail, "timed out after 3s")
}

func TestTestsNoSandbox(t *testing.T) {
	v := New(nil, testLogger(t))
	got := v.Tests(testCtx(t), Spec{Code: "assert add(1, 2) == 3"}, Submission{Artifacts: map[string]string{"code": "def add(a, b): return a + b"}})
	checkVerdict(t, got, Unsure, "no sandbox")
}

// A long traceback is cut to its end: the exception and the last frames.
func TestPythonErrorTrim(t *testing.T) {
	p := joinProgram("def f(n):\n    return f(n - 1)\n", "f(3)\n")
	var b strings.Builder
	b.WriteString("some stderr output\nTraceback (most recent call last):\n")
	b.WriteString("  File \"/box/main.py\", line 5, in <module>\n    f(3)\n")
	for range 200 {
		b.WriteString("  File \"/box/main.py\", line 2, in f\n    return f(n - 1)\n           ^^^^^^^^\n")
	}
	b.WriteString("ValueError: the last frame's error\n")
	got := pythonError(b.String(), p, 1600)
	t.Log(got)
	if len(got) > 1600 {
		t.Errorf("trimmed to %d bytes, want at most 1600", len(got))
	}
	for _, want := range []string{"Traceback (most recent call last):", "earlier frames cut", `File "submission", line 2, in f`, "ValueError: the last frame's error"} {
		if !strings.Contains(got, want) {
			t.Errorf("lacks %q", want)
		}
	}
	if !strings.HasSuffix(got, "ValueError: the last frame's error") {
		t.Errorf("does not end with the exception")
	}

	// A bare assert whose frame shows no source gets the program's line.
	got = pythonError("Traceback (most recent call last):\n  File \"/box/main.py\", line 5, in <module>\nAssertionError\n", p, 1600)
	if !strings.Contains(got, "AssertionError (no message) from: f(3)") {
		t.Errorf("bare assert without source: %s", got)
	}
}
