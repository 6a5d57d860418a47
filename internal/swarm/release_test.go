package swarm

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/hive-swarm/hive/internal/limit"
	"github.com/hive-swarm/hive/internal/llm"
	"github.com/hive-swarm/hive/internal/llm/llmtest"
)

// ctxRecorder is a model that keeps the context of every call it passes on:
// the lead's calls carry the run's workflow context.
type ctxRecorder struct {
	llm.Model
	mu   sync.Mutex
	ctxs []context.Context
}

func (m *ctxRecorder) keep(ctx context.Context) {
	m.mu.Lock()
	m.ctxs = append(m.ctxs, ctx)
	m.mu.Unlock()
}

func (m *ctxRecorder) Generate(ctx context.Context, req *llm.Request) (*llm.Response, error) {
	m.keep(ctx)
	return m.Model.Generate(ctx, req)
}

func (m *ctxRecorder) Stream(ctx context.Context, req *llm.Request, fn func(llm.Delta)) (*llm.Response, error) {
	m.keep(ctx)
	return m.Model.Stream(ctx, req, fn)
}

// A long-lived process (hive serve) runs runs by the thousand: once a run
// has ended, and its watchers and waiters have had its end, nothing of it
// stays in the engine or its bus, and its workflow context is released
// from the engine's.
func TestEndedRunsLeaveNoState(t *testing.T) {
	h := func(c *llmtest.Call) llmtest.Reply {
		if !isLead(c) {
			return llmtest.Reply{ToolCalls: []llmtest.ToolCall{toolCall("submit", submitArgs{Report: "ok"})}}
		}
		if turns(c) == 0 {
			return llmtest.Reply{ToolCalls: []llmtest.ToolCall{toolCall("delegate", delegateArgs{Tasks: tasks(3, "t")})}}
		}
		return finish("done")
	}
	hs := newHarness(t, h, Options{})
	lead, err := hs.reg.Get("lead")
	if err != nil {
		t.Fatal(err)
	}
	rec := &ctxRecorder{Model: lead.Client}
	hs.reg.Add("lead", rec, lead.Price, lead.PriceKnown, limit.Config{})

	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	var ids []string
	for range 3 {
		id, err := hs.engine.Start(ctx, Spec{Task: "leave nothing", Lead: "lead", Tiers: []string{"cheap"}, BudgetUSD: 1e9})
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, id)
	}
	for _, id := range ids {
		var last Event
		for ev := range hs.engine.Watch(ctx, id, 0) {
			last = ev
		}
		if last.Type != EventRunFinished {
			t.Fatalf("run %s: watch ended on %q, want run_finished", id, last.Type)
		}
		if res, err := hs.engine.Wait(ctx, id); err != nil || res.Answer != "done" {
			t.Fatalf("run %s: %+v, %v", id, res, err)
		}
	}
	// Watching and waiting for an ended run, and watching a run of no
	// process (polled, unknown here), keep nothing either.
	for ev := range hs.engine.Watch(ctx, ids[0], 0) {
		_ = ev
	}
	if _, err := hs.engine.Wait(ctx, ids[0]); err != nil {
		t.Fatal(err)
	}
	wctx, wcancel := context.WithTimeout(ctx, 700*time.Millisecond)
	for range hs.engine.Watch(wctx, "r-unknown", 0) {
	}
	wcancel()

	e := hs.engine
	e.mu.Lock()
	slots := len(e.slots)
	e.mu.Unlock()
	if slots != 0 {
		t.Errorf("the engine keeps %d slots of ended runs", slots)
	}
	e.bus.mu.Lock()
	seqs, subs := len(e.bus.seq), len(e.bus.subs)
	e.bus.mu.Unlock()
	if seqs != 0 || subs != 0 {
		t.Errorf("the bus keeps %d seq counters and %d subscriber sets of ended runs", seqs, subs)
	}
	rec.mu.Lock()
	ctxs := rec.ctxs
	rec.mu.Unlock()
	if len(ctxs) != 2*len(ids) {
		t.Fatalf("%d lead calls, want %d", len(ctxs), 2*len(ids))
	}
	// The workflow context of an ended run is cancelled, which removes it
	// from the engine's: a context never cancelled stays among its
	// parent's children for the life of the process.
	deadline := time.Now().Add(5 * time.Second)
	for _, c := range ctxs {
		for c.Err() == nil && time.Now().Before(deadline) {
			time.Sleep(10 * time.Millisecond)
		}
		if c.Err() == nil {
			t.Fatal("the workflow context of an ended run is never released")
		}
	}
}

// A run cancelled and resumed in the same process numbers its events on
// from where it stopped: its bus counter, let go when it stopped, restarts
// from the journal, so the events form one gapless sequence.
func TestResumedRunNumbersEventsOn(t *testing.T) {
	release := make(chan struct{})
	var once sync.Once
	started := make(chan struct{})
	h := func(c *llmtest.Call) llmtest.Reply {
		if !isLead(c) {
			once.Do(func() { close(started) })
			<-release
			return llmtest.Reply{ToolCalls: []llmtest.ToolCall{toolCall("submit", submitArgs{Report: "ok"})}}
		}
		if turns(c) == 0 {
			return llmtest.Reply{ToolCalls: []llmtest.ToolCall{toolCall("delegate", delegateArgs{Tasks: tasks(2, "t")})}}
		}
		return finish("done")
	}
	hs := newHarness(t, h, Options{})
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	id, err := hs.engine.Start(ctx, Spec{Task: "stop and go", Lead: "lead", Tiers: []string{"cheap"}, BudgetUSD: 1e9})
	if err != nil {
		t.Fatal(err)
	}
	select {
	case <-started:
	case <-ctx.Done():
		t.Fatal("no worker started")
	}
	if err := hs.engine.Cancel(ctx, id); err != nil {
		t.Fatal(err)
	}
	close(release)
	if res, err := hs.engine.Wait(ctx, id); err != nil || res.Status != StatusCancelled {
		t.Fatalf("after cancel: %+v, %v", res, err)
	}
	if _, err := hs.engine.Resume(ctx, id); err != nil {
		t.Fatal(err)
	}
	if res, err := hs.engine.Wait(ctx, id); err != nil || res.Status != StatusDone {
		t.Fatalf("after resume: %+v, %v", res, err)
	}
	var seqs []int64
	resumed := false
	for ev := range hs.engine.Watch(ctx, id, 0) {
		seqs = append(seqs, ev.Seq)
		resumed = resumed || ev.Type == EventRunResumed
	}
	if !resumed {
		t.Fatal("no run_resumed event")
	}
	rows, err := hs.store.Events(ctx, id, 0, 100000)
	if err != nil {
		t.Fatal(err)
	}
	if len(rows) != len(seqs) {
		t.Fatalf("journal holds %d events, watch gave %d", len(rows), len(seqs))
	}
	for i, s := range seqs {
		if s != int64(i+1) {
			t.Fatalf("event %d has seq %d: %v", i, s, seqs)
		}
	}
}

// Start after Close says so, and starts nothing.
func TestStartAfterClose(t *testing.T) {
	hs := newHarness(t, func(c *llmtest.Call) llmtest.Reply { return finish("done") }, Options{})
	e := hs.engine
	if err := e.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	if _, err := e.Start(context.Background(), Spec{Task: "late", Lead: "lead", Tiers: []string{"cheap"}}); !errors.Is(err, ErrClosed) {
		t.Fatalf("Start after Close: %v", err)
	}
	if n := hs.srv.Requests(); n != 0 {
		t.Fatalf("%d model requests after Close", n)
	}
}
