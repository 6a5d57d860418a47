package hedge

import (
	"context"
	"errors"
	"sync"
	"testing"
	"testing/synctest"
	"time"
)

func TestParse(t *testing.T) {
	for in, want := range map[string]Policy{"p95": {Quantile: 0.95}, "p99.9": {Quantile: 0.999}, "1.5s": {Delay: 1500 * time.Millisecond}} {
		got, err := Parse(in)
		if d := got.Quantile - want.Quantile; d > 1e-9 || d < -1e-9 {
			t.Errorf("Parse(%q) quantile %v, want %v", in, got.Quantile, want.Quantile)
		}
		got.Quantile = want.Quantile
		if err != nil || got != want {
			t.Errorf("Parse(%q) = %+v, %v; want %+v", in, got, err, want)
		}
	}
	for _, bad := range []string{"", "p", "p40", "p100", "fast", "-1s", "0s"} {
		if _, err := Parse(bad); err == nil {
			t.Errorf("Parse(%q) accepted", bad)
		}
	}
}

func TestQuantileAndDelay(t *testing.T) {
	var tr Tracker
	p := Policy{Quantile: 0.95, MaxShare: 1} // no share cap in the way
	for i := 1; i <= 19; i++ {
		tr.Observe(time.Duration(i) * time.Millisecond)
	}
	if _, ok := tr.Delay(p); ok {
		t.Fatal("hedged with 19 latencies seen, fewer than the 20 the default asks")
	}
	for i := 20; i <= 100; i++ {
		tr.Observe(time.Duration(i) * time.Millisecond)
	}
	if d, ok := tr.Delay(p); !ok || d != 95*time.Millisecond {
		t.Fatalf("p95 of 1..100 ms = %v, %v; want 95ms", d, ok)
	}
	// The window keeps the last 512: old latencies age out.
	for range window {
		tr.Observe(time.Second)
	}
	if d, _ := tr.Quantile(0.5, 1); d != time.Second {
		t.Fatalf("median after the window turned over = %v", d)
	}
	// The share cap: with 10% allowed, one call in ten is hedged, the
	// first once ten calls have started.
	var c Tracker
	for range 10 {
		c.Observe(time.Millisecond)
	}
	q := Policy{Delay: time.Second, MaxShare: 0.1}
	n := 0
	for range 100 {
		if _, ok := c.Delay(q); ok && c.reserve(q.Share()) {
			n++
		}
	}
	if n != 10 {
		t.Fatalf("%d of 100 calls hedged under a 10%% cap", n)
	}
}

// sendThen is a call that reports it was sent, then answers v after d, or
// fails when its context ends first.
func sendThen(d time.Duration, v string) func(ctx context.Context) (string, error) {
	return func(ctx context.Context) (string, error) {
		if f, ok := ctx.Value(sentKey{}).(func()); ok {
			f()
		}
		select {
		case <-time.After(d):
			return v, nil
		case <-ctx.Done():
			return "", ctx.Err()
		}
	}
}

func backupOf(f func(ctx context.Context) (string, error)) func(ctx context.Context) (string, bool, error) {
	return func(ctx context.Context) (string, bool, error) {
		v, err := f(ctx)
		return v, true, err
	}
}

func TestRace(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var tr Tracker
		every := Policy{Delay: 100 * time.Millisecond, MaxShare: 1}
		race := func(ctx context.Context, primary func(context.Context) (string, error), backup func(context.Context) (string, bool, error)) (Result[string], Result[string]) {
			tr.Delay(every) // counts the call
			return Race(ctx, &tr, every, every.Delay, primary, backup)
		}
		// A straggler: the hedge, sent after 100 ms, answers first and the
		// straggler is cancelled.
		start := time.Now()
		p, b := race(t.Context(), sendThen(10*time.Second, "slow"), backupOf(sendThen(50*time.Millisecond, "fast")))
		if !b.Won || b.Value != "fast" || p.Won || !errors.Is(p.Err, context.Canceled) {
			t.Fatalf("straggler: primary %+v, backup %+v", p, b)
		}
		if d := time.Since(start); d != 150*time.Millisecond {
			t.Fatalf("straggler: answered after %v, want 150ms", d)
		}
		if _, h := tr.Stats(); h != 1 {
			t.Fatalf("%d hedges counted", h)
		}
		if p.Took != 150*time.Millisecond || b.Took != 50*time.Millisecond {
			t.Fatalf("straggler: the copies took %v and %v, want 150ms and 50ms", p.Took, b.Took)
		}

		// A call that answers before the delay: no hedge is sent.
		p, b = race(t.Context(), sendThen(99*time.Millisecond, "ok"), backupOf(sendThen(0, "never")))
		if !p.Won || p.Value != "ok" || b.Sent {
			t.Fatalf("quick call: primary %+v, backup %+v", p, b)
		}

		// A primary that fails before the delay: its error, no hedge.
		boom := errors.New("boom")
		p, b = race(t.Context(), func(ctx context.Context) (string, error) {
			ctx.Value(sentKey{}).(func())()
			return "", boom
		}, backupOf(sendThen(0, "never")))
		if p.Err != boom || b.Sent || p.Won {
			t.Fatalf("failed call: primary %+v, backup %+v", p, b)
		}

		// A hedge the budget refuses: the primary is waited for.
		p, b = race(t.Context(), sendThen(time.Second, "slow"), func(context.Context) (string, bool, error) {
			return "", false, errors.New("budget")
		})
		if !p.Won || p.Value != "slow" || b.Sent || b.Won {
			t.Fatalf("refused hedge: primary %+v, backup %+v", p, b)
		}
		if _, h := tr.Stats(); h != 1 {
			t.Fatalf("a refused hedge was counted: %d hedges", h)
		}

		// A primary that fails after the hedge went: the hedge's answer.
		p, b = race(t.Context(), func(ctx context.Context) (string, error) {
			ctx.Value(sentKey{}).(func())()
			time.Sleep(200 * time.Millisecond)
			return "", boom
		}, backupOf(sendThen(300*time.Millisecond, "rescue")))
		if !b.Won || b.Value != "rescue" || p.Err != boom {
			t.Fatalf("failing straggler: primary %+v, backup %+v", p, b)
		}

		// A primary still waiting for admission (not sent) is not hedged.
		ctx, cancel := context.WithTimeout(t.Context(), time.Second)
		defer cancel()
		p, b = race(ctx, func(ctx context.Context) (string, error) {
			<-ctx.Done()
			return "", ctx.Err()
		}, backupOf(sendThen(0, "never")))
		if b.Sent || !errors.Is(p.Err, context.DeadlineExceeded) {
			t.Fatalf("unsent call: primary %+v, backup %+v", p, b)
		}
	})
}

// A wave of concurrent calls to a model that has turned slow: each one
// passes Delay before any hedge is due, and when their hedges come due
// together, no more than max_share of the calls started may go.
func TestShareCapHoldsForConcurrentCalls(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var tr Tracker
		for range 20 {
			tr.Observe(10 * time.Millisecond)
		}
		p := Policy{Quantile: 0.95, MaxShare: 0.1}
		var wg sync.WaitGroup
		for range 100 {
			wg.Go(func() {
				d, ok := tr.Delay(p)
				if !ok {
					return
				}
				Race(t.Context(), &tr, p, d, sendThen(time.Second, "slow"), backupOf(sendThen(0, "fast")))
			})
		}
		wg.Wait()
		if calls, hedges := tr.Stats(); calls != 100 || hedges == 0 || hedges > 10 {
			t.Errorf("%d of %d calls hedged under max_share 0.1; want 1 to 10", hedges, calls)
		}
	})
}

// A straggler cancelled because its hedge won still teaches the tracker:
// it took at least as long as it ran, so the model's slow calls are not
// dropped from its latencies and the hedge delay does not drift down to
// the hedges' own, faster, latencies.
func TestCancelledStragglerTeachesTracker(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var tr Tracker
		for range 20 {
			tr.Observe(time.Second)
		}
		p := Policy{Quantile: 0.5, MaxShare: 1}
		// Every call straggles; each hedge (to the same model, so timed
		// by the same tracker) answers in 10 ms.
		backup := backupOf(func(ctx context.Context) (string, error) {
			v, err := sendThen(10*time.Millisecond, "fast")(ctx)
			if err == nil {
				tr.Observe(10 * time.Millisecond)
			}
			return v, err
		})
		for range 40 {
			d, ok := tr.Delay(p)
			if !ok {
				t.Fatal("a call was not hedged")
			}
			Race(t.Context(), &tr, p, d, sendThen(time.Hour, "slow"), backup)
		}
		if q, _ := tr.Quantile(0.5, 1); q < time.Second {
			t.Errorf("the median fell to %v after 40 hedged stragglers of over a second each", q)
		}
	})
}
