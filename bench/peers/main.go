// Command peers runs one job with Hive and with its peers, side by side,
// against one local model server, and prints a markdown table of wall
// time, CPU per model call and memory.
//
// The job is a lead call that fans out n tasks, a two-turn tool loop for
// each task (the model calls read_file, the worker reads a small file,
// the model answers with what it holds), and a last lead call that gets
// the n reports: 2n+2 model calls, each answered after the same latency
// by an OpenAI-compatible server built on Hive's llmtest, in a process of
// its own. The implementations:
//
//   - bare: an errgroup loop with SetLimit posting raw JSON with net/http,
//     the baseline the ratios are to;
//   - hive: Hive's engine, journaling to a fresh SQLite file, the workers
//     reading with its workspace's read_file and answering with submit;
//   - eino: CloudWeGo Eino's OpenAI chat model, a ReAct agent a worker;
//   - langchaingo: LangChainGo's OpenAI LLM, a tool loop a worker;
//   - langgraph: LangGraph.js run by node, the lead node fanning out with
//     Send, maxConcurrency the cap.
//
// Each runs in a process of its own, at most cap workers in flight, each
// setting several times, interleaved. See README.md.
//
//	go run . -n 100,1000 -latency 50ms,1s -reps 5
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"
)

func main() {
	if raw := os.Getenv(childEnv); raw != "" {
		os.Exit(childMain(raw))
	}
	var (
		impls     = flag.String("impls", strings.Join(allImpls, ","), "implementations to run, comma-separated")
		ns        = flag.String("n", "100,1000", "worker counts, comma-separated")
		latencies = flag.String("latency", "50ms,1s", "model latencies, comma-separated")
		reps      = flag.Int("reps", 5, "runs of each implementation on each setting")
		cap       = flag.Int("cap", 100, "workers in flight at most, for every implementation")
		modDir    = flag.String("module", ".", "directory of this module, where the Go implementations are built")
		lgDir     = flag.String("langgraph", "langgraph", "directory of the LangGraph.js implementation")
		profiles  = flag.String("profiles", "", "directory to write each Go child's CPU profile of its job, and heap profile after it, to")
		rawOut    = flag.String("raw", "", "file to write every sample to, as JSON")
	)
	flag.Parse()
	o := options{Impls: split(*impls), Reps: *reps, Cap: *cap, ModuleDir: *modDir, LangGraphDir: *lgDir, Profiles: *profiles, Log: os.Stderr}
	for _, s := range split(*ns) {
		n, err := strconv.Atoi(s)
		if err != nil || n <= 0 {
			fatalf("-n %q: want positive integers", *ns)
		}
		o.Ns = append(o.Ns, n)
	}
	for _, s := range split(*latencies) {
		d, err := time.ParseDuration(s)
		if err != nil {
			fatalf("-latency: %v", err)
		}
		o.Latencies = append(o.Latencies, d)
	}
	if o.Reps < 1 || o.Cap < 1 || len(o.Impls) == 0 || len(o.Ns) == 0 || len(o.Latencies) == 0 {
		fatalf("nothing to run")
	}
	if o.Profiles != "" {
		if err := os.MkdirAll(o.Profiles, 0o755); err != nil {
			fatalf("%v", err)
		}
	}
	samples, err := bench(context.Background(), o)
	if *rawOut != "" {
		b, _ := json.MarshalIndent(samples, "", "  ")
		if werr := os.WriteFile(*rawOut, b, 0o644); werr != nil {
			fmt.Fprintln(os.Stderr, werr)
		}
	}
	if err != nil {
		fatalf("%v", err)
	}
	fmt.Printf("%d workers in flight at most; every call, the lead's too, answered after the latency; median of %d runs each.\n\n", o.Cap, o.Reps)
	rs := rows(o, samples)
	writeTable(os.Stdout, o, rs)
	fmt.Println("\nWhere the wall time goes between model calls (medians):")
	fmt.Println()
	writeGaps(os.Stdout, rs)
}

func split(s string) []string {
	var out []string
	for _, f := range strings.Split(s, ",") {
		if f = strings.TrimSpace(f); f != "" {
			out = append(out, f)
		}
	}
	return out
}

func fatalf(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "peers: "+format+"\n", args...)
	os.Exit(1)
}
