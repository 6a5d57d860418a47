package main

import (
	"fmt"
	"io"
	"slices"
	"time"
)

// A row is the medians of one implementation's samples on one cell.
type row struct {
	Impl       string
	Cell       cell
	Runs       int
	Wall       time.Duration
	CPUPerCall float64 // µs of the job's CPU per model call
	PeakRSS    float64 // MiB
	PerWorker  float64 // KiB per worker in flight
}

func median(xs []float64) float64 {
	if len(xs) == 0 {
		return 0
	}
	s := slices.Clone(xs)
	slices.Sort(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

// rows sums samples up by cell and implementation, in the order of o.
func rows(o options, samples []sample) []row {
	var out []row
	for _, lat := range o.Latencies {
		for _, n := range o.Ns {
			for _, impl := range o.Impls {
				var wall, cpu, rss, per []float64
				for _, s := range samples {
					if s.Impl != impl || s.N != n || s.Latency != lat {
						continue
					}
					wall = append(wall, float64(s.Wall))
					cpu = append(cpu, float64(s.JobCPU.Microseconds())/float64(s.calls()))
					rss = append(rss, float64(s.PeakRSSKB)/1024)
					per = append(per, s.perWorkerKB(o.Cap))
				}
				if len(wall) == 0 {
					continue
				}
				out = append(out, row{Impl: impl, Cell: cell{n, lat}, Runs: len(wall), Wall: time.Duration(median(wall)),
					CPUPerCall: median(cpu), PeakRSS: median(rss), PerWorker: median(per)})
			}
		}
	}
	return out
}

// writeTable writes the rows as a markdown table, the ratios to the bare
// loop's row of the same cell.
func writeTable(w io.Writer, o options, rs []row) {
	fmt.Fprintln(w, "| n | latency | ideal | impl | wall | wall/bare | CPU µs/call | CPU/bare | peak RSS MiB | KB per in-flight worker |")
	fmt.Fprintln(w, "|---:|---:|---:|---|---:|---:|---:|---:|---:|---:|")
	for _, r := range rs {
		var base *row
		for i := range rs {
			if rs[i].Impl == "bare" && rs[i].Cell == r.Cell {
				base = &rs[i]
			}
		}
		wallRatio, cpuRatio := "", ""
		if base != nil {
			wallRatio = fmt.Sprintf("%.3f×", r.Wall.Seconds()/base.Wall.Seconds())
			cpuRatio = fmt.Sprintf("%.1f×", r.CPUPerCall/base.CPUPerCall)
		}
		fmt.Fprintf(w, "| %d | %s | %s | %s | %s | %s | %.0f | %s | %.1f | %.1f |\n",
			r.Cell.N, r.Cell.Latency, fmtDur(r.Cell.ideal(o.Cap)), r.Impl, fmtDur(r.Wall), wallRatio, r.CPUPerCall, cpuRatio, r.PeakRSS, r.PerWorker)
	}
}

// fmtDur writes d in seconds, to the millisecond.
func fmtDur(d time.Duration) string { return fmt.Sprintf("%.3f s", d.Seconds()) }
