package main

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// writeDemoData lays out a six-problem humaneval/ directory with answers
// from every system the demo names: one seed file per model and a
// CodeGen samples file. Three problems are additions that gpt-3.5 gets
// right and three are vowel counts it gets wrong in a way the visible
// test does not catch: enough for the scored cascade's cross-validation
// to learn from the other problems what a wrong answer's vote looks like.
func writeDemoData(t *testing.T) string {
	root := t.TempDir()
	dir := filepath.Join(root, "humaneval")
	if err := os.MkdirAll(filepath.Join(dir, "seeds"), 0o755); err != nil {
		t.Fatal(err)
	}
	type problem struct {
		id, prompt, entry, test, given, right, wrong string
		vowels                                       bool
	}
	var problems []problem
	for k := range 3 {
		add, count := fmt.Sprintf("add%d", k), fmt.Sprintf("count_vowels%d", k)
		problems = append(problems,
			problem{fmt.Sprintf("Mini/%d", 2*k), "def " + add + "(a, b):\n    \"\"\"Return a + b.\"\"\"\n", add, "def check(f):\n    assert f(-1, 1) == 0\n",
				"assert " + add + "(2, 3) == 5", "    return a + b\n", "    return 5\n", false},
			problem{fmt.Sprintf("Mini/%d", 2*k+1), "def " + count + "(s):\n    \"\"\"Count the vowels of s, in either case.\"\"\"\n", count, "def check(f):\n    assert f('HELLO') == 2\n",
				"assert " + count + "('hello') == 2", "    return sum(c in 'aeiou' for c in s.lower())\n", "    return len(s) - 3 if s.islower() else 0\n", true})
	}
	// Which systems answer right: gpt-3.5 and CodeLlama the additions,
	// gpt-4 and Reflexion everything, StarCoder nothing.
	right := map[string][2]bool{"starcoder": {false, false}, "codellama": {true, false}, "gpt-3.5-turbo-0613": {true, false},
		"gpt-4-1106-preview": {true, true}, "reflexion": {true, true}}
	for model, ok := range right {
		var b strings.Builder
		for _, p := range problems {
			body := p.wrong
			if ok[0] && !p.vowels || ok[1] && p.vowels {
				body = p.right
			}
			line, _ := json.Marshal(map[string]any{"task_id": p.id, "prompt": p.prompt, "entry_point": p.entry, "test": p.test,
				"given_tests": []string{p.given}, "solution": p.prompt + body})
			b.Write(append(line, '\n'))
		}
		if err := os.WriteFile(filepath.Join(dir, "seeds", model+".jsonl"), []byte(b.String()), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	var b strings.Builder
	for _, p := range problems {
		line, _ := json.Marshal(map[string]any{"prompt": p.prompt, "samples": []string{p.right, p.wrong, p.right, p.right}})
		b.Write(append(line, '\n'))
	}
	if err := os.WriteFile(filepath.Join(dir, "codegen16b-100samples.jsonl"), []byte(b.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	return root
}

// hive demo, the README's main command, end to end on a small data set:
// every strategy runs through the engine and the sandbox, and the report
// names the most accurate.
func TestDemo(t *testing.T) {
	w := newWorld(t)
	// Seven strategies through the sandbox: minutes, not seconds, under -race
	// on a loaded machine.
	code, out, stderr := w.hiveFor(5*time.Minute, "demo", "--data", writeDemoData(t))
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	for _, s := range demoStrategies {
		if !strings.Contains(out, s) {
			t.Errorf("report lacks %s:\n%s", s, out)
		}
	}
	// The plain cascade ships gpt-3.5's counts that fit the visible test
	// only (50%); the scored cascade catches them (100%: the samples that
	// pass the test too outvote them, and the other problems' labels
	// taught the calibration that such a vote means a wrong answer), as
	// gpt-4 alone does.
	if !strings.Contains(tableLine(out, "cascade:gpt-3.5-turbo-0613>gpt-4-1106-preview"), "50.0% (3/6)") {
		t.Errorf("plain cascade row: %q", tableLine(out, "cascade:gpt-3.5-turbo-0613>gpt-4-1106-preview"))
	}
	for _, want := range []string{
		"The most accurate strategy is",
		"frontier:",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("report lacks %q:\n%s", want, out)
		}
	}
	if !strings.Contains(tableLine(out, demoStrategies[0]), "100.0% (6/6)") || !strings.Contains(out, "6-fold cross-validation") {
		t.Errorf("scored cascade row: %q", tableLine(out, demoStrategies[0]))
	}
}

func tableLine(out, prefix string) string {
	for _, l := range strings.Split(out, "\n") {
		if strings.HasPrefix(l, prefix+" ") {
			return l
		}
	}
	return ""
}
