//go:build linux

package sandbox

import (
	"context"
	"log/slog"
	"os/exec"
	"testing"
	"time"

	"golang.org/x/sync/errgroup"
)

// The baseline: the same interpreter, started directly.
func BenchmarkPythonPlain(b *testing.B) {
	py, err := newSandbox(b).python()
	if err != nil {
		b.Fatal(err)
	}
	for b.Loop() {
		if out, err := exec.Command(py.Exe, "-E", "-s", "-c", "print(1)").Output(); err != nil || string(out) != "1\n" {
			b.Fatalf("%q %v", out, err)
		}
	}
}

func BenchmarkPythonSandboxed(b *testing.B) {
	sb := newSandbox(b)
	for b.Loop() {
		if res, err := sb.Run(context.Background(), Spec{Lang: Python, Source: "print(1)"}); err != nil || !res.OK() {
			b.Fatalf("%+v %v", res, err)
		}
	}
}

func BenchmarkShellPlain(b *testing.B) {
	for b.Loop() {
		if err := exec.Command("/bin/sh", "-c", "echo 1").Run(); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkShellSandboxed(b *testing.B) {
	sb := newSandbox(b)
	for b.Loop() {
		if res, err := sb.Run(context.Background(), Spec{Lang: Shell, Source: "echo 1"}); err != nil || !res.OK() {
			b.Fatalf("%+v %v", res, err)
		}
	}
}

func BenchmarkJavaScript(b *testing.B) {
	sb := newSandbox(b)
	for b.Loop() {
		if res, err := sb.Run(context.Background(), Spec{Lang: JavaScript, Source: "console.log(1)"}); err != nil || !res.OK() {
			b.Fatalf("%+v %v", res, err)
		}
	}
}

// BenchmarkStartJSvsPython starts a JavaScript console.log(1) and a
// Python print(1) in turn, in the same run, and reports each one's mean
// time and their ratio.
func BenchmarkStartJSvsPython(b *testing.B) {
	sb := newSandbox(b)
	var js, py time.Duration
	for b.Loop() {
		for _, l := range []Lang{JavaScript, Python} {
			src := "print(1)"
			if l == JavaScript {
				src = "console.log(1)"
			}
			start := time.Now()
			res, err := sb.Run(context.Background(), Spec{Lang: l, Source: src})
			if err != nil || !res.OK() {
				b.Fatalf("%s: %v %v", l, res, err)
			}
			if l == JavaScript {
				js += time.Since(start)
			} else {
				py += time.Since(start)
			}
		}
	}
	n := float64(b.N)
	b.ReportMetric(js.Seconds()*1000/n, "ms/js")
	b.ReportMetric(py.Seconds()*1000/n, "ms/python")
	b.ReportMetric(float64(js)/float64(py), "js/python")
}

// BenchmarkThroughputPlain is the baseline of BenchmarkThroughput: 100
// unsandboxed python3 -c 'print(1)', two at a time.
func BenchmarkThroughputPlain(b *testing.B) {
	py, err := newSandbox(b).python()
	if err != nil {
		b.Fatal(err)
	}
	for b.Loop() {
		var g errgroup.Group
		g.SetLimit(2)
		for range 100 {
			g.Go(func() error { return exec.Command(py.Exe, "-E", "-s", "-c", "print(1)").Run() })
		}
		if err := g.Wait(); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(100*float64(b.N)/b.Elapsed().Seconds(), "runs/s")
}

// BenchmarkThroughput runs 100 sandboxed print(1) two at a time, as on a
// two-core machine, and reports runs per second.
func BenchmarkThroughput(b *testing.B) {
	sb := newSandbox(b)
	for b.Loop() {
		g, ctx := errgroup.WithContext(context.Background())
		g.SetLimit(2)
		for range 100 {
			g.Go(func() error {
				res, err := sb.Run(ctx, Spec{Lang: Python, Source: "print(1)"})
				if err == nil && !res.OK() {
					b.Errorf("%+v", res)
				}
				return err
			})
		}
		if err := g.Wait(); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(100*float64(b.N)/b.Elapsed().Seconds(), "runs/s")
}

// BenchmarkPythonStart runs a Python print(1) three ways in turn, in the
// same run: plain python3, in a sandbox taken warm (the pool refilled,
// untimed, between runs, as between a swarm's bursts of checks), and in a
// sandbox started for the run (Warm < 0), which is what a run finding no
// warm sandbox waits for. It reports each one's mean and
// what the two sandboxes add to plain python3.
func BenchmarkPythonStart(b *testing.B) {
	warm := newSandbox(b)
	cold, err := New(context.Background(), Config{Warm: -1}, slog.New(slog.DiscardHandler))
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { cold.Close() })
	py, err := warm.python()
	if err != nil {
		b.Fatal(err)
	}
	ctx := context.Background()
	spec := Spec{Lang: Python, Source: "print(1)"}
	sandboxed := func(sb *Sandbox) time.Duration {
		start := time.Now()
		if res, err := sb.Run(ctx, spec); err != nil || !res.OK() {
			b.Fatalf("%+v %v", res, err)
		}
		return time.Since(start)
	}
	var tPlain, tWarm, tCold time.Duration
	for b.Loop() {
		b.StopTimer()
		warm.pool.wg.Wait() // the refill of the last run's sandbox
		b.StartTimer()
		start := time.Now()
		if out, err := exec.Command(py.Exe, "-s", "-c", "print(1)").Output(); err != nil || string(out) != "1\n" {
			b.Fatalf("%q %v", out, err)
		}
		tPlain += time.Since(start)
		tCold += sandboxed(cold)
		tWarm += sandboxed(warm) // last: its refill is not timed
	}
	ms := func(d time.Duration) float64 { return d.Seconds() * 1000 / float64(b.N) }
	b.ReportMetric(ms(tPlain), "ms/plain")
	b.ReportMetric(ms(tWarm), "ms/warm")
	b.ReportMetric(ms(tCold), "ms/cold")
	b.ReportMetric(ms(tWarm-tPlain), "ms-added/warm")
	b.ReportMetric(ms(tCold-tPlain), "ms-added/cold")
}
