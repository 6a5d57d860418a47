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
	// LivePerWorker is the live Go heap per worker in flight, KiB; -1
	// when the implementation is not Go.
	LivePerWorker float64
	// The medians of the gaps between model calls (serverStats) and of
	// the calls the server saw streamed.
	Before, Dispatch, TurnGapMax, Collect, After time.Duration
	Streamed                                     int64
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
				var wall, cpu, rss, per, live, before, dispatch, turn, collect, after, streamed []float64
				for _, s := range samples {
					if s.Impl != impl || s.N != n || s.Latency != lat {
						continue
					}
					wall = append(wall, float64(s.Wall))
					cpu = append(cpu, float64(s.JobCPU.Microseconds())/float64(s.calls()))
					rss = append(rss, float64(s.PeakRSSKB)/1024)
					per = append(per, s.perWorkerKB(o.Cap))
					live = append(live, s.liveWorkerKB(o.Cap))
					before = append(before, float64(s.Before))
					dispatch = append(dispatch, float64(s.Server.Dispatch))
					turn = append(turn, float64(s.Server.TurnGapMax))
					collect = append(collect, float64(s.Server.Collect))
					after = append(after, float64(s.After))
					streamed = append(streamed, float64(s.Server.Streamed))
				}
				if len(wall) == 0 {
					continue
				}
				out = append(out, row{Impl: impl, Cell: cell{n, lat}, Runs: len(wall), Wall: time.Duration(median(wall)),
					CPUPerCall: median(cpu), PeakRSS: median(rss), PerWorker: median(per), LivePerWorker: median(live),
					Before: time.Duration(median(before)), Dispatch: time.Duration(median(dispatch)), TurnGapMax: time.Duration(median(turn)),
					Collect: time.Duration(median(collect)), After: time.Duration(median(after)), Streamed: int64(median(streamed))})
			}
		}
	}
	return out
}

// writeTable writes the rows as a markdown table, the ratios to the bare
// loop's row of the same cell.
func writeTable(w io.Writer, o options, rs []row) {
	fmt.Fprintln(w, "| n | latency | ideal | impl | wall | wall/bare | CPU µs/call | CPU/bare | peak RSS MiB | RSS KB per in-flight worker | live heap KB per in-flight worker |")
	fmt.Fprintln(w, "|---:|---:|---:|---|---:|---:|---:|---:|---:|---:|---:|")
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
		live := "n/a"
		if r.LivePerWorker >= 0 {
			live = fmt.Sprintf("%.1f", r.LivePerWorker)
		}
		fmt.Fprintf(w, "| %d | %s | %s | %s | %s | %s | %.0f | %s | %.1f | %.1f | %s |\n",
			r.Cell.N, r.Cell.Latency, fmtDur(r.Cell.ideal(o.Cap)), r.Impl, fmtDur(r.Wall), wallRatio, r.CPUPerCall, cpuRatio, r.PeakRSS, r.PerWorker, live)
	}
}

// fmtDur writes d in seconds, to the millisecond.
func fmtDur(d time.Duration) string { return fmt.Sprintf("%.3f s", d.Seconds()) }

// writeGaps writes where each implementation spends wall time between
// model calls, as medians in milliseconds: from the job's start to the
// lead's first call, from the lead's fan-out to the first worker call,
// the longest wait of a worker between its two calls, from the last
// worker answer to the lead's last call, and from the lead's answer to
// the job's end.
func writeGaps(w io.Writer, rs []row) {
	fmt.Fprintln(w, "| n | latency | impl | before | dispatch | worker turn gap (max) | collect | after | calls streamed |")
	fmt.Fprintln(w, "|---:|---:|---|---:|---:|---:|---:|---:|---:|")
	for _, r := range rs {
		fmt.Fprintf(w, "| %d | %s | %s | %s | %s | %s | %s | %s | %d |\n", r.Cell.N, r.Cell.Latency, r.Impl,
			msCell(r.Before), msCell(r.Dispatch), msCell(r.TurnGapMax), msCell(r.Collect), msCell(r.After), r.Streamed)
	}
}

func msCell(d time.Duration) string { return fmt.Sprintf("%.0f ms", float64(d.Microseconds())/1000) }
