package main

import (
	"context"
	"fmt"
	"math"
	"sync"

	"github.com/hive-swarm/hive/internal/eval"
	"github.com/hive-swarm/hive/internal/treeview"
)

// The demo's strategies: the scored cascade first, shown live, then the
// plain and the cross-checked cascades and each single system they are
// compared with.
var demoStrategies = []string{
	"score:gpt-3.5-turbo-0613>gpt-4-1106-preview+codegen-16b*3",
	"cascade:gpt-3.5-turbo-0613>gpt-4-1106-preview",
	"cross:gpt-3.5-turbo-0613>gpt-4-1106-preview+codegen-16b*3",
	"single:starcoder", "single:codellama", "single:gpt-3.5-turbo-0613", "single:gpt-4-1106-preview",
}

func runDemo(ctx context.Context, env *Env, args []string) error {
	fs := newFlags(env, "demo", "[flags]")
	data := fs.String("data", "", "the data directory (default: $HIVE_DATA, ../shared/data, then the cache filled by hive data fetch)")
	verbose := fs.Bool("v", false, "log debug details to stderr")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	fmt.Fprintln(env.Stderr, `Hive demo: HumanEval (164 problems) answered by real recorded model outputs.
gpt-3.5 answers first. Its code must pass the visible tests in the sandbox, keep
the functions the prompt gives, and not be outvoted, on inputs derived from the
tests, by three cheap CodeGen samples that pass them too; the vote's thresholds
are chosen by cross-validation on the other problems. What fails moves up to
gpt-4. The plain cascade (visible tests only), the strict cross-check (a sample
must agree on every input) and each single model run for comparison; hidden
tests, which no strategy sees, score them all.`)
	var strategies []eval.Strategy
	for _, s := range demoStrategies {
		st, err := eval.ParseStrategy(s)
		if err != nil {
			return err
		}
		strategies = append(strategies, st)
	}
	log := newLogger(env.Stderr, *verbose)
	h, err := openEval(ctx, env, log, 16)
	if err != nil {
		return err
	}
	defer h.close()

	// Follow the first (cascade) run live on a terminal.
	var wg sync.WaitGroup
	defer wg.Wait()
	_, _, tty := treeview.Terminal(env.Stderr)
	h.ev.Calibrating = func(st eval.Strategy, runID string) {
		fmt.Fprintf(env.Stderr, "▷ %s: calibration (run %s), the tests alone, to choose the vote's thresholds by cross-validation\n", st.Name, runID)
	}
	h.ev.Started = func(st eval.Strategy, runID string) {
		fmt.Fprintf(env.Stderr, "▶ %s (run %s)\n", st.Name, runID)
		if !tty || st.Name != demoStrategies[0] {
			return
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			l := treeview.NewLive(env.Stderr, treeview.New(runID))
			l.Follow(ctx, h.engine.Watch(ctx, runID, 0), nil)
		}()
	}
	rep, err := h.evaluate(ctx, env, "humaneval", *data, strategies, 0)
	if err != nil {
		return err
	}
	wg.Wait()
	fmt.Fprintln(env.Stdout)
	if err := writeReport(env, rep, "", ""); err != nil {
		return err
	}
	if best := rep.Best(0.4); best != nil {
		fmt.Fprintf(env.Stdout, "\nWithin 40%% of %s's cost, the most accurate strategy is %s: %.1f%% at %s the cost.\n",
			rep.Reference, best.Name, 100*best.Accuracy, demoRatio(best))
	}
	if top := rep.Best(math.Inf(1)); top != nil {
		fmt.Fprintf(env.Stdout, "The most accurate strategy is %s: %.1f%% at %s the cost.\n", top.Name, 100*top.Accuracy, demoRatio(top))
	}
	return nil
}

// demoRatio is a strategy's cost relative to the reference, marked when
// it is a lower bound.
func demoRatio(s *eval.StrategyResult) string {
	if len(s.LowerBound) > 0 {
		return fmt.Sprintf("≥%.2f×", s.CostRatio)
	}
	return fmt.Sprintf("%.2f×", s.CostRatio)
}
