package eval

import (
	"context"
	"encoding/csv"
	"encoding/json"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/hive-swarm/hive/internal/config"
	"github.com/hive-swarm/hive/internal/journal"
	"github.com/hive-swarm/hive/internal/llm/replay"
	"github.com/hive-swarm/hive/internal/provider"
	"github.com/hive-swarm/hive/internal/sandbox"
	"github.com/hive-swarm/hive/internal/suite"
	"github.com/hive-swarm/hive/internal/swarm"
	"github.com/hive-swarm/hive/internal/verify"
)

// A small code set in the seeds shape, with the mistakes the strategies
// differ on: a cheap answer that passes the visible tests and fails the
// hidden ones, and a middle one that does the same after the cheap one
// failed the visible tests.
var miniSet = []struct {
	id, prompt, entry, test string
	given                   []string
	answers                 map[string]string // model → solution
}{
	{"Mini/0", "def add(a, b):\n    \"\"\"Return a + b.\"\"\"\n", "add",
		"def check(f):\n    assert f(-1, 1) == 0\n    assert f(10, 5) == 15\n",
		[]string{"assert add(2, 3) == 5"},
		map[string]string{
			"starcoder":          "def add(a, b):\n    return a + b\n",
			"gpt-3.5-turbo-0613": "def add(a, b):\n    return b + a\n",
			"gpt-4-1106-preview": "def add(a, b):\n    return sum([a, b])\n",
		}},
	{"Mini/1", "def count_vowels(s):\n    \"\"\"Count the vowels of s, in either case.\"\"\"\n", "count_vowels",
		"def check(f):\n    assert f('HELLO') == 2\n    assert f('Sky') == 0\n",
		[]string{"assert count_vowels('hello') == 2", "assert count_vowels('sky') == 0"},
		map[string]string{
			"starcoder":          "def count_vowels(s):\n    return sum(c in 'aeiou' for c in s)\n",
			"gpt-3.5-turbo-0613": "def count_vowels(s):\n    return sum(c in 'aeiouAEIOU' for c in s)\n",
			"gpt-4-1106-preview": "def count_vowels(s):\n    return len([c for c in s.lower() if c in 'aeiou'])\n",
		}},
	{"Mini/2", "def max_of(xs):\n    \"\"\"The largest element of xs.\"\"\"\n", "max_of",
		"def check(f):\n    assert f([3, 1, 2]) == 3\n    assert f([-5]) == -5\n",
		[]string{"assert max_of([1, 2, 3]) == 3"},
		map[string]string{
			"starcoder":          "def max_of(xs):\n    return xs[0]\n",
			"gpt-3.5-turbo-0613": "def max_of(xs):\n    return xs[-1]\n",
			"gpt-4-1106-preview": "def max_of(xs):\n    best = xs[0]\n    for x in xs:\n        best = x if x > best else best\n    return best\n",
		}},
	{"Mini/3", "def is_even(n):\n    \"\"\"Whether n is even.\"\"\"\n", "is_even",
		"def check(f):\n    assert f(0) and f(-4) and not f(7)\n",
		[]string{"assert is_even(2)", "assert not is_even(3)"},
		map[string]string{
			"starcoder":          "def is_even(n):\n    return n % 2 == 0\n",
			"gpt-3.5-turbo-0613": "def is_even(n):\n    return not n & 1\n",
			"gpt-4-1106-preview": "def is_even(n):\n    return n % 2 == 0\n",
		}},
}

// newEvaluator returns an evaluator over a real engine on a fresh SQLite
// journal, with the models register adds; with code, a real sandbox runs
// the verifiers and the hidden tests.
func newEvaluator(t *testing.T, code bool, register func(*provider.Registry) error) *Evaluator {
	ctx := context.Background()
	log := slog.New(slog.DiscardHandler)
	var sb *sandbox.Sandbox
	if code {
		var err error
		if sb, err = sandbox.New(ctx, sandbox.Config{}, log); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { sb.Close() })
	}
	store, err := journal.Open(ctx, filepath.Join(t.TempDir(), "eval.db"), log)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { store.Close() })
	reg := provider.NewRegistry(config.Default(), func(string) string { return "" }, log)
	if err := register(reg); err != nil {
		t.Fatal(err)
	}
	engine, err := swarm.New(ctx, store, reg, log, swarm.Options{Verifier: verify.New(sb, log)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { engine.Close(ctx) })
	return &Evaluator{Engine: engine, Registry: reg, Sandbox: sb, Log: log}
}

func parseStrategies(t *testing.T, names ...string) []Strategy {
	var out []Strategy
	for _, s := range names {
		st, err := ParseStrategy(s)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, st)
	}
	return out
}

func writeMiniSet(t *testing.T) string {
	dir := t.TempDir()
	if err := os.Mkdir(filepath.Join(dir, "seeds"), 0o755); err != nil {
		t.Fatal(err)
	}
	for _, model := range []string{"starcoder", "gpt-3.5-turbo-0613", "gpt-4-1106-preview"} {
		f, err := os.Create(filepath.Join(dir, "seeds", model+".jsonl"))
		if err != nil {
			t.Fatal(err)
		}
		enc := json.NewEncoder(f)
		for _, p := range miniSet {
			if err := enc.Encode(map[string]any{"task_id": p.id, "prompt": p.prompt, "entry_point": p.entry,
				"test": p.test, "given_tests": p.given, "solution": p.answers[model]}); err != nil {
				t.Fatal(err)
			}
		}
		if err := f.Close(); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

// Strategies run through the real engine, replayed models and the real
// sandbox. The cascade ships the answers that only the visible tests
// checked; the cross-check catches both and calls the strong model on
// those two problems only.
func TestEvalCodeStrategies(t *testing.T) {
	ctx := context.Background()
	c, err := suite.LoadCode(writeMiniSet(t))
	if err != nil {
		t.Fatal(err)
	}
	ev := newEvaluator(t, true, func(reg *provider.Registry) error { return RegisterCode(reg, c, replay.Options{}) })
	strategies := parseStrategies(t, "single:gpt-4-1106-preview", "cascade:starcoder>gpt-3.5-turbo-0613>gpt-4-1106-preview", "cross:starcoder>gpt-3.5-turbo-0613>gpt-4-1106-preview")
	rep, err := ev.EvalCode(ctx, c, strategies)
	if err != nil {
		t.Fatal(err)
	}
	want := []struct {
		correct, falseAccepts int
		calls                 map[string]int
	}{
		{4, 0, map[string]int{"gpt-4-1106-preview": 4}},
		// Mini/0 and Mini/3 pass on starcoder; Mini/1 ships starcoder's
		// lower-case-only count, Mini/2 gpt-3.5's last element.
		{2, 2, map[string]int{"starcoder": 4, "gpt-3.5-turbo-0613": 1}},
		// A first answer has nothing to agree with; gpt-3.5 confirms
		// starcoder on Mini/0 and Mini/3. On Mini/1 they disagree on
		// 'HELLO', and gpt-4 agrees with gpt-3.5. On Mini/2 gpt-4 is
		// confirmed by nobody (starcoder fails the tests, gpt-3.5 differs
		// on [3, 2, 1]); as the latest answer that passes the tests, it
		// stands.
		{4, 0, map[string]int{"starcoder": 4, "gpt-3.5-turbo-0613": 4, "gpt-4-1106-preview": 2}},
	}
	if rep.Reference != "single:gpt-4-1106-preview" {
		t.Errorf("reference %q", rep.Reference)
	}
	for i, w := range want {
		s := rep.Strategies[i]
		if s.Correct != w.correct || s.FalseAccepts != w.falseAccepts {
			t.Errorf("%s: %d correct, %d false accepts; want %d, %d", s.Name, s.Correct, s.FalseAccepts, w.correct, w.falseAccepts)
		}
		for m, n := range w.calls {
			if s.Calls[m] != n {
				t.Errorf("%s: calls %v, want %s×%d", s.Name, s.Calls, m, n)
			}
		}
		if len(s.Calls) != len(w.calls) {
			t.Errorf("%s: calls %v, want %v", s.Name, s.Calls, w.calls)
		}
		if s.Cost <= 0 || len(s.Unpriced) > 0 {
			t.Errorf("%s: cost %v, unpriced %v", s.Name, s.Cost, s.Unpriced)
		}
	}
}

// writeMiniGSM8K lays out three questions like the gsm8k directory, with
// Mixtral and gpt-4 answers in the RouteLLM CSV and GPT-3 6B's in the
// GPT-3 solutions file.
func writeMiniGSM8K(t *testing.T) string {
	dir := t.TempDir()
	qs := []struct{ q, gold, mixtral, gpt4, gpt6b string }{
		// Mixtral right, its arithmetic right: the gate keeps it.
		{"Janet has 16 eggs and eats 3. How many are left?", "13",
			"She has 16 - 3 = <<16-3=13>>13 eggs left.\n#### 13", "16 - 3 = 13. The answer is 13.", "16 - 3 = 13\nA: 13"},
		// Mixtral slips on a sum: the gate sends it to gpt-4.
		{"A box holds 12 pens. How many pens are in 5 boxes?", "60",
			"5 boxes hold 5 * 12 = <<5*12=50>>50 pens.\n#### 50", "5 * 12 = 60 pens. The answer is 60.", "5 * 12 = 60\nA: 60"},
		// Mixtral's reasoning is wrong and its arithmetic right: the gate
		// cannot tell, and the wrong answer ships.
		{"Tom reads 10 pages a day for a week. How many pages?", "70",
			"Tom reads 10 * 5 = <<10*5=50>>50 pages.\n#### 50", "10 * 7 = 70. The answer is 70.", "10 * 5 = 50\nA: 50"},
	}
	var test, gpt3 strings.Builder
	var rows [][]string
	rows = append(rows, []string{"prompt", "mistralai/Mixtral-8x7B-Instruct-v0.1", "gpt-4-1106-preview", "mistralai/Mixtral-8x7B-Instruct-v0.1_response", "gpt-4-1106-preview_response"})
	for _, q := range qs {
		line, _ := json.Marshal(map[string]string{"question": q.q, "answer": "Work.\n#### " + q.gold})
		test.Write(append(line, '\n'))
		line, _ = json.Marshal(map[string]any{"question": q.q, "6b_finetuning": map[string]any{"is_correct": strings.HasSuffix(q.gpt6b, q.gold), "solution": q.gpt6b}})
		gpt3.Write(append(line, '\n'))
		rows = append(rows, []string{q.q, "True", "True", q.mixtral, q.gpt4})
	}
	var csvb strings.Builder
	w := csv.NewWriter(&csvb)
	if err := w.WriteAll(rows); err != nil {
		t.Fatal(err)
	}
	for name, data := range map[string]string{"test.jsonl": test.String(), "gpt3-model-solutions.jsonl": gpt3.String(), "routellm-mixtral-gpt4-responses.csv": csvb.String()} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(data), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

// Math strategies through the real engine: a cascade gated by the first
// model's arithmetic, and a plurality vote.
func TestEvalMathStrategies(t *testing.T) {
	ctx := context.Background()
	m, err := suite.LoadGSM8K(writeMiniGSM8K(t))
	if err != nil {
		t.Fatal(err)
	}
	ev := newEvaluator(t, false, func(reg *provider.Registry) error { return RegisterMath(reg, m, replay.Options{}) })
	strategies := parseStrategies(t, "cascade:mixtral-8x7b-instruct>gpt-4-1106-preview", "vote:gpt3-6b,mixtral-8x7b-instruct,gpt-4-1106-preview")
	rep, err := ev.EvalMath(ctx, m, strategies)
	if err != nil {
		t.Fatal(err)
	}
	casc, vote := rep.Strategies[0], rep.Strategies[1]
	if casc.Correct != 2 || casc.FalseAccepts != 1 || casc.Calls["gpt-4-1106-preview"] != 1 || casc.Calls["mixtral-8x7b-instruct"] != 3 {
		t.Errorf("cascade: %d correct, %d false accepts, calls %v; want 2, 1, gpt-4×1 mixtral×3", casc.Correct, casc.FalseAccepts, casc.Calls)
	}
	// Q1: gpt-4 and 6B outvote Mixtral's 50; Q2: 6B and Mixtral outvote
	// gpt-4's 70, wrongly.
	if vote.Correct != 2 || vote.Calls["gpt3-6b"] != 3 {
		t.Errorf("vote: %d correct, calls %v; want 2", vote.Correct, vote.Calls)
	}
	if _, err := ev.EvalMath(ctx, m, []Strategy{{Name: "cross:a>b", Kind: "cross", Models: []string{"mixtral-8x7b-instruct", "gpt-4-1106-preview"}}}); err == nil || !strings.Contains(err.Error(), "visible tests") {
		t.Errorf("cross on math: %v", err)
	}
}

// A score strategy is run twice: a calibration that gates on the tests
// alone and records the vote, then the strategy with thresholds chosen on
// the other folds. Only the second run is in its cost.
func TestEvalScoreCalibrates(t *testing.T) {
	ctx := context.Background()
	c, err := suite.LoadCode(writeMiniSet(t))
	if err != nil {
		t.Fatal(err)
	}
	ev := newEvaluator(t, true, func(reg *provider.Registry) error { return RegisterCode(reg, c, replay.Options{}) })
	var runs int
	ev.Started = func(Strategy, string) { runs++ }
	rep, err := ev.EvalCode(ctx, c, parseStrategies(t, "score:starcoder>gpt-4-1106-preview+gpt-3.5-turbo-0613*1"))
	if err != nil {
		t.Fatal(err)
	}
	s := rep.Strategies[0]
	cal := s.Calibration
	if cal == nil {
		t.Fatal("no calibration in the report")
	}
	// starcoder passes the visible tests on Mini/0, /1 and /3 (Mini/1
	// wrongly: lower-case vowels only); on Mini/2 it fails them, though
	// its first element passes the hidden tests (a false reject).
	if cal.Judged != 3 || cal.FirstTierWithout.FalseAccepts != 1 || cal.Folds != 4 || cal.Mismatched != 0 {
		t.Errorf("calibration %+v: want 3 judged in 4 folds, 1 false accept without the vote, the same votes in both runs", cal)
	}
	// Each fold's training answers are all right or hold one wrong answer
	// in three: too few to learn a vote from, so every problem is scored
	// as the tests alone would.
	if cal.Blind == 0 || !strings.Contains(tableText(rep), "had no wrong answer to learn from") {
		t.Errorf("calibration %+v: some fold's training answers were all right, and the report should say so", cal)
	}
	if cal.FirstTier != cal.FirstTierWithout {
		t.Errorf("first tier with the vote %+v, without %+v", cal.FirstTier, cal.FirstTierWithout)
	}
	if cal.Calls["starcoder"] != 4 || cal.CostUSD <= 0 || cal.Wall <= 0 {
		t.Errorf("calibration run: calls %v, $%g, %s", cal.Calls, cal.CostUSD, cal.Wall)
	}
	total := 0
	for _, th := range cal.Chosen {
		total += th.Problems
	}
	if total != 4 {
		t.Errorf("thresholds cover %d problems, want 4: %+v", total, cal.Chosen)
	}
	// The strategy's own run: starcoder once a problem, the sample once
	// for each answer that passed the tests, not twice over.
	if s.Calls["starcoder"] != 4 || s.Calls["gpt-3.5-turbo-0613"] != 3 || runs != 1 {
		t.Errorf("calls %v, %d runs announced; want starcoder×4, gpt-3.5×3 and one run", s.Calls, runs)
	}
	var out strings.Builder
	if err := rep.WriteTable(&out); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out.String(), "4-fold cross-validation") || !strings.Contains(out.String(), "without it (tests alone): 1 and 1") {
		t.Errorf("the table does not say how the thresholds were chosen:\n%s", out.String())
	}
}

// plan gives each problem of a score strategy the thresholds its fold
// chose, and the calibration run (no thresholds) a vote that accepts
// every answer passing the tests.
func TestPlanScoreThresholds(t *testing.T) {
	probs := []problem{{id: "P/0", verify: &verify.Spec{Kind: verify.KindTests, Code: "assert f()"}}, {id: "P/1", verify: &verify.Spec{Kind: verify.KindTests, Code: "assert g()"}}}
	st := parseStrategies(t, "score:a>b+p*3")[0]
	_, tasks, _ := plan(st, probs, false, map[string]Threshold{"P/0": {Agree: 0.9, Margin: 1}, "P/1": {Agree: 0.6, Margin: -2}})
	for i, want := range []Threshold{{Agree: 0.9, Margin: 1}, {Agree: 0.6, Margin: -2}} {
		v := tasks[i].Verify
		if v == nil || !v.Net || v.Agree != want.Agree || v.Margin != want.Margin || v.N != 3 {
			t.Errorf("task %s: verify %+v, want agree %.1f margin %d over 3 samples", tasks[i].Name, v, want.Agree, want.Margin)
		}
	}
	_, tasks, _ = plan(st, probs, false, nil)
	for _, task := range tasks {
		if v := task.Verify; v == nil || !v.Net || v.Margin != -3 || v.Agree <= 0 || v.Agree >= 1 {
			t.Errorf("calibration task %s: verify %+v, want a vote that accepts all (margin -3, agree below 1)", task.Name, v)
		}
	}
}

func tableText(rep *Report) string {
	var b strings.Builder
	rep.WriteTable(&b)
	return b.String()
}
