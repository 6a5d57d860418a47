// Package eval measures swarm strategies on benchmark suites whose answers
// real models gave (package suite, replayed by llm/replay): accuracy, cost
// at list prices, calls per model, escalations, and the verifier's
// confusion — the wrong answers it accepted, the right ones it rejected.
//
// Every strategy runs through the real engine: a scripted lead delegates
// each problem as a task; workers are replayed models; verifiers run in
// the real sandbox. Final scoring uses what the swarm never sees: hidden
// tests for code, gold answers for math. Correctness labels are computed
// here by running the code, never taken from the data.
package eval

import (
	"context"
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/hive-swarm/hive/internal/limit"
	"github.com/hive-swarm/hive/internal/llm/replay"
	"github.com/hive-swarm/hive/internal/price"
	"github.com/hive-swarm/hive/internal/provider"
	"github.com/hive-swarm/hive/internal/sandbox"
	"github.com/hive-swarm/hive/internal/suite"
	"github.com/hive-swarm/hive/internal/swarm"
	"github.com/hive-swarm/hive/internal/verify"
)

// Evaluator runs strategies on suites.
type Evaluator struct {
	Engine   *swarm.Engine
	Registry *provider.Registry
	// Sandbox runs the hidden tests of code answers.
	Sandbox *sandbox.Sandbox
	Log     *slog.Logger
	// Workers bounds the tasks in flight in each run (default 16).
	Workers int
	// Started, when set, is called as each strategy's run starts;
	// Calibrating as a score strategy's calibration run does, before it.
	Started, Calibrating func(st Strategy, runID string)
	// TargetFA is the false-accept rate a score strategy's thresholds are
	// chosen for (default [DefaultTargetFA]); see calibrate.go.
	TargetFA float64

	leads  atomic.Int64
	hidden sync.Map // sha256 of a hidden-test program → bool
}

// RegisterCode adds a replayed model for each model with answers in c.
func RegisterCode(reg *provider.Registry, c *suite.Code, opts replay.Options) error {
	for _, name := range c.Models() {
		m, err := replay.NewCode(c, name, opts)
		if err != nil {
			return err
		}
		register(reg, name, m)
	}
	return nil
}

// RegisterMath adds a replayed model for each model with answers in m.
func RegisterMath(reg *provider.Registry, m *suite.Math, opts replay.Options) error {
	for _, name := range m.Models() {
		rm, err := replay.NewMath(m, name, opts)
		if err != nil {
			return err
		}
		register(reg, name, rm)
	}
	return nil
}

func register(reg *provider.Registry, name string, m *replay.Model) {
	p, known := price.Lookup(name)
	pm := reg.Add(name, m, p, known, limit.Config{MaxConcurrency: 256, InitialConcurrency: 256, MaxAttempts: 1})
	pm.Plain = true
}

// problem is one benchmark question as a strategy sees it.
type problem struct {
	id string
	// prompt is the task a worker gets: the problem's text under a line
	// naming its id, by which replayed models find their recorded answer
	// (two problems may share a text but for whitespace).
	prompt  string
	verify  *verify.Spec // the run-time gate (visible tests), nil when none
	correct func(answer string) bool
	// program, for code, gives the hidden-test program of an answer, so
	// that scoring can run them in batches first.
	program func(answer string) (string, bool)
}

// EvalCode evaluates strategies on a code suite.
func (ev *Evaluator) EvalCode(ctx context.Context, c *suite.Code, strategies []Strategy) (*Report, error) {
	probs := make([]problem, len(c.Problems))
	for i, p := range c.Problems {
		p := p
		probs[i] = problem{id: p.ID, prompt: "# " + p.ID + "\n" + p.Prompt,
			correct: func(answer string) bool { return ev.passesHidden(ctx, p, answer) },
			program: func(answer string) (string, bool) { return hiddenProgram(p, answer) }}
		if len(p.GivenTests) > 0 {
			probs[i].verify = &verify.Spec{Kind: verify.KindTests, Code: strings.Join(p.GivenTests, "\n")}
		}
	}
	for _, st := range strategies {
		if st.Kind == "vote" {
			return nil, fmt.Errorf("strategy %s: vote compares numbers; for code use cascade or best-of-n", st.Name)
		}
	}
	return ev.eval(ctx, c.Name, probs, strategies, false)
}

// EvalMath evaluates strategies on a math suite.
func (ev *Evaluator) EvalMath(ctx context.Context, m *suite.Math, strategies []Strategy) (*Report, error) {
	probs := make([]problem, len(m.Problems))
	for i, p := range m.Problems {
		probs[i] = problem{id: p.ID, prompt: p.ID + ": " + p.Question, correct: p.Correct}
	}
	for _, st := range strategies {
		if st.Kind == "best-of-n" || st.Kind == "cross" || st.Kind == "score" {
			return nil, fmt.Errorf("strategy %s: %s checks code against visible tests, which math has none of; use vote or cascade", st.Name, st.Kind)
		}
	}
	return ev.eval(ctx, m.Name, probs, strategies, true)
}

func (ev *Evaluator) eval(ctx context.Context, suiteName string, probs []problem, strategies []Strategy, math bool) (*Report, error) {
	rep := &Report{Suite: suiteName, Problems: len(probs)}
	for _, st := range strategies {
		for _, m := range append(slices.Clip(st.Models), st.Partner) {
			if m == "" {
				continue
			}
			if _, err := ev.Registry.Get(m); err != nil {
				return nil, fmt.Errorf("strategy %s: %w", st.Name, err)
			}
		}
		res, err := ev.runStrategy(ctx, st, probs, math)
		if err != nil {
			return nil, fmt.Errorf("strategy %s: %w", st.Name, err)
		}
		rep.Strategies = append(rep.Strategies, *res)
	}
	rep.setReference()
	return rep, nil
}

// plan is how a strategy maps onto a run: tiers, tasks, how to combine.
//
// A score strategy's thresholds come from cal, by problem; with cal nil
// (the calibration run) the vote is counted and recorded but accepts every
// answer that passes the tests.
func plan(st Strategy, probs []problem, math bool, cal map[string]Threshold) (tiers []string, tasks []swarm.TaskSpec, combine func([]taskReport) map[string]string) {
	byName := func(reports []taskReport) map[string]string {
		out := make(map[string]string, len(reports))
		for _, r := range reports {
			out[r.Name] = r.Report
		}
		return out
	}
	one := func(v *verify.Spec) {
		for _, p := range probs {
			t := swarm.TaskSpec{Name: p.id, Instructions: p.prompt}
			if v != nil {
				t.Verify = v
			} else if p.verify != nil && !math {
				t.Verify = p.verify
			}
			tasks = append(tasks, t)
		}
	}
	switch st.Kind {
	case "single":
		tiers = st.Models
		for _, p := range probs {
			tasks = append(tasks, swarm.TaskSpec{Name: p.id, Instructions: p.prompt})
		}
		combine = byName
	case "cascade":
		if !math {
			tiers = st.Models
			one(nil)
		} else {
			// Math has no tests: the first model's answer stands when the
			// middle models agree with it; otherwise the last answers.
			// With no middle model, the gate is the first answer's own
			// arithmetic, recomputed.
			first, last := st.Models[0], st.Models[len(st.Models)-1]
			gate := st.Models[1 : len(st.Models)-1]
			tiers = []string{first, last}
			if len(gate) == 0 {
				one(&verify.Spec{Kind: verify.KindArithmetic, Gate: true})
			} else {
				one(&verify.Spec{Kind: verify.KindVote, Models: gate, N: len(gate), Gate: true})
			}
		}
		combine = byName
	case "cross", "score":
		tiers = st.Models
		for _, p := range probs {
			t := swarm.TaskSpec{Name: p.id, Instructions: p.prompt}
			if p.verify != nil {
				t.Verify = &verify.Spec{Kind: verify.KindCross, Code: p.verify.Code}
				if st.Partner != "" {
					t.Verify.Models, t.Verify.N = []string{st.Partner}, st.N
				}
				if st.Kind == "score" {
					// Without cal (the calibration run) the vote is
					// recorded and accepts everything; crossValidate
					// gives every problem thresholds.
					th := Threshold{Agree: calibrationAgree, Margin: -st.N}
					if cal != nil {
						th = cal[p.id]
					}
					t.Verify.Net, t.Verify.Agree, t.Verify.Margin = true, th.Agree, th.Margin
				}
			}
			tasks = append(tasks, t)
		}
		combine = byName
	case "best-of-n":
		for range st.N {
			tiers = append(tiers, st.Models[0])
		}
		one(nil)
		combine = byName
	case "vote":
		tiers = st.Models
		for _, p := range probs {
			for i := range st.Models {
				i := i
				tasks = append(tasks, swarm.TaskSpec{Name: fmt.Sprintf("%s#%d", p.id, i), Instructions: p.prompt, Tier: &i})
			}
		}
		combine = func(reports []taskReport) map[string]string {
			groups := map[string][]taskReport{}
			for _, r := range reports {
				id, _, _ := strings.Cut(r.Name, "#")
				groups[id] = append(groups[id], r)
			}
			out := make(map[string]string, len(groups))
			for id, rs := range groups {
				out[id] = plurality(rs)
			}
			return out
		}
	}
	// A recorded answer was given to the task alone: an escalation that
	// sends the earlier attempts along would pay for a history that the
	// answer it gets back never saw.
	for i := range tasks {
		tasks[i].FreshEscalation = true
	}
	return tiers, tasks, combine
}

// plurality returns the report whose final number most reports share; a
// tie goes to the answer of the latest (strongest) model among the tied.
func plurality(rs []taskReport) string {
	count := map[string]int{}
	for _, r := range rs {
		if n, ok := verify.FinalNumber(r.Report); ok {
			count[n]++
		}
	}
	best, bestN := "", 0
	for i := len(rs) - 1; i >= 0; i-- {
		n, ok := verify.FinalNumber(rs[i].Report)
		if ok && count[n] > bestN {
			best, bestN = rs[i].Report, count[n]
		}
	}
	if best == "" && len(rs) > 0 {
		best = rs[len(rs)-1].Report
	}
	return best
}

func (ev *Evaluator) runStrategy(ctx context.Context, st Strategy, probs []problem, math bool) (*StrategyResult, error) {
	// Each strategy sees a sampled model's samples from the first, as if
	// alone: strategies compared in one report see the same answers (and
	// a score strategy's calibration the same as its run).
	ev.resetReplay(st)
	var cal map[string]Threshold
	var calibration *Calibration
	if st.Kind == "score" && !math {
		var err error
		if cal, calibration, err = ev.calibrate(ctx, st, probs); err != nil {
			return nil, err
		}
		ev.resetReplay(st)
	}
	start := time.Now()
	tiers, tasks, combine := plan(st, probs, math, cal)
	answers, nodes, leadName, err := ev.execute(ctx, st, tiers, tasks, combine, ev.Started)
	if err != nil {
		return nil, err
	}
	sr := &StrategyResult{Name: st.Name, Problems: len(probs), Calls: map[string]int{}, Calibration: calibration}
	if err := ev.score(ctx, sr, probs, answers, nodes, leadName); err != nil {
		return nil, err
	}
	if calibration != nil {
		calibration.finish(nodes, probs)
		if calibration.Mismatched > 0 {
			ev.Log.Warn("a score strategy's first-tier votes differ from its calibration's", "strategy", st.Name, "problems", calibration.Mismatched)
		}
	}
	sr.Wall = time.Since(start)
	return sr, nil
}

// resetReplay starts every replayed model of st over from its first
// samples.
func (ev *Evaluator) resetReplay(st Strategy) {
	for _, name := range append(slices.Clip(st.Models), st.Partner) {
		if m, err := ev.Registry.Get(name); err == nil {
			if r, ok := m.Client.(*replay.Model); ok {
				r.Reset()
			}
		}
	}
}

// execute runs one planned strategy through the engine and returns the
// answers by problem id, the run's nodes and the scripted lead's name.
// started, when set, is told the run's id as it starts.
func (ev *Evaluator) execute(ctx context.Context, st Strategy, tiers []string, tasks []swarm.TaskSpec, combine func([]taskReport) map[string]string, started func(Strategy, string)) (map[string]string, []swarm.Node, string, error) {
	args, err := json.Marshal(map[string]any{"tasks": tasks, "wait": true})
	if err != nil {
		return nil, nil, "", err
	}
	leadName := fmt.Sprintf("eval-lead-%d", ev.leads.Add(1))
	lead := &scriptLead{tasks: args, combine: func(rs []taskReport) string {
		b, _ := json.Marshal(combine(rs))
		return string(b)
	}}
	ev.Registry.Add(leadName, lead, price.Price{Model: leadName, Source: "a program, not a model"}, true, limit.Config{MaxConcurrency: 4})
	workers := ev.Workers
	if workers <= 0 {
		workers = 16
	}
	id, err := ev.Engine.Start(ctx, swarm.Spec{
		Task: "evaluate " + st.Name, Lead: leadName, Tiers: tiers,
		Models:     append(slices.Clip(st.Models), st.Partner), // the gate's voters and the cross-check's partner
		MaxWorkers: workers, Repairs: -1, MaxDepth: 1, ReportCap: 8000,
	})
	if err != nil {
		return nil, nil, "", err
	}
	if started != nil {
		started(st, id)
	}
	res, err := ev.Engine.Wait(ctx, id)
	if err != nil {
		return nil, nil, "", err
	}
	if res.Status != swarm.StatusDone {
		return nil, nil, "", fmt.Errorf("run %s ended %s: %s", id, res.Status, res.Error)
	}
	var answers map[string]string
	if err := json.Unmarshal([]byte(res.Answer), &answers); err != nil {
		return nil, nil, "", fmt.Errorf("run %s: read answers: %w", id, err)
	}
	nodes, err := ev.Engine.Nodes(ctx, id)
	if err != nil {
		return nil, nil, "", err
	}
	return answers, nodes, leadName, nil
}

// score judges the final answers and every verified attempt, in parallel.
func (ev *Evaluator) score(ctx context.Context, sr *StrategyResult, probs []problem, answers map[string]string, nodes []swarm.Node, leadName string) error {
	byID := problemsByID(probs)
	escalated := map[string]bool{}
	type judged struct {
		p       problem
		answer  string
		verdict string
	}
	var attempts []judged
	for _, n := range nodes {
		if n.Model == leadName {
			continue
		}
		sr.Calls[n.Model] += n.Calls
		sr.Cost += n.Cost
		if m, err := ev.Registry.Get(n.Model); err == nil && n.Calls > 0 {
			if !m.PriceKnown && !slices.Contains(sr.Unpriced, n.Model) {
				sr.Unpriced = append(sr.Unpriced, n.Model)
			}
			if m.PriceKnown && m.Price.LowerBound && !slices.Contains(sr.LowerBound, n.Model) {
				sr.LowerBound = append(sr.LowerBound, n.Model)
			}
		}
		if n.Role != swarm.RoleWorker {
			continue
		}
		pid, _, _ := strings.Cut(n.Name, "#")
		if strings.Contains(n.ID, "^") {
			escalated[pid] = true
		}
		if n.Verdict != nil && n.Verdict.Outcome == verify.Unsure {
			sr.Unsure++
		}
		if n.Verdict != nil && n.Verdict.Outcome != verify.Unsure && n.Report != "" {
			attempts = append(attempts, judged{byID[pid], n.Report, n.Verdict.Outcome})
		}
	}
	sr.Escalations = len(escalated)
	sr.EscalationRate = float64(sr.Escalations) / float64(max(len(probs), 1))

	// Run every program to judge in batches first; the judging below then
	// reads cached verdicts.
	var progs []string
	add := func(p problem, answer string) {
		if p.program != nil {
			if prog, ok := p.program(answer); ok {
				progs = append(progs, prog)
			}
		}
	}
	for _, p := range probs {
		if a, ok := answers[p.id]; ok {
			add(p, a)
		}
	}
	for _, a := range attempts {
		add(a.p, a.answer)
	}
	if err := ev.prefetchHidden(ctx, progs); err != nil {
		return fmt.Errorf("run hidden tests: %w", err)
	}

	var correct, falseAccepts, falseRejects atomic.Int64
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(8)
	for _, p := range probs {
		g.Go(func() error {
			if a, ok := answers[p.id]; ok && p.correct(a) {
				correct.Add(1)
			}
			return gctx.Err()
		})
	}
	for _, a := range attempts {
		if a.p.correct == nil {
			continue
		}
		g.Go(func() error {
			ok := a.p.correct(a.answer)
			switch {
			case a.verdict == verify.Pass && !ok:
				falseAccepts.Add(1)
			case a.verdict == verify.Fail && ok:
				falseRejects.Add(1)
			}
			return gctx.Err()
		})
	}
	if err := g.Wait(); err != nil {
		return err
	}
	sr.Correct = int(correct.Load())
	sr.Accuracy = float64(sr.Correct) / float64(max(len(probs), 1))
	sr.FalseAccepts, sr.FalseRejects = int(falseAccepts.Load()), int(falseRejects.Load())
	sr.CostUSD = sr.Cost.Dollars()
	return nil
}

// problemsByID indexes probs by id.
func problemsByID(probs []problem) map[string]problem {
	byID := make(map[string]problem, len(probs))
	for _, p := range probs {
		byID[p.id] = p
	}
	return byID
}

// passesHidden reports whether answer's code passes p's hidden tests,
// running them (in the sandbox) when no batch has yet.
func (ev *Evaluator) passesHidden(ctx context.Context, p *suite.CodeProblem, answer string) bool {
	prog, ok := hiddenProgram(p, answer)
	if !ok {
		return false
	}
	key := sha256.Sum256([]byte(prog))
	if v, ok := ev.hidden.Load(key); ok {
		return v.(bool)
	}
	if err := ev.runBatch(ctx, []hiddenJob{{key, prog}}); err != nil {
		ev.Log.Warn("hidden tests did not run", "problem", p.ID, "err", err)
		return false
	}
	v, _ := ev.hidden.Load(key)
	pass, _ := v.(bool)
	return pass
}

// setReference picks the strongest single model with a whole price (no
// unpriced or lower-bound usage) as the cost reference.
func (r *Report) setReference() {
	var ref *StrategyResult
	for i := range r.Strategies {
		s := &r.Strategies[i]
		if strings.HasPrefix(s.Name, "single:") && len(s.Unpriced) == 0 && len(s.LowerBound) == 0 && (ref == nil || s.Accuracy > ref.Accuracy) {
			ref = s
		}
	}
	if ref == nil {
		return
	}
	r.Reference = ref.Name
	for i := range r.Strategies {
		if ref.Cost > 0 && len(r.Strategies[i].Unpriced) == 0 {
			r.Strategies[i].CostRatio = float64(r.Strategies[i].Cost) / float64(ref.Cost)
		}
	}
}
