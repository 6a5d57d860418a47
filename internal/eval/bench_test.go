package eval

import (
	"context"
	"crypto/sha256"
	"log/slog"
	"os"
	"testing"

	"github.com/hive-swarm/hive/internal/sandbox"
	"github.com/hive-swarm/hive/internal/suite"
	"golang.org/x/sync/errgroup"
)

// BenchmarkHiddenScoring judges the hidden tests of gpt-4's 164 HumanEval
// answers from scratch each time, with the sandbox's warm pool and
// without it (every run starts its sandbox then): programs judged a
// second, as the evaluator does it (batches of 64 programs a sandbox) and
// one sandbox a program, two at once.
func BenchmarkHiddenScoring(b *testing.B) {
	loc, err := suite.Locate("", os.Getenv)
	if err != nil || loc.Source == suite.SourceCache {
		b.Skipf("benchmark data not found (set HIVE_DATA or provide ../shared/data next to the repository): %v", err)
	}
	code, err := suite.LoadCode(loc.Dir + "/humaneval")
	if err != nil {
		b.Fatal(err)
	}
	answers := code.Answers("gpt-4-1106-preview")
	var progs []string
	for _, p := range code.Problems {
		if a := answers[p.ID]; len(a) > 0 {
			if prog, ok := hiddenProgram(p, a[0]); ok {
				progs = append(progs, prog)
			}
		}
	}
	for _, c := range []struct {
		name string
		warm int
	}{{"warm", sandbox.DefaultWarm}, {"cold", -1}} {
		b.Run(c.name, func(b *testing.B) {
			log := slog.New(slog.DiscardHandler)
			sb, err := sandbox.New(context.Background(), sandbox.Config{Warm: c.warm}, log)
			if err != nil {
				b.Fatal(err)
			}
			defer sb.Close()
			for _, alone := range []bool{false, true} {
				name := "batched"
				if alone {
					name = "alone"
				}
				b.Run(name, func(b *testing.B) {
					for b.Loop() {
						ev := &Evaluator{Sandbox: sb, Log: log}
						if alone {
							judgeAlone(b, ev, progs)
						} else if err := ev.prefetchHidden(context.Background(), progs); err != nil {
							b.Fatal(err)
						}
					}
					b.ReportMetric(float64(len(progs)*b.N)/b.Elapsed().Seconds(), "programs/s")
				})
			}
		})
	}
}

// judgeAlone judges each program in a sandbox of its own, two at once.
func judgeAlone(b *testing.B, ev *Evaluator, progs []string) {
	var g errgroup.Group
	g.SetLimit(2)
	for _, p := range progs {
		g.Go(func() error { return ev.runBatch(context.Background(), []hiddenJob{{sha256.Sum256([]byte(p)), p}}) })
	}
	if err := g.Wait(); err != nil {
		b.Fatal(err)
	}
}
