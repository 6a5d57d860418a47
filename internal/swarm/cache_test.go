package swarm

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/hive-swarm/hive/internal/config"
	"github.com/hive-swarm/hive/internal/llm/llmtest"
	"github.com/hive-swarm/hive/internal/price"
)

// anthropicModels replaces the harness's models with Anthropic ones on
// srv, at their list prices (cache writes 1.25x input, reads 0.1x).
func anthropicModels(srv *llmtest.Server) func(*config.Config) {
	return func(c *config.Config) {
		c.Models = map[string]*config.Model{}
		for name, id := range map[string]string{"lead": "claude-sonnet-4-5", "cheap": "claude-haiku-4-5", "strong": "claude-sonnet-4-5"} {
			c.Models[name] = &config.Model{Name: name, Provider: config.ProviderAnthropic, ID: id, BaseURL: srv.URL}
		}
	}
}

// cacheWaveHandler scripts a lead that hands a wave of n workers a shared
// context of about ctxTokens tokens; each worker answers after latency.
func cacheWaveHandler(n, ctxTokens int, latency time.Duration) llmtest.Handler {
	var doc strings.Builder
	for i := 0; doc.Len() < 4*ctxTokens; i++ {
		fmt.Fprintf(&doc, "Clause %d: the supplier delivers item %d within %d days of the order. ", i, i*7, i%30+1)
	}
	return func(c *llmtest.Call) llmtest.Reply {
		if !isLead(c) {
			return llmtest.Reply{Latency: latency, ToolCalls: []llmtest.ToolCall{toolCall("submit", submitArgs{Report: "ok " + taskName(c)})}}
		}
		if len(c.ToolResults()) == 0 {
			return llmtest.Reply{ToolCalls: []llmtest.ToolCall{toolCall("delegate", delegateArgs{Tasks: tasks(n, "clause"), Context: doc.String()})}}
		}
		return finish(fmt.Sprintf("%d reports", len(reports(c))))
	}
}

// waveInput sums the worker nodes' input bill: uncached input, cache
// writes and cache reads at their prices.
func waveInput(nodes []Node) (price.Amount, int64, int64) {
	p, _ := price.Lookup("claude-haiku-4-5")
	var cost price.Amount
	var read, written int64
	for _, n := range nodes {
		if n.Role != RoleWorker {
			continue
		}
		u := n.Usage
		u.OutputTokens = 0
		cost += p.Cost(u)
		read += u.CacheReadTokens
		written += u.CacheWriteTokens
	}
	return cost, read, written
}

// A wave of workers over a shared context on a server that caches as
// Anthropic does: the first call writes the shared prefix, the stagger
// holds the rest until it answers, and they all read it; every node's
// cost uses the cache prices and records what caching saved. Without
// prompt caching, nothing is read.
func TestPromptCacheWave(t *testing.T) {
	const n = 10
	run := func(opts Options) ([]Node, llmtest.CacheStats) {
		srv := llmtest.NewAnthropic(cacheWaveHandler(n, 6000, 200*time.Millisecond))
		srv.SimulateCache(llmtest.CacheRules{})
		hs := newHarnessOn(t, srv, opts, anthropicModels(srv))
		res := hs.run(Spec{Task: "check every clause", BudgetUSD: 10 * price.Dollar})
		if res.Status != StatusDone {
			t.Fatalf("run ended %s: %s", res.Status, res.Error)
		}
		return hs.nodes(res.RunID), srv.CacheStats()
	}
	nodes, stats := run(Options{})
	var writers, readers int
	var saved price.Amount
	for _, nd := range nodes {
		saved += nd.CacheSaved
		if nd.Role != RoleWorker {
			continue
		}
		if nd.Usage.CacheReadTokens >= 5000 {
			readers++
		}
		if nd.Usage.CacheWriteTokens >= 5000 {
			writers++
		}
	}
	if writers != 1 || readers != n-1 {
		t.Errorf("%d workers wrote the shared prefix and %d read it; want 1 and %d (stats %+v)", writers, readers, n-1, stats)
	}
	if saved <= 0 {
		t.Errorf("caching saved %s", saved)
	}
	cached, _, _ := waveInput(nodes)

	plainNodes, plainStats := run(Options{NoPromptCache: true})
	plain, read, _ := waveInput(plainNodes)
	if read != 0 || plainStats.Hits != 0 {
		t.Errorf("without prompt caching %d tokens were read from the cache (%+v)", read, plainStats)
	}
	t.Logf("wave of %d over ~6k shared tokens: input %s cached, %s without (%.0f%% lower)", n, cached, plain, 100*(1-float64(cached)/float64(plain)))
	if float64(cached) > 0.5*float64(plain) {
		t.Errorf("cached input cost %s is not under half of %s", cached, plain)
	}
}

// BenchmarkPromptCacheWave runs a wave of 100 workers over a 20k-token
// shared context on a server that caches as Anthropic does, with prompt
// caching and without (Options.NoPromptCache) in the same iteration, and
// reports the workers' input cost of each, their ratio, and the ratio of
// wall times (the stagger holds the wave until its first call answers).
// make bench-cache runs it.
func BenchmarkPromptCacheWave(b *testing.B) {
	const workers, shared, latency = 100, 20_000, 500 * time.Millisecond
	run := func(opts Options) (price.Amount, time.Duration) {
		srv := llmtest.NewAnthropic(cacheWaveHandler(workers, shared, latency))
		srv.SimulateCache(llmtest.CacheRules{})
		hs := newHarnessOn(b, srv, opts, anthropicModels(srv))
		start := time.Now()
		res := hs.run(Spec{Task: "check every clause", BudgetUSD: 100 * price.Dollar, MaxWorkers: workers})
		took := time.Since(start)
		if res.Status != StatusDone {
			b.Fatalf("run ended %s: %s", res.Status, res.Error)
		}
		cost, _, _ := waveInput(hs.nodes(res.RunID))
		hs.close()
		return cost, took
	}
	var cached, plain price.Amount
	var cachedWall, plainWall time.Duration
	for b.Loop() {
		c, cw := run(Options{})
		p, pw := run(Options{NoPromptCache: true})
		cached, plain, cachedWall, plainWall = cached+c, plain+p, cachedWall+cw, plainWall+pw
	}
	b.ReportMetric(float64(cached)/float64(plain), "input-cost-ratio")
	b.ReportMetric(cached.Dollars()/float64(b.N), "cached-$/wave")
	b.ReportMetric(plain.Dollars()/float64(b.N), "uncached-$/wave")
	b.ReportMetric(float64(cachedWall)/float64(plainWall), "wall-ratio")
}
