package swarm

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hive-swarm/hive/internal/config"
	"github.com/hive-swarm/hive/internal/llm"
	"github.com/hive-swarm/hive/internal/llm/llmtest"
	"github.com/hive-swarm/hive/internal/price"
	"github.com/hive-swarm/hive/internal/provider"
)

// A worker whose call straggles gets a second copy after the model's hedge
// delay; the copy's answer is taken, the straggler is cancelled, and both
// are billed on the node. Workers that answer in time are not hedged.
func TestHedgedStraggler(t *testing.T) {
	var mu sync.Mutex
	sent := map[string]int{}
	h := func(c *llmtest.Call) llmtest.Reply {
		if !isLead(c) {
			name := taskName(c)
			mu.Lock()
			sent[name]++
			n := sent[name]
			mu.Unlock()
			r := llmtest.Reply{ToolCalls: []llmtest.ToolCall{toolCall("submit", submitArgs{Report: "ok " + name})}}
			if name == "t-1" && n == 1 {
				r.Latency = 20 * time.Second // the straggler; its context ends it
			}
			return r
		}
		if len(c.ToolResults()) == 0 {
			return llmtest.Reply{ToolCalls: []llmtest.ToolCall{toolCall("delegate", delegateArgs{Tasks: tasks(4, "t")})}}
		}
		return llmtest.Reply{ToolCalls: []llmtest.ToolCall{toolCall("finish", finishArgs{Answer: "done"})}}
	}
	hs := newHarnessWith(t, h, Options{}, func(c *config.Config) {
		c.Models["cheap"].Hedge = &config.Hedge{After: "1s", MaxShare: 1}
	})
	start := time.Now()
	res := hs.run(Spec{Task: "four", BudgetUSD: 1e9})
	took := time.Since(start)
	if res.Status != StatusDone {
		t.Fatalf("run ended %s: %s", res.Status, res.Error)
	}
	if took > 15*time.Second {
		t.Fatalf("the run took %v: the straggler (20 s) was waited for", took)
	}
	mu.Lock()
	if sent["t-1"] != 2 || sent["t-0"] != 1 {
		t.Errorf("requests per task %v: want t-1 twice, the others once", sent)
	}
	mu.Unlock()
	var sum int64
	for _, n := range hs.nodes(res.RunID) {
		sum += int64(n.Cost)
		switch {
		case n.Name == "t-1":
			if n.Hedges != 1 || n.HedgeWins != 1 || n.HedgeCost <= 0 || n.Cost <= n.HedgeCost || n.Report != "ok t-1" {
				t.Errorf("t-1: hedges %d, wins %d, hedge cost %d of %d, report %q", n.Hedges, n.HedgeWins, n.HedgeCost, n.Cost, n.Report)
			}
		case n.Role == RoleWorker:
			if n.Hedges != 0 {
				t.Errorf("%s answered at once but was hedged", n.Name)
			}
		}
	}
	if sum != int64(res.Cost) {
		t.Errorf("node costs sum to %d, the run's cost is %d", sum, res.Cost)
	}
}

// A straggler cancelled because its hedge won is billed an estimate: the
// winner's output at the winner's speed over the straggler's time (it was
// sent a second before its hedge, and ran twice as long), and its prompt,
// which carried a cache breakpoint, at the cache-write rate (1.25x input
// for claude-haiku-4-5), above the uncached one.
func TestCancelledCopyBill(t *testing.T) {
	var mu sync.Mutex
	sent := 0
	srv := llmtest.NewAnthropic(func(c *llmtest.Call) llmtest.Reply {
		if isLead(c) {
			if len(c.ToolResults()) == 0 {
				return llmtest.Reply{ToolCalls: []llmtest.ToolCall{toolCall("delegate", delegateArgs{Tasks: tasks(1, "t")})}}
			}
			return finish("done")
		}
		mu.Lock()
		sent++
		first := sent == 1
		mu.Unlock()
		r := submit("ok")
		r.Latency = time.Second
		if first {
			r.Latency = time.Minute // the straggler; its hedge's answer ends it
		}
		r.Usage = &llm.Usage{InputTokens: 1000, OutputTokens: 100}
		return r
	})
	hs := newHarnessOn(t, srv, Options{}, func(c *config.Config) {
		anthropicModels(srv)(c)
		c.Models["cheap"].Hedge = &config.Hedge{After: "1s", MaxShare: 1}
	})
	res := hs.run(Spec{Task: "one", Lead: "lead", Tiers: []string{"cheap"}, BudgetUSD: price.Dollar})
	if res.Status != StatusDone {
		t.Fatalf("run %s: %s", res.Status, res.Error)
	}
	steps, err := hs.store.Steps(t.Context(), res.RunID)
	if err != nil {
		t.Fatal(err)
	}
	var h *hedgeRecord
	for _, data := range steps {
		var rec callRecord
		if json.Unmarshal(data, &rec) == nil && rec.Hedge != nil {
			h = rec.Hedge
		}
	}
	if h == nil || !h.Won || !h.Estimated {
		t.Fatalf("hedge record %+v: want a won hedge and an estimated bill for the straggler", h)
	}
	// 100 tokens in the winner's second, over the straggler's two.
	if h.Usage.OutputTokens < 150 || h.Usage.OutputTokens > 210 || h.Usage.CacheWriteTokens != 1000 || h.Usage.InputTokens != 0 {
		t.Errorf("the straggler billed for %+v; want about 200 output tokens and its 1,000 prompt tokens as cache writes", h.Usage)
	}
}

// The estimate of a cancelled copy never passes its reservation, and
// with no time for the winner it is the whole allowance.
func TestCancelledBillCapped(t *testing.T) {
	m := &provider.Model{Name: "m", PriceKnown: true, Price: price.Price{Input: price.Dollar, Output: 5 * price.Dollar, CacheWrite: price.Dollar * 5 / 4}}
	req := &llm.Request{MaxTokens: 500, CacheSystem: true}
	won := llm.Usage{InputTokens: 100, CacheReadTokens: 900, OutputTokens: 100}
	u, cost := cancelledBill(m, req, won, time.Millisecond, time.Minute, price.Dollar, 10_000)
	if u.OutputTokens != 500 || u.CacheWriteTokens != 1000 || cost != m.Price.Cost(u) {
		t.Errorf("a straggler that ran 60,000 times the winner's time: %+v for %s; want the 500-token cap", u, cost)
	}
	if u, cost = cancelledBill(m, req, won, time.Second, time.Minute, 1000, 1200); u.Total() > 1200 || cost != 1000 {
		t.Errorf("under a reservation of 1,200 tokens and 1,000 nanodollars: %+v for %d", u, cost)
	}
	if u, _ = cancelledBill(m, req, won, 0, time.Second, price.Dollar, 10_000); u.OutputTokens != 500 {
		t.Errorf("with the winner's time unknown: %d output tokens, want the cap", u.OutputTokens)
	}
	if u, _ = cancelledBill(m, &llm.Request{MaxTokens: 500}, won, 2*time.Second, time.Second, price.Dollar, 10_000); u.OutputTokens != 50 || u.InputTokens != 1000 {
		t.Errorf("a hedge stopped halfway through the winner's time, no cache breakpoint: %+v", u)
	}
}

// A provider that turns slow for a whole wave: the wave's hedges come
// due together, and still no more than max_share of the calls go twice.
func TestHedgeShareHeldInASlowWave(t *testing.T) {
	h := func(c *llmtest.Call) llmtest.Reply {
		if !isLead(c) {
			r := submit("ok")
			r.Latency = 10 * time.Millisecond
			if strings.HasPrefix(taskName(c), "w1") {
				r.Latency = time.Second
			}
			return r
		}
		if k := turns(c); k < 2 {
			return llmtest.Reply{ToolCalls: []llmtest.ToolCall{toolCall("delegate", delegateArgs{Tasks: tasks([]int{30, 50}[k], fmt.Sprintf("w%d", k))})}}
		}
		return finish("done")
	}
	hs := newHarnessWith(t, h, Options{}, func(c *config.Config) {
		c.Models["cheap"].Limits.Concurrency = 100
		c.Models["cheap"].Hedge = &config.Hedge{After: "p95", MaxShare: 0.1}
	})
	res := hs.run(Spec{Task: "waves", BudgetUSD: 100 * price.Dollar, MaxWorkers: 100})
	if res.Status != StatusDone {
		t.Fatalf("run ended %s: %s", res.Status, res.Error)
	}
	hedges, calls := 0, 0
	for _, n := range hs.nodes(res.RunID) {
		if n.Role == RoleWorker {
			hedges += n.Hedges
			calls += n.Calls
		}
	}
	if hedges == 0 || float64(hedges) > 0.1*float64(calls) {
		t.Errorf("%d of %d worker calls hedged under max_share 0.1", hedges, calls)
	}
}

// A hedge to a model without a price, under a dollar budget: the hedge
// would reserve $0 and the answers it won would be billed $0. Start
// refuses the run, as it does an unpriced tier, naming the setting.
func TestHedgeToUnpricedRefused(t *testing.T) {
	hs := newHarnessWith(t, func(c *llmtest.Call) llmtest.Reply { return finish("done") }, Options{}, func(c *config.Config) {
		c.Models["free"] = &config.Model{Name: "free", Provider: "openai", ID: "free", BaseURL: c.Models["cheap"].BaseURL}
		c.Models["cheap"].Hedge = &config.Hedge{After: "200ms", To: "free", MaxShare: 1}
	})
	_, err := hs.engine.Start(t.Context(), Spec{Task: "five", Lead: "lead", Tiers: []string{"cheap"}, BudgetUSD: price.Dollar})
	var se *SpecError
	if !errors.As(err, &se) || !strings.Contains(err.Error(), "free") || !strings.Contains(err.Error(), "models.cheap.hedge") {
		t.Fatalf("Start: %v; want a spec error naming the unpriced model and the hedge setting", err)
	}
	// Without a dollar budget the hedge is bounded by tokens, like any call.
	if res := hs.run(Spec{Task: "five", Tiers: []string{"cheap"}, MaxTokens: 100_000}); res.Status != StatusDone {
		t.Fatalf("without a dollar budget: run %s: %s", res.Status, res.Error)
	}
}

// A run resumed under a hive.toml that took the price off its hedge
// target: Start, which refuses such a target, never sees the change, and
// the call's own check keeps the unpriced model out. The calls go
// unhedged.
func TestResumedHedgeToUnpricedNotSent(t *testing.T) {
	var resumed atomic.Bool
	var toBackup atomic.Int32
	sent := make(chan struct{}, 2)
	h := func(c *llmtest.Call) llmtest.Reply {
		switch {
		case isLead(c) && len(c.ToolResults()) == 0:
			return llmtest.Reply{ToolCalls: []llmtest.ToolCall{toolCall("delegate", delegateArgs{Tasks: tasks(2, "t")})}}
		case isLead(c):
			return finish("done")
		case c.Model == "backup":
			toBackup.Add(1)
			return submit("ok")
		case !resumed.Load():
			sent <- struct{}{}
			return llmtest.Reply{Latency: time.Minute} // until the engine stops
		}
		r := submit("ok")
		r.Latency = time.Second
		return r
	}
	f := func(v float64) *float64 { return &v }
	hs := newHarnessWith(t, h, Options{}, func(c *config.Config) {
		c.Models["backup"] = &config.Model{Name: "backup", Provider: "openai", ID: "backup", BaseURL: c.Models["cheap"].BaseURL}
		c.Models["cheap"].Hedge = &config.Hedge{After: "200ms", To: "backup", MaxShare: 1}
		if !resumed.Load() {
			c.Models["backup"].Price = &config.Price{Input: f(0.1), Output: f(0.2)}
			c.Models["cheap"].Hedge.After = "1h"
		}
	})
	ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second)
	defer cancel()
	id, err := hs.engine.Start(ctx, Spec{Task: "two", Lead: "lead", Tiers: []string{"cheap"}, BudgetUSD: price.Dollar})
	if err != nil {
		t.Fatal(err)
	}
	<-sent
	<-sent
	hs.close()
	resumed.Store(true)
	hs.open(Options{})
	if _, err := hs.engine.Resume(ctx, id); err != nil {
		t.Fatal(err)
	}
	res, err := hs.engine.Wait(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	if res.Status != StatusDone || toBackup.Load() != 0 {
		t.Fatalf("run %s (%s); the unpriced hedge target got %d calls under a dollar budget", res.Status, res.Error, toBackup.Load())
	}
}

// tailLatency draws a model call's latency from a heavy-tailed
// distribution: 94% 80-120 ms, 5% 0.5-1 s, 1% 3-5 s.
func tailLatency(r *rand.Rand) time.Duration {
	u := r.Float64()
	switch {
	case u < 0.01:
		return 3*time.Second + time.Duration(r.Int64N(int64(2*time.Second)))
	case u < 0.06:
		return 500*time.Millisecond + time.Duration(r.Int64N(int64(500*time.Millisecond)))
	}
	return 80*time.Millisecond + time.Duration(r.Int64N(int64(40*time.Millisecond)))
}

// BenchmarkHedgedWaves runs a lead that sends 6 waves of 100 workers, one
// after the other, to a model whose latency is heavy-tailed (tailLatency),
// hedged at its p95 (at most 10% of calls) and not, in the same
// iteration. It reports for waves 2-6 (the first teaches the tracker the
// model's latencies) the mean time a wave took, the p99 of a worker's
// time, and the workers' cost, hedged over unhedged. make bench-hedge
// runs it.
func BenchmarkHedgedWaves(b *testing.B) {
	const waves, width = 6, 100
	run := func(seed uint64, hedged bool) (wave, p99 time.Duration, cost price.Amount, hedges int) {
		var mu sync.Mutex
		rng := rand.New(rand.NewPCG(seed, 1))
		h := func(c *llmtest.Call) llmtest.Reply {
			if !isLead(c) {
				mu.Lock()
				d := tailLatency(rng)
				mu.Unlock()
				return llmtest.Reply{Latency: d, ToolCalls: []llmtest.ToolCall{toolCall("submit", submitArgs{Report: "ok"})}}
			}
			if k := turns(c); k < waves {
				return llmtest.Reply{ToolCalls: []llmtest.ToolCall{toolCall("delegate", delegateArgs{Tasks: tasks(width, fmt.Sprintf("w%d", k))})}}
			}
			return finish("done")
		}
		hs := newHarnessOn(b, llmtest.NewOpenAI(h), Options{}, func(c *config.Config) {
			c.Models["cheap"].Limits.Concurrency = 2 * width
			if hedged {
				c.Models["cheap"].Hedge = &config.Hedge{After: "p95"}
			}
		})
		defer hs.close()
		res := hs.run(Spec{Task: "waves", BudgetUSD: 100 * price.Dollar, MaxWorkers: 2 * width})
		if res.Status != StatusDone {
			b.Fatalf("run ended %s: %s", res.Status, res.Error)
		}
		first, last := map[string]time.Time{}, map[string]time.Time{}
		var durs []time.Duration
		for _, n := range hs.nodes(res.RunID) {
			w, _, _ := strings.Cut(n.Name, "-")
			if n.Role != RoleWorker || w == "w0" {
				continue
			}
			if f, ok := first[w]; !ok || n.Started.Before(f) {
				first[w] = n.Started
			}
			if n.Ended.After(last[w]) {
				last[w] = n.Ended
			}
			durs = append(durs, n.Ended.Sub(n.Started))
			cost += n.Cost
			hedges += n.Hedges
		}
		var sum time.Duration
		for w := range first {
			sum += last[w].Sub(first[w])
		}
		slices.Sort(durs)
		return sum / time.Duration(len(first)), durs[len(durs)*99/100], cost, hedges
	}
	var hw, pw, hp, pp time.Duration
	var hc, pc price.Amount
	var hedges int
	seed := uint64(0)
	for b.Loop() {
		seed++
		w, p, c, n := run(seed, true)
		hw, hp, hc, hedges = hw+w, hp+p, hc+c, hedges+n
		w, p, c, _ = run(seed, false)
		pw, pp, pc = pw+w, pp+p, pc+c
	}
	b.ReportMetric((hw / time.Duration(b.N)).Seconds(), "wave-s-hedged")
	b.ReportMetric((pw / time.Duration(b.N)).Seconds(), "wave-s-unhedged")
	b.ReportMetric(float64(hw)/float64(pw), "wave-ratio")
	b.ReportMetric(float64(hp.Milliseconds())/float64(b.N), "p99-ms-hedged")
	b.ReportMetric(float64(pp.Milliseconds())/float64(b.N), "p99-ms-unhedged")
	b.ReportMetric(float64(hc)/float64(pc), "cost-ratio")
	b.ReportMetric(float64(hedges)/float64(b.N*(waves-1)*width), "hedged-share")
}

// A hedge that comes due while its model's limiter holds it back (one
// call at a time, taken by the primary) and is cancelled there when the
// primary answers never reached the provider: it is neither billed nor
// shown, and it does not count against the model's max_share.
func TestHedgeHeldByLimiterNotCounted(t *testing.T) {
	var workerCalls atomic.Int32
	h := func(c *llmtest.Call) llmtest.Reply {
		if !isLead(c) {
			workerCalls.Add(1)
			r := submit("ok")
			r.Latency = time.Second
			return r
		}
		if len(c.ToolResults()) == 0 {
			return llmtest.Reply{ToolCalls: []llmtest.ToolCall{toolCall("delegate", delegateArgs{Tasks: tasks(1, "t")})}}
		}
		return finish("done")
	}
	hs := newHarnessWith(t, h, Options{}, func(c *config.Config) {
		c.Models["cheap"].Limits.Concurrency = 1
		c.Models["cheap"].Hedge = &config.Hedge{After: "200ms", MaxShare: 1}
	})
	res := hs.run(Spec{Task: "one", BudgetUSD: price.Dollar})
	if res.Status != StatusDone {
		t.Fatalf("run ended %s: %s", res.Status, res.Error)
	}
	if n := workerCalls.Load(); n != 1 {
		t.Fatalf("the model server saw %d worker calls, want 1", n)
	}
	w := hs.worker(res.RunID)
	if w.Hedges != 0 || w.HedgeCost != 0 {
		t.Errorf("worker: %d hedges costing %d, want none: the hedge never left the limiter", w.Hedges, w.HedgeCost)
	}
	m, err := hs.engine.models.Get("cheap")
	if err != nil {
		t.Fatal(err)
	}
	if calls, hedges := m.Latency.Stats(); hedges != 0 || calls == 0 {
		t.Errorf("tracker: %d hedges of %d calls, want 0 hedges", hedges, calls)
	}
}
