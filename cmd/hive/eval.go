package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/hive-swarm/hive/internal/config"
	"github.com/hive-swarm/hive/internal/eval"
	"github.com/hive-swarm/hive/internal/journal"
	"github.com/hive-swarm/hive/internal/llm/replay"
	"github.com/hive-swarm/hive/internal/provider"
	"github.com/hive-swarm/hive/internal/sandbox"
	"github.com/hive-swarm/hive/internal/suite"
	"github.com/hive-swarm/hive/internal/swarm"
	"github.com/hive-swarm/hive/internal/verify"
)

// Default strategies per suite: each single model, and the ladders over
// them, so that the report's frontier holds every point worth comparing
// (Reflexion's cost is only a lower bound: its ladders are shown apart).
var defaultStrategies = map[string][]string{
	"humaneval": {
		"single:starcoder", "single:codellama", "single:gpt-3.5-turbo-0613", "single:gpt-4-1106-preview", "single:reflexion",
		"cascade:gpt-3.5-turbo-0613>gpt-4-1106-preview",
		"score:gpt-3.5-turbo-0613>gpt-4-1106-preview+codegen-16b*3",
		"score:gpt-3.5-turbo-0613>gpt-4-1106-preview+codegen-16b*10",
		"cross:gpt-3.5-turbo-0613>gpt-4-1106-preview+codegen-16b*3",
		"cascade:gpt-4-1106-preview>reflexion",
		"cascade:gpt-3.5-turbo-0613>gpt-4-1106-preview>reflexion",
		"cross:gpt-3.5-turbo-0613>gpt-4-1106-preview>reflexion+codegen-16b*3",
		"cross:gpt-3.5-turbo-0613>gpt-4-1106-preview>reflexion",
	},
	"gsm8k": {
		"single:gpt3-6b", "single:gpt3-175b-verifier", "single:mixtral-8x7b-instruct", "single:gpt-4-1106-preview",
		"cascade:mixtral-8x7b-instruct>gpt-4-1106-preview",
		"cascade:mixtral-8x7b-instruct>gpt3-6b>gpt-4-1106-preview",
		"cascade:mixtral-8x7b-instruct>gpt3-175b-verifier>gpt-4-1106-preview",
		"vote:gpt3-6b,mixtral-8x7b-instruct,gpt-4-1106-preview",
	},
}

type strategyFlags []string

func (s *strategyFlags) String() string     { return strings.Join(*s, " ") }
func (s *strategyFlags) Set(v string) error { *s = append(*s, v); return nil }

func runEval(ctx context.Context, env *Env, args []string) error {
	fs := newFlags(env, "eval", "--suite humaneval|gsm8k|code [--strategy S]… [flags]")
	suiteName := fs.String("suite", "humaneval", "humaneval, gsm8k, or code (any directory laid out like humaneval/, given with --data)")
	data := fs.String("data", "", "the data directory (default: $HIVE_DATA, ../shared/data, then the cache filled by hive data fetch)")
	var strategies strategyFlags
	fs.Var(&strategies, "strategy", "a strategy, repeatable: single:M, cascade:A>B, cross:A>B>C, score:A>B+P*N, vote:A,B,C, best-of-n:M,N (default: a set per suite)")
	jsonOut := fs.String("json", "", "also write the report as JSON to this file")
	plotOut := fs.String("plot", "", "also draw accuracy against cost, with the Pareto frontier, as SVG to this file")
	workers := fs.Int("workers", 16, "tasks in flight per run")
	limitN := fs.Int("limit", 0, "evaluate only the first N problems (0: all)")
	targetFA := fs.Float64("target-fa", eval.DefaultTargetFA, "the false-accept rate a score strategy's thresholds are chosen for, by cross-validation over problems (0.05: one wrong answer in 20 accepted)")
	verbose := fs.Bool("v", false, "log debug details to stderr")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if fs.NArg() != 0 {
		return usageErrorf("eval takes no arguments; name strategies with --strategy")
	}
	if !(*targetFA > 0 && *targetFA < 1) {
		return usageErrorf("--target-fa %g: want a rate between 0 and 1, e.g. 0.05", *targetFA)
	}
	if len(strategies) == 0 {
		strategies = defaultStrategies[*suiteName]
		if len(strategies) == 0 {
			return usageErrorf("--suite %s needs --strategy (no default set for it)", *suiteName)
		}
	}
	var parsed []eval.Strategy
	for _, s := range strategies {
		st, err := eval.ParseStrategy(s)
		if err != nil {
			return usageErrorf("%v", err)
		}
		parsed = append(parsed, st)
	}
	log := newLogger(env.Stderr, *verbose)
	h, err := openEval(ctx, env, log, *workers)
	if err != nil {
		return err
	}
	defer h.close()
	h.ev.TargetFA = *targetFA
	rep, err := h.evaluate(ctx, env, *suiteName, *data, parsed, *limitN)
	if err != nil {
		return err
	}
	return writeReport(env, rep, *jsonOut, *plotOut)
}

// evalHarness is an engine on a temporary journal with replayed models.
type evalHarness struct {
	dir    string
	store  *journal.Store
	engine *swarm.Engine
	ev     *eval.Evaluator
	reg    *provider.Registry
	sb     *sandbox.Sandbox
}

func openEval(ctx context.Context, env *Env, log *slog.Logger, workers int) (*evalHarness, error) {
	sb, err := sandbox.New(ctx, sandbox.Config{}, log)
	if err != nil {
		return nil, fmt.Errorf("%s (evaluation runs the models' code; see hive sandbox check)", oneLine(err.Error()))
	}
	dir, err := os.MkdirTemp("", "hive-eval-")
	if err != nil {
		return nil, err
	}
	h := &evalHarness{dir: dir, sb: sb}
	if h.store, err = journal.Open(ctx, filepath.Join(dir, "eval.db"), log); err != nil {
		h.close()
		return nil, err
	}
	h.reg = provider.NewRegistry(config.Default(), env.Getenv, log)
	quiet := slog.New(slog.DiscardHandler)
	// CPU time bounds each answer's run: 5 s, where no right answer's
	// visible tests need a tenth of that, so that an endless loop costs
	// little. The wall clock only has to catch answers that sleep, so it
	// is generous: a machine busy with many runs at once must not fail a
	// right but slow answer.
	vf := verify.New(sb, quiet)
	vf.Limits = sandbox.Limits{Wall: 2 * time.Minute, CPU: 5 * time.Second}
	if h.engine, err = swarm.New(ctx, h.store, h.reg, quiet, swarm.Options{Verifier: vf, CodeRunner: swarm.SandboxRunner{Sandbox: sb}}); err != nil {
		h.close()
		return nil, err
	}
	h.ev = &eval.Evaluator{Engine: h.engine, Registry: h.reg, Sandbox: sb, Log: log, Workers: workers}
	return h, nil
}

func (h *evalHarness) close() {
	if h.engine != nil {
		h.engine.Close(context.Background())
	}
	if h.store != nil {
		h.store.Close()
	}
	h.sb.Close()
	os.RemoveAll(h.dir)
}

// evaluate loads the suite and runs the strategies on it.
func (h *evalHarness) evaluate(ctx context.Context, env *Env, suiteName, data string, strategies []eval.Strategy, limitN int) (*eval.Report, error) {
	root, err := suite.FindData(data)
	if err != nil && suiteName != "code" {
		return nil, err
	}
	start := time.Now()
	var rep *eval.Report
	switch suiteName {
	case "humaneval", "code":
		dir := filepath.Join(root, "humaneval")
		if suiteName == "code" {
			if data == "" {
				return nil, usageErrorf("--suite code needs --data DIR: a directory laid out like humaneval/ (a seeds/ folder of per-model JSON-lines files)")
			}
			dir = data
		}
		c, err := suite.LoadCode(dir)
		if err != nil {
			return nil, fmt.Errorf("load %s: %w", dir, err)
		}
		if limitN > 0 && limitN < len(c.Problems) {
			c.Problems = c.Problems[:limitN]
		}
		if err := eval.RegisterCode(h.reg, c, replay.Options{}); err != nil {
			return nil, err
		}
		fmt.Fprintf(env.Stderr, "evaluating %d strategies on %s (%d problems)…\n", len(strategies), c.Name, len(c.Problems))
		rep, err = h.ev.EvalCode(ctx, c, strategies)
		if err != nil {
			return nil, err
		}
	case "gsm8k":
		m, err := suite.LoadGSM8K(filepath.Join(root, "gsm8k"))
		if err != nil {
			return nil, err
		}
		if limitN > 0 && limitN < len(m.Problems) {
			m.Problems = m.Problems[:limitN]
		}
		if err := eval.RegisterMath(h.reg, m, replay.Options{}); err != nil {
			return nil, err
		}
		fmt.Fprintf(env.Stderr, "evaluating %d strategies on %s (%d problems)…\n", len(strategies), m.Name, len(m.Problems))
		rep, err = h.ev.EvalMath(ctx, m, strategies)
		if err != nil {
			return nil, err
		}
	default:
		return nil, usageErrorf("unknown suite %q: humaneval, gsm8k, or code with --data DIR", suiteName)
	}
	fmt.Fprintf(env.Stderr, "done in %s\n", time.Since(start).Round(100*time.Millisecond))
	return rep, nil
}

func writeReport(env *Env, rep *eval.Report, jsonOut, plotOut string) error {
	if err := rep.WriteTable(env.Stdout); err != nil {
		return err
	}
	write := func(path string, f func(io.Writer) error) error {
		if path == "" {
			return nil
		}
		out, err := os.Create(path)
		if err != nil {
			return err
		}
		if err := f(out); err != nil {
			out.Close()
			return err
		}
		return out.Close()
	}
	if err := write(jsonOut, rep.WriteJSON); err != nil {
		return fmt.Errorf("write %s: %w", jsonOut, err)
	}
	if err := write(plotOut, rep.WriteSVG); err != nil {
		return fmt.Errorf("write %s: %w", plotOut, err)
	}
	return nil
}

var _ = flag.ErrHelp
