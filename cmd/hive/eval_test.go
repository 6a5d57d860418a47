package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// writeCodeSet lays out a two-problem code set like humaneval/: a seeds/
// folder with one JSON-lines file per model. "cheap" counts vowels in
// lower case only: it passes the visible tests and fails the hidden ones.
func writeCodeSet(t *testing.T) string {
	dir := filepath.Join(t.TempDir(), "mini")
	if err := os.MkdirAll(filepath.Join(dir, "seeds"), 0o755); err != nil {
		t.Fatal(err)
	}
	problems := []map[string]any{
		{"task_id": "Mini/0", "prompt": "def add(a, b):\n    \"\"\"Return a + b.\"\"\"\n", "entry_point": "add",
			"test": "def check(f):\n    assert f(-1, 1) == 0\n", "given_tests": []string{"assert add(2, 3) == 5"}},
		{"task_id": "Mini/1", "prompt": "def count_vowels(s):\n    \"\"\"Count the vowels of s, in either case.\"\"\"\n", "entry_point": "count_vowels",
			"test": "def check(f):\n    assert f('HELLO') == 2\n", "given_tests": []string{"assert count_vowels('hello') == 2"}},
	}
	answers := map[string][]string{
		"cheap":  {"def add(a, b):\n    return a + b\n", "def count_vowels(s):\n    return sum(c in 'aeiou' for c in s)\n"},
		"strong": {"def add(a, b):\n    return b + a\n", "def count_vowels(s):\n    return sum(c in 'aeiou' for c in s.lower())\n"},
	}
	for model, sols := range answers {
		var b strings.Builder
		for i, p := range problems {
			line := map[string]any{"solution": sols[i]}
			for k, v := range p {
				line[k] = v
			}
			data, _ := json.Marshal(line)
			b.Write(append(data, '\n'))
		}
		if err := os.WriteFile(filepath.Join(dir, "seeds", model+".jsonl"), []byte(b.String()), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

// hive eval on any directory shaped like humaneval/: the table, the JSON
// report in the documented shape, and the plot.
func TestEvalCodeDir(t *testing.T) {
	w := newWorld(t)
	data := writeCodeSet(t)
	jsonPath, plotPath := filepath.Join(w.dir, "rep.json"), filepath.Join(w.dir, "rep.svg")
	code, out, stderr := w.hive("eval", "--suite", "code", "--data", data,
		"--strategy", "single:strong", "--strategy", "cascade:cheap>strong", "--strategy", "cross:cheap>strong",
		"--json", jsonPath, "--plot", plotPath)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	for _, want := range []string{"single:strong", "cascade:cheap>strong", "cross:cheap>strong", "false acc"} {
		if !strings.Contains(out, want) {
			t.Errorf("table lacks %q:\n%s", want, out)
		}
	}
	var rep struct {
		Suite      string `json:"suite"`
		Problems   int    `json:"problems"`
		Strategies []struct {
			Name           string         `json:"name"`
			Accuracy       *float64       `json:"accuracy"`
			CostUSD        *float64       `json:"cost_usd"`
			Calls          map[string]int `json:"calls"`
			EscalationRate *float64       `json:"escalation_rate"`
			FalseAccepts   *int           `json:"false_accepts"`
			FalseRejects   *int           `json:"false_rejects"`
		} `json:"strategies"`
	}
	raw, err := os.ReadFile(jsonPath)
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(raw, &rep); err != nil {
		t.Fatalf("%v in %s", err, raw)
	}
	if rep.Suite != "mini" || rep.Problems != 2 || len(rep.Strategies) != 3 {
		t.Fatalf("report %s", raw)
	}
	want := []struct {
		accuracy     float64
		falseAccepts int
		calls        map[string]int
	}{
		{1, 0, map[string]int{"strong": 2}},
		// The cascade ships cheap's lower-case count: the visible test passes.
		{0.5, 1, map[string]int{"cheap": 2}},
		// The cross-check finds cheap and strong disagreeing on 'HELLO'.
		{1, 0, map[string]int{"cheap": 2, "strong": 2}},
	}
	for i, w := range want {
		s := rep.Strategies[i]
		if s.Accuracy == nil || s.CostUSD == nil || s.EscalationRate == nil || s.FalseAccepts == nil || s.FalseRejects == nil {
			t.Fatalf("%s: a required field is missing in %s", s.Name, raw)
		}
		if *s.Accuracy != w.accuracy || *s.FalseAccepts != w.falseAccepts || len(s.Calls) != len(w.calls) {
			t.Errorf("%s: accuracy %v, false accepts %d, calls %v; want %v, %d, %v", s.Name, *s.Accuracy, *s.FalseAccepts, s.Calls, w.accuracy, w.falseAccepts, w.calls)
		}
		for m, n := range w.calls {
			if s.Calls[m] != n {
				t.Errorf("%s: calls %v, want %v", s.Name, s.Calls, w.calls)
			}
		}
	}
	svg, err := os.ReadFile(plotPath)
	if err != nil || !strings.Contains(string(svg), "<svg") || !strings.Contains(string(svg), "cross:cheap&gt;strong") {
		t.Errorf("plot: %v\n%.300s", err, svg)
	}
}

// Bad input says what is wrong and what to do, with no stack trace.
func TestEvalErrors(t *testing.T) {
	w := newWorld(t)
	data := writeCodeSet(t)
	for _, tt := range []struct {
		args []string
		code int
		want string
	}{
		{[]string{"eval", "--suite", "code", "--data", data, "--strategy", "guess:strong"}, 2, "unknown kind"},
		{[]string{"eval", "--suite", "code", "--data", data, "--strategy", "single:nobody"}, 1, "nobody"},
		{[]string{"eval", "--suite", "code", "--data", filepath.Join(w.dir, "missing"), "--strategy", "single:strong"}, 1, "missing"},
		{[]string{"eval", "--suite", "code", "--data", data}, 2, "needs --strategy"},
		{[]string{"eval", "--suite", "code", "--data", data, "--strategy", "single:strong", "--target-fa", "5"}, 2, "--target-fa 5: want a rate between 0 and 1"},
		{[]string{"eval", "--suite", "code", "--data", data, "--strategy", "single:strong", "--target-fa", "0"}, 2, "want a rate between 0 and 1"},
	} {
		code, _, stderr := w.hive(tt.args...)
		if code != tt.code || !strings.Contains(stderr, tt.want) || strings.Contains(stderr, "goroutine ") {
			t.Errorf("hive %s: exit %d, stderr %q; want exit %d saying %q", strings.Join(tt.args, " "), code, stderr, tt.code, tt.want)
		}
	}
}
