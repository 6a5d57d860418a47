package limit

import (
	"context"
	"errors"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/hive-swarm/hive/internal/llm"
)

// testLogger routes a limiter's logs to t.Log.
func testLogger(t testing.TB) *slog.Logger {
	return slog.New(slog.NewTextHandler(tWriter{t}, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

type tWriter struct{ t testing.TB }

func (w tWriter) Write(p []byte) (int, error) {
	w.t.Helper()
	w.t.Log(strings.TrimSuffix(string(p), "\n"))
	return len(p), nil
}

func rateLimited(ra time.Duration) error {
	return &llm.Error{Kind: llm.KindRateLimited, Provider: "test", Status: 429, RetryAfter: ra}
}

func kindErr(k llm.Kind) error { return &llm.Error{Kind: k, Provider: "test"} }

// admit acquires a slot without waiting; it fails the test if there is none.
func admit(t *testing.T, l *Limiter) ticket {
	t.Helper()
	l.mu.Lock()
	tk, wait := l.tryAdmitLocked(0, l.clock())
	l.mu.Unlock()
	if wait != 0 {
		t.Fatalf("no slot: in flight %d, limit %v", l.inFlight, l.limit)
	}
	return tk
}

func TestCutOncePerWindow(t *testing.T) {
	l := New("m", Config{InitialConcurrency: 10, MaxConcurrency: 20}, testLogger(t))
	var first []ticket
	for range 10 {
		first = append(first, admit(t, l))
	}
	l.release(first[0], 0, rateLimited(0))
	if got := l.Stats().Limit; got != 7 {
		t.Fatalf("after first 429: limit %d, want 7 (10×0.7)", got)
	}
	// The rest of the burst was admitted before the cut: no further cut.
	for _, tk := range first[1:] {
		l.release(tk, 0, rateLimited(0))
	}
	s := l.Stats()
	if s.Limit != 7 || s.Cuts != 1 || s.Throttled != 10 {
		t.Fatalf("after the burst: limit %d cuts %d throttled %d, want 7 1 10", s.Limit, s.Cuts, s.Throttled)
	}
	// A call admitted after the cut that is throttled opens a new window.
	var second []ticket
	for range 7 {
		second = append(second, admit(t, l))
	}
	l.release(second[0], 0, &llm.Error{Kind: llm.KindOverloaded, Status: 529})
	if got := l.Stats().Limit; got != 4 {
		t.Fatalf("after a 529 in the next window: limit %d, want 4 (7×0.7)", got)
	}
	for _, tk := range second[1:] {
		l.release(tk, 0, nil)
	}
}

func TestCutFloor(t *testing.T) {
	l := New("m", Config{InitialConcurrency: 10, MinConcurrency: 3, MaxConcurrency: 10}, nil)
	for range 20 {
		l.release(admit(t, l), 0, rateLimited(0))
	}
	if s := l.Stats(); s.Limit != 3 || s.Cuts != 20 {
		t.Fatalf("limit %d after %d cuts, want the floor 3 after 20", s.Limit, s.Cuts)
	}
}

func TestGrowth(t *testing.T) {
	// saturate keeps the limiter full and ends one call with success n
	// times, as a steady stream of callers would.
	saturate := func(l *Limiter, n int) {
		var held []ticket
		for range n {
			for l.inFlight < int(l.limit) {
				held = append(held, admit(t, l))
			}
			l.release(held[0], 0, nil)
			held = held[1:]
		}
		l.mu.Lock()
		l.inFlight -= len(held) // end the rest without feedback
		l.mu.Unlock()
	}
	t.Run("slow start", func(t *testing.T) {
		l := New("m", Config{InitialConcurrency: 2, MaxConcurrency: 8}, nil)
		saturate(l, 3)
		if got := l.Stats().Limit; got != 5 {
			t.Fatalf("limit %d after 3 successes in slow start, want 5", got)
		}
		saturate(l, 10)
		if got := l.Stats().Limit; got != 8 {
			t.Fatalf("limit %d, want the max 8", got)
		}
	})
	t.Run("additive after a cut", func(t *testing.T) {
		l := New("m", Config{InitialConcurrency: 6, MaxConcurrency: 100}, nil)
		held := make([]ticket, 6)
		for i := range held {
			held[i] = admit(t, l)
		}
		l.release(held[0], 0, rateLimited(0)) // 6 × 0.7 → 4
		for _, tk := range held[1:] {
			l.release(tk, 0, nil) // admitted before the cut: still count as successes
		}
		l.mu.Lock()
		l.limit = 4 // pin the start of the additive phase
		l.mu.Unlock()
		// +1/limit per success: 10 successes take 4 to a little over 6.
		saturate(l, 10)
		if got := l.Stats().Limit; got != 6 {
			t.Fatalf("limit %d after 10 successes from 4, want 6", got)
		}
	})
	t.Run("idle limit does not grow", func(t *testing.T) {
		l := New("m", Config{InitialConcurrency: 8, MaxConcurrency: 100}, nil)
		for range 50 {
			l.release(admit(t, l), 0, nil) // one call at a time
		}
		if got := l.Stats().Limit; got != 8 {
			t.Fatalf("limit %d after successes at load 1, want 8 unchanged", got)
		}
	})
}

func TestPriorityOrder(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		l := New("m", Config{MaxConcurrency: 1}, testLogger(t))
		ctx := t.Context()
		hold := make(chan struct{})
		go l.Do(ctx, Worker, 0, func(context.Context) (int64, error) { <-hold; return 0, nil })
		synctest.Wait()

		var mu sync.Mutex
		var order []string
		var wg sync.WaitGroup
		for _, c := range []struct {
			name string
			p    Priority
		}{
			{"worker1", Worker}, {"worker2", Worker}, {"verifier1", Verifier},
			{"lead1", Lead}, {"verifier2", Verifier}, {"lead2", Lead}, {"worker3", Worker},
		} {
			wg.Go(func() {
				err := l.Do(ctx, c.p, 0, func(context.Context) (int64, error) {
					mu.Lock()
					order = append(order, c.name)
					mu.Unlock()
					return 0, nil
				})
				if err != nil {
					t.Error(err)
				}
			})
			synctest.Wait() // queued in this order
		}
		if got := l.Stats().Waiting; got != [numPriorities]int{3, 2, 2} {
			t.Fatalf("waiting %v, want [3 2 2]", got)
		}
		close(hold)
		wg.Wait()
		want := "lead1 lead2 verifier1 verifier2 worker1 worker2 worker3"
		if got := strings.Join(order, " "); got != want {
			t.Fatalf("admission order %q, want %q", got, want)
		}
	})
}

func TestRetryAfterHonoured(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		l := New("m", Config{}, testLogger(t))
		start := time.Now()
		var sent []time.Duration
		err := l.Do(t.Context(), Worker, 0, func(context.Context) (int64, error) {
			sent = append(sent, time.Since(start))
			if len(sent) == 1 {
				return 0, rateLimited(2 * time.Second)
			}
			return 0, nil
		})
		if err != nil {
			t.Fatal(err)
		}
		if len(sent) != 2 || sent[1] < 2*time.Second {
			t.Fatalf("sent at %v, want the retry at least 2s after the 429", sent)
		}
	})
}

func TestRetryAfterPausesEveryone(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		l := New("m", Config{MaxConcurrency: 10}, testLogger(t))
		start := time.Now()
		if err := l.Do(t.Context(), Lead, 0, func(context.Context) (int64, error) {
			return 0, &llm.Error{Kind: llm.KindAuth, RetryAfter: 3 * time.Second}
		}); llm.KindOf(err) != llm.KindAuth {
			t.Fatalf("got %v, want the auth error back at once", err)
		}
		if d := l.Stats().PausedFor; d != 3*time.Second {
			t.Fatalf("paused for %v, want 3s", d)
		}
		// Another caller, of any priority, is not sent before the pause ends.
		var at time.Duration
		if err := l.Do(t.Context(), Lead, 0, func(context.Context) (int64, error) {
			at = time.Since(start)
			return 0, nil
		}); err != nil {
			t.Fatal(err)
		}
		if at != 3*time.Second {
			t.Fatalf("next call sent at %v, want 3s", at)
		}
	})
}

// A retry-after of a day is a refusal: the call fails at once with an
// error that says what the server asked, and no other call is paused.
// One of five minutes, the cap, is still waited for.
func TestRetryAfterBeyondCap(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		l := New("m", Config{}, testLogger(t))
		start := time.Now()
		sent := 0
		err := l.Do(t.Context(), Worker, 0, func(context.Context) (int64, error) {
			sent++
			return 0, rateLimited(24 * time.Hour)
		})
		if sent != 1 || time.Since(start) != 0 || llm.KindOf(err) != llm.KindRateLimited {
			t.Fatalf("sent %d times, returned after %v: %v; want one call failed at once, still a 429", sent, time.Since(start), err)
		}
		if msg := err.Error(); !strings.Contains(msg, "24h0m0s") || !strings.Contains(msg, "5m0s") {
			t.Errorf("the error does not say the wait asked and the cap: %q", msg)
		}
		if d := l.Stats().PausedFor; d != 0 {
			t.Fatalf("paused for %v after a wait beyond the cap", d)
		}

		start = time.Now()
		sent = 0
		err = l.Do(t.Context(), Worker, 0, func(context.Context) (int64, error) {
			if sent++; sent == 1 {
				return 0, rateLimited(5 * time.Minute)
			}
			return 0, nil
		})
		if err != nil || sent != 2 || time.Since(start) != 5*time.Minute {
			t.Fatalf("a 5-minute retry-after: %v after %d calls and %v; want a retry 5m later", err, sent, time.Since(start))
		}
	})
}

func TestBackoffThenSuccess(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		cfg := Config{BaseBackoff: 100 * time.Millisecond, MaxBackoff: 150 * time.Millisecond}
		l := New("m", cfg, testLogger(t))
		start := time.Now()
		var sent []time.Duration
		fails := []error{kindErr(llm.KindTransient), kindErr(llm.KindOverloaded), kindErr(llm.KindTransient)}
		err := l.Do(t.Context(), Worker, 0, func(context.Context) (int64, error) {
			sent = append(sent, time.Since(start))
			if len(sent) <= len(fails) {
				return 0, fails[len(sent)-1]
			}
			return 0, nil
		})
		if err != nil {
			t.Fatal(err)
		}
		if len(sent) != 4 {
			t.Fatalf("%d calls, want 4", len(sent))
		}
		// Retry n waits at most min(Max, Base·2ⁿ⁻¹): 100, 150, 150 ms.
		for i, ceil := range []time.Duration{100, 150, 150} {
			if gap := sent[i+1] - sent[i]; gap < 0 || gap > ceil*time.Millisecond {
				t.Errorf("retry %d after %v, want within [0, %dms]", i+1, gap, ceil)
			}
		}
		if s := l.Stats(); s.Retries != 3 || s.Throttled != 1 || s.Admitted != 4 {
			t.Errorf("stats %+v, want 3 retries, 1 throttled, 4 admitted", s)
		}
	})
}

func TestBackoffBounds(t *testing.T) {
	l := New("m", Config{BaseBackoff: time.Second, MaxBackoff: 10 * time.Second}, nil)
	var sawSpread bool
	for n := 1; n <= 70; n++ {
		ceil := 10 * time.Second
		if n <= 4 {
			ceil = time.Second << (n - 1)
		}
		for range 20 {
			d := l.backoff(n)
			if d < 0 || d > ceil {
				t.Fatalf("backoff(%d) = %v, want within [0, %v]", n, d, ceil)
			}
			if d != l.backoff(n) {
				sawSpread = true
			}
		}
	}
	if !sawSpread {
		t.Fatal("backoff is not jittered")
	}
}

func TestNonRetryable(t *testing.T) {
	for _, err := range []error{
		kindErr(llm.KindAuth),
		kindErr(llm.KindBadRequest),
		kindErr(llm.KindContextTooLong),
		kindErr(llm.KindCancelled),
		context.Canceled,
		errors.New("some unclassified failure"),
	} {
		t.Run(err.Error(), func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				l := New("m", Config{}, nil)
				start := time.Now()
				calls := 0
				got := l.Do(t.Context(), Worker, 0, func(context.Context) (int64, error) {
					calls++
					return 0, err
				})
				if got != err || calls != 1 || time.Since(start) != 0 {
					t.Fatalf("got %v after %d calls and %v, want %v at once", got, calls, time.Since(start), err)
				}
			})
		})
	}
}

func TestRetryCap(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		l := New("m", Config{MaxAttempts: 4, BaseBackoff: time.Second}, nil)
		calls := 0
		err := l.Do(t.Context(), Worker, 0, func(context.Context) (int64, error) {
			calls++
			return 0, rateLimited(0)
		})
		if calls != 4 {
			t.Fatalf("%d calls, want 4", calls)
		}
		if !errors.Is(err, llm.ErrRateLimited) || llm.KindOf(err) != llm.KindRateLimited {
			t.Fatalf("got %v (kind %v), want the last 429, still classified", err, llm.KindOf(err))
		}
		if !strings.Contains(err.Error(), "4 attempts") {
			t.Errorf("error %q does not say how many attempts were made", err)
		}
	})
}

func TestCancelWhileWaiting(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		l := New("m", Config{MaxConcurrency: 1}, testLogger(t))
		hold := make(chan struct{})
		go l.Do(t.Context(), Worker, 0, func(context.Context) (int64, error) { <-hold; return 0, nil })
		synctest.Wait()

		ctx, cancel := context.WithCancel(t.Context())
		errc := make(chan error, 1)
		go func() {
			errc <- l.Do(ctx, Lead, 0, func(context.Context) (int64, error) {
				t.Error("cancelled waiter was admitted")
				return 0, nil
			})
		}()
		ran := make(chan struct{})
		go l.Do(t.Context(), Worker, 0, func(context.Context) (int64, error) { close(ran); return 0, nil })
		synctest.Wait()
		if s := l.Stats(); s.Waiting != [numPriorities]int{1, 0, 1} {
			t.Fatalf("waiting %v, want one worker and one lead", s.Waiting)
		}

		cancel()
		err := <-errc
		if !errors.Is(err, context.Canceled) || llm.KindOf(err) != llm.KindCancelled {
			t.Fatalf("got %v, want a cancellation", err)
		}
		if s := l.Stats(); s.InFlight != 1 || s.Waiting != [numPriorities]int{1, 0, 0} {
			t.Fatalf("after cancel: in flight %d waiting %v, want 1 and the worker alone", s.InFlight, s.Waiting)
		}
		close(hold)
		<-ran
		synctest.Wait()
		if s := l.Stats(); s.InFlight != 0 || s.Admitted != 2 {
			t.Fatalf("in flight %d admitted %d, want 0 and 2", s.InFlight, s.Admitted)
		}
	})
}

func TestCancelWhileWaitingToRetry(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		l := New("m", Config{}, nil)
		ctx, cancel := context.WithTimeout(t.Context(), time.Second)
		defer cancel()
		start := time.Now()
		err := l.Do(ctx, Worker, 0, func(context.Context) (int64, error) {
			return 0, rateLimited(time.Minute)
		})
		if !errors.Is(err, context.DeadlineExceeded) || llm.KindOf(err) != llm.KindCancelled {
			t.Fatalf("got %v, want the deadline", err)
		}
		if d := time.Since(start); d != time.Second {
			t.Fatalf("returned after %v, want 1s", d)
		}
	})
}

func TestRequestBucket(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		l := New("m", Config{RPM: 60, MaxConcurrency: 100}, nil) // 1 a second, burst 60
		start := time.Now()
		var last time.Duration
		for i := range 63 {
			if err := l.Do(t.Context(), Worker, 0, func(context.Context) (int64, error) {
				last = time.Since(start)
				return 0, nil
			}); err != nil {
				t.Fatal(err)
			}
			want := time.Duration(max(0, i-59)) * time.Second
			if last < want || last > want+time.Millisecond {
				t.Fatalf("call %d sent at %v, want %v", i+1, last, want)
			}
		}
	})
}

func TestTokenBucket(t *testing.T) {
	tests := []struct {
		name  string
		used  int64 // reported by the first call
		first error
		want  time.Duration // when the second call, charged 1000, is sent
	}{
		{"estimate kept", 0, nil, 10 * time.Second},
		{"corrected down", 4000, nil, 0},
		{"corrected up", 7000, nil, 20 * time.Second},
		{"refunded on failure", 0, kindErr(llm.KindBadRequest), 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				l := New("m", Config{TPM: 6000}, nil) // 100 a second, burst 6000
				start := time.Now()
				l.Do(t.Context(), Worker, 6000, func(context.Context) (int64, error) { return tt.used, tt.first })
				var at time.Duration
				l.Do(t.Context(), Worker, 1000, func(context.Context) (int64, error) {
					at = time.Since(start)
					return 0, nil
				})
				if at < tt.want || at > tt.want+time.Millisecond {
					t.Fatalf("second call sent at %v, want %v", at, tt.want)
				}
			})
		})
	}
}

func TestTokenBucketHugeCall(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		l := New("m", Config{TPM: 600}, nil)
		// Larger than a minute's worth: admitted once the bucket is full.
		if err := l.Do(t.Context(), Worker, 1e6, func(context.Context) (int64, error) { return 0, nil }); err != nil {
			t.Fatal(err)
		}
	})
}

func TestSet(t *testing.T) {
	s := NewSet(nil)
	a := s.Get("a", Config{MaxConcurrency: 3})
	if s.Get("a", Config{MaxConcurrency: 9}) != a {
		t.Fatal("second Get of a returned another limiter")
	}
	if s.Get("b", Config{}) == a {
		t.Fatal("b shares a's limiter")
	}
	if got := a.cfg.MaxConcurrency; got != 3 {
		t.Fatalf("max %d, want the first config's 3", got)
	}
	if all := s.All(); len(all) != 2 || all["a"].Limit != 3 {
		t.Fatalf("All() = %v", all)
	}
}

func TestConfigDefaults(t *testing.T) {
	c := Config{}.withDefaults()
	want := Config{MaxConcurrency: 64, MinConcurrency: 1, InitialConcurrency: 8, MaxAttempts: 6,
		MaxRetryAfter: 5 * time.Minute, BaseBackoff: 500 * time.Millisecond, MaxBackoff: 30 * time.Second}
	if c != want {
		t.Fatalf("defaults %+v, want %+v", c, want)
	}
	c = Config{MaxConcurrency: 4, MinConcurrency: 9, InitialConcurrency: 100}.withDefaults()
	if c.MinConcurrency != 4 || c.InitialConcurrency != 4 {
		t.Fatalf("bounds not clamped: %+v", c)
	}
}

func TestCancelledHeadWakesNext(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		l := New("m", Config{TPM: 6000}, testLogger(t)) // 100 tokens a second
		start := time.Now()
		l.Do(t.Context(), Worker, 6000, nop) // empties the bucket

		// A needs 3000 tokens (30 s) and is first in line; B, behind it,
		// needs 100 (1 s) but waits its turn.
		ctxA, cancelA := context.WithCancel(t.Context())
		errA := make(chan error, 1)
		go func() { errA <- l.Do(ctxA, Worker, 3000, nop) }()
		synctest.Wait()
		var atB time.Duration
		doneB := make(chan struct{})
		go func() {
			defer close(doneB)
			l.Do(t.Context(), Worker, 100, func(context.Context) (int64, error) {
				atB = time.Since(start)
				return 0, nil
			})
		}()
		synctest.Wait()

		time.Sleep(5 * time.Second)
		if atB != 0 {
			t.Fatalf("B overtook A at %v", atB)
		}
		cancelA()
		if err := <-errA; !errors.Is(err, context.Canceled) {
			t.Fatalf("A: %v", err)
		}
		<-doneB
		if atB != 5*time.Second {
			t.Fatalf("B sent at %v, want 5s, as soon as A left the line", atB)
		}
	})
}

// TestStress runs many callers with retries, pauses and cancellations
// against a small limit and checks the invariants: never more calls in
// flight than the limit allows, every call accounted for, nothing left
// waiting.
func TestStress(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		const maxConc = 5
		l := New("m", Config{MaxConcurrency: maxConc, BaseBackoff: time.Millisecond, MaxBackoff: 20 * time.Millisecond, MaxAttempts: 20}, nil)
		var (
			mu         sync.Mutex
			inFlight   int
			peak       int
			calls      int
			ok, cancel int
		)
		var wg sync.WaitGroup
		for i := range 300 {
			wg.Go(func() {
				ctx := t.Context()
				if i%7 == 0 {
					var c context.CancelFunc
					ctx, c = context.WithTimeout(ctx, time.Duration(i%50)*time.Millisecond)
					defer c()
				}
				err := l.Do(ctx, Priority(i%3), 10, func(ctx context.Context) (int64, error) {
					mu.Lock()
					inFlight++
					peak = max(peak, inFlight)
					calls++
					n := calls
					mu.Unlock()
					defer func() {
						mu.Lock()
						inFlight--
						mu.Unlock()
					}()
					time.Sleep(time.Duration(n%10) * time.Millisecond)
					switch n % 11 {
					case 3:
						return 0, rateLimited(time.Duration(n%5) * time.Millisecond)
					case 5:
						return 0, kindErr(llm.KindOverloaded)
					case 7:
						return 0, kindErr(llm.KindTransient)
					}
					return 12, nil
				})
				mu.Lock()
				defer mu.Unlock()
				switch {
				case err == nil:
					ok++
				case llm.KindOf(err) == llm.KindCancelled:
					cancel++
				default:
					t.Errorf("caller %d: %v", i, err)
				}
			})
		}
		wg.Wait()
		s := l.Stats()
		t.Logf("%d ok, %d cancelled, %d calls, peak %d; %+v", ok, cancel, calls, peak, s)
		if peak > maxConc || s.MaxInFlight > maxConc {
			t.Errorf("peak in flight %d (limiter saw %d), want at most %d", peak, s.MaxInFlight, maxConc)
		}
		if ok+cancel != 300 || ok < 250 {
			t.Errorf("%d ok + %d cancelled, want 300 with most ok", ok, cancel)
		}
		if s.InFlight != 0 || s.Waiting != [numPriorities]int{} || int(s.Admitted) != calls {
			t.Errorf("not drained or miscounted: %+v, %d calls", s, calls)
		}
	})
}
