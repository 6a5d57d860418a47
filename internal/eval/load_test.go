package eval

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"reflect"
	"runtime"
	"slices"
	"strings"
	"testing"

	"github.com/hive-swarm/hive/internal/llm/replay"
	"github.com/hive-swarm/hive/internal/provider"
	"github.com/hive-swarm/hive/internal/suite"
	"github.com/hive-swarm/hive/internal/verify"
)

// TestVerdictsIgnoreLoad runs the demo's cross-checked cascade on real
// recorded answers twice, the second time beside processes that keep every
// core busy, and expects the same verdicts, calls and costs: a verifier's
// judgement of an answer must not depend on how busy the machine is.
// CodeGen's samples are the test: some loop or crawl, and a confirmer's
// time is what a busy machine stretches.
func TestVerdictsIgnoreLoad(t *testing.T) {
	loc, err := suite.Locate("", os.Getenv)
	if err != nil || !loc.Exists {
		t.Skipf("benchmark data not found (set HIVE_DATA or provide ../shared/data next to the repository): %v", err)
	}
	c, err := suite.LoadCode(loc.Dir + "/humaneval")
	if err != nil {
		t.Fatal(err)
	}
	// One problem in sixteen, spread over the set, and those whose
	// verdicts a busy machine was seen to change: HumanEval/123's answers
	// run out of time on a probe (the driver's wall clock then cut some
	// off and not others); HumanEval/13's samples run out of time on one
	// probe and then ran a varying number of the next (what a timer left
	// over decided); and those with three samples that confirm differently
	// (their evidence came in the order the samples did).
	sub := *c
	sub.Problems = nil
	for i, p := range c.Problems {
		if i%16 == 0 || slices.Contains([]string{"HumanEval/13", "HumanEval/18", "HumanEval/24", "HumanEval/102", "HumanEval/123"}, p.ID) {
			sub.Problems = append(sub.Problems, p)
		}
	}
	// The scored cascade: agreement on a share of the probes is the most
	// sensitive to a probe that runs, or not.
	st := parseStrategies(t, "score:gpt-3.5-turbo-0613>gpt-4-1106-preview+codegen-16b*3")
	run := func() (string, *StrategyResult) {
		ev := newEvaluator(t, true, func(reg *provider.Registry) error { return RegisterCode(reg, &sub, replay.Options{Seed: 1}) })
		var runID string
		ev.Started = func(_ Strategy, id string) { runID = id }
		rep, err := ev.EvalCode(context.Background(), &sub, st)
		if err != nil {
			t.Fatal(err)
		}
		nodes, err := ev.Engine.Nodes(context.Background(), runID)
		if err != nil {
			t.Fatal(err)
		}
		var lines []string
		verdicts, unsure := 0, 0
		for _, n := range nodes {
			if n.Verdict != nil {
				verdicts++
				if n.Verdict.Outcome == verify.Unsure {
					unsure++
				}
			}
			v := ""
			if n.Verdict != nil {
				v = n.Verdict.Outcome + " " + strings.ReplaceAll(n.Verdict.Evidence, "\n", "|")
			}
			lines = append(lines, fmt.Sprintf("%s %s %s %s calls=%d cost=%d", n.ID, n.Name, n.Model, v, n.Calls, n.Cost))
		}
		slices.Sort(lines)
		if verdicts < len(sub.Problems) || unsure > 0 {
			t.Errorf("%d verdicts on %d problems, %d unsure: the comparison would say little", verdicts, len(sub.Problems), unsure)
		}
		return strings.Join(lines, "\n"), &rep.Strategies[0]
	}
	quiet, qr := run()

	ctx, stop := context.WithCancel(context.Background())
	defer stop()
	// As many busy processes as cores: every core shared, on top of the
	// eval's own sandboxes (and whatever other tests run beside this one).
	for range runtime.NumCPU() {
		hog := exec.CommandContext(ctx, "python3", "-c", "while True: pass")
		if err := hog.Start(); err != nil {
			t.Fatal(err)
		}
		defer hog.Wait()
	}
	busy, br := run()
	stop()

	if qr.Cost != br.Cost || qr.Correct != br.Correct || qr.FalseAccepts != br.FalseAccepts || qr.FalseRejects != br.FalseRejects {
		t.Errorf("quiet: %d correct, cost %s, %d/%d false accepts/rejects, calls %v\nbusy:  %d correct, cost %s, %d/%d, calls %v",
			qr.Correct, qr.Cost, qr.FalseAccepts, qr.FalseRejects, qr.Calls, br.Correct, br.Cost, br.FalseAccepts, br.FalseRejects, br.Calls)
	}
	// Everything the calibration chose and measured, but how long it took.
	if qr.Calibration == nil || br.Calibration == nil {
		t.Fatalf("no calibration: quiet %v, busy %v", qr.Calibration, br.Calibration)
	}
	qc, bc := *qr.Calibration, *br.Calibration
	qc.Wall, bc.Wall = 0, 0
	if !reflect.DeepEqual(qc, bc) {
		t.Errorf("calibration quiet %+v, busy %+v", qc, bc)
	}
	if quiet != busy {
		q, b := strings.Split(quiet, "\n"), strings.Split(busy, "\n")
		if len(q) != len(b) {
			t.Errorf("%d nodes quiet, %d busy", len(q), len(b))
		}
		for i := range min(len(q), len(b)) {
			if q[i] != b[i] {
				t.Errorf("difference among %d and %d nodes:\nquiet: %s\nbusy:  %s", len(q), len(b), q[i], b[i])
			}
		}
	}
	t.Logf("%d problems: %.1f%% at $%.4f, %d nodes; quiet %s, busy %s", len(sub.Problems), 100*qr.Accuracy, qr.CostUSD, len(strings.Split(quiet, "\n")), qr.Wall, br.Wall)
}
