package swarm

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"golang.org/x/sync/errgroup"

	"github.com/hive-swarm/hive/internal/config"
	"github.com/hive-swarm/hive/internal/journal"
	"github.com/hive-swarm/hive/internal/llm/llmtest"
	"github.com/hive-swarm/hive/internal/provider"
	"github.com/hive-swarm/hive/internal/secret"
	"github.com/hive-swarm/hive/internal/telemetry"
)

// The overhead benchmark: 2,000 workers, each one call to a local
// OpenAI-compatible server that answers in 50 ms, 500 in flight; and the
// same 2,000 calls as a bare errgroup loop of raw HTTP posts. The ideal is
// 2,000 × 50 ms / 500 = 200 ms.
const (
	benchWorkers  = 2000
	benchInFlight = 500
	benchLatency  = 50 * time.Millisecond
)

func benchServer() *llmtest.Server {
	return llmtest.NewOpenAI(func(c *llmtest.Call) llmtest.Reply {
		if !isLead(c) {
			return llmtest.Reply{Latency: benchLatency, ToolCalls: []llmtest.ToolCall{toolCall("submit", submitArgs{Report: "ok"})}}
		}
		if turns(c) == 0 {
			return llmtest.Reply{ToolCalls: []llmtest.ToolCall{toolCall("delegate", delegateArgs{Tasks: tasks(benchWorkers, "b")})}}
		}
		return finish(fmt.Sprintf("%d reports", len(reports(c))))
	})
}

func cpuTime() time.Duration {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// benchServerEnv makes the test binary the benchmark's model server, in a
// process of its own, so that the benchmark's CPU figures are Hive's alone.
const benchServerEnv = "HIVE_SWARM_BENCH_SERVER"

func benchServerChild() int {
	srv := benchServer()
	defer srv.Close()
	fmt.Println(srv.URL)
	io.Copy(io.Discard, os.Stdin) // until the parent closes stdin
	return 0
}

// startBenchServer runs the model server in a child process and returns
// its URL.
func startBenchServer(b *testing.B) string {
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), benchServerEnv+"=1")
	stdin, err := cmd.StdinPipe()
	if err != nil {
		b.Fatal(err)
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		b.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { stdin.Close(); cmd.Wait() })
	url, err := bufio.NewReader(out).ReadString('\n')
	if err != nil {
		b.Fatal(err)
	}
	return strings.TrimSpace(url)
}

func BenchmarkFanout(b *testing.B) {
	url := startBenchServer(b)

	// As hive run and hive serve set it up: three keys in the
	// environment, kept out of every request and journal row.
	red := secret.New(map[string]string{
		"ANTHROPIC_API_KEY": "sk-ant-api03-" + strings.Repeat("k", 95),
		"OPENAI_API_KEY":    "sk-proj-" + strings.Repeat("o", 156),
		"HIVE_TOKEN":        strings.Repeat("0f", 32),
	})
	for _, c := range []struct {
		name string
		opts func(b *testing.B) Options
	}{
		{"hive", func(*testing.B) Options { return Options{} }},
		{"hive-redacting", func(*testing.B) Options { return Options{Redact: red} }},
		// As hive serve sets it up without OTEL_ variables: metrics only.
		{"hive-metrics", func(*testing.B) Options {
			return Options{Telemetry: telemetry.New(nil, telemetry.Options{Metrics: telemetry.NewMetrics()})}
		}},
		// Every span exported over OTLP/HTTP to a collector that reads
		// and drops them, in this process.
		{"hive-traced", func(b *testing.B) Options {
			col := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.Copy(io.Discard, r.Body) }))
			b.Cleanup(col.Close)
			exp, err := otlptracehttp.New(context.Background(), otlptracehttp.WithEndpointURL(col.URL+"/v1/traces"))
			if err != nil {
				b.Fatal(err)
			}
			tp := sdktrace.NewTracerProvider(sdktrace.WithBatcher(exp))
			b.Cleanup(func() { tp.Shutdown(context.Background()) })
			return Options{Telemetry: telemetry.New(tp, telemetry.Options{})}
		}},
	} {
		b.Run(c.name, func(b *testing.B) { benchHive(b, url, c.opts(b)) })
	}

	b.Run("bare", func(b *testing.B) {
		client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: benchInFlight}}
		body := workerRequest(b)
		cpu0 := cpuTime()
		for b.Loop() {
			var g errgroup.Group
			g.SetLimit(benchInFlight)
			for range benchWorkers {
				g.Go(func() error {
					resp, err := client.Post(url+"/v1/chat/completions", "application/json", bytes.NewReader(body))
					if err != nil {
						return err
					}
					defer resp.Body.Close()
					_, err = io.Copy(io.Discard, resp.Body)
					return err
				})
			}
			if err := g.Wait(); err != nil {
				b.Fatal(err)
			}
		}
		cpu := cpuTime() - cpu0
		b.ReportMetric(float64(cpu.Microseconds())/float64(b.N*benchWorkers), "cpu-µs/call")
	})
}

// benchHive runs the fan-out through Hive's engine with opts.
func benchHive(b *testing.B, url string, opts Options) {
	ctx := context.Background()
	e := benchEngine(b, url, opts)
	var ms runtime.MemStats
	runtime.GC()
	cpu0 := cpuTime()
	b.ResetTimer()
	for b.Loop() {
		id, err := e.Start(ctx, Spec{Task: "bench", Lead: "lead", Tiers: []string{"cheap"}, BudgetUSD: 1e12, MaxWorkers: benchInFlight})
		if err != nil {
			b.Fatal(err)
		}
		res, err := e.Wait(ctx, id)
		if err != nil || res.Answer != fmt.Sprintf("%d reports", benchWorkers) {
			b.Fatalf("run: %v %+v", err, res)
		}
	}
	b.StopTimer()
	cpu := cpuTime() - cpu0
	runtime.ReadMemStats(&ms)
	b.ReportMetric(float64(cpu.Microseconds())/float64(b.N*benchWorkers), "cpu-µs/call")
	b.ReportMetric(float64(ms.HeapSys)/(1<<20), "heap-MiB")
}

// benchEngine returns an engine with opts on a fresh SQLite journal
// whose models live at url, each admitting benchInFlight calls at once.
func benchEngine(b *testing.B, url string, opts Options) *Engine {
	ctx := context.Background()
	store, err := journal.Open(ctx, filepath.Join(b.TempDir(), "bench.db"), nil)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { store.Close() })
	store.Redact(opts.Redact)
	cfg := testConfig(url + "/v1")
	for _, m := range cfg.Models {
		m.Limits = config.Limits{Concurrency: benchInFlight}
	}
	reg := provider.NewRegistry(cfg, func(string) string { return "" }, testLoggerB(b))
	e, err := New(ctx, store, reg, testLoggerB(b), opts)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { e.Close(ctx) })
	return e
}

// workerRequest returns the body of the request a Hive worker sends for
// one of the benchmark's tasks, taken from a one-worker run against a
// server of its own: the bare loop posts exactly these bytes, so that the
// model server does the same work for both.
func workerRequest(b *testing.B) []byte {
	var (
		mu   sync.Mutex
		body []byte
	)
	srv := llmtest.NewOpenAI(func(c *llmtest.Call) llmtest.Reply {
		if !isLead(c) {
			mu.Lock()
			body = c.Body
			mu.Unlock()
			return llmtest.Reply{ToolCalls: []llmtest.ToolCall{toolCall("submit", submitArgs{Report: "ok"})}}
		}
		if turns(c) == 0 {
			return llmtest.Reply{ToolCalls: []llmtest.ToolCall{toolCall("delegate", delegateArgs{Tasks: tasks(1, "b")})}}
		}
		return finish("done")
	})
	defer srv.Close()
	ctx := context.Background()
	e := benchEngine(b, srv.URL, Options{})
	id, err := e.Start(ctx, Spec{Task: "bench", Lead: "lead", Tiers: []string{"cheap"}, BudgetUSD: 1e12})
	if err != nil {
		b.Fatal(err)
	}
	if res, err := e.Wait(ctx, id); err != nil || res.Answer != "done" {
		b.Fatalf("run: %v %+v", err, res)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(body) == 0 {
		b.Fatal("no worker request seen")
	}
	return body
}
