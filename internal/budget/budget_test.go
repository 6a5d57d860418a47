package budget

import (
	"context"
	"errors"
	"math/rand/v2"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/hive-swarm/hive/internal/price"
)

// watchInvariant makes every change of a budget's counters check, inside the
// lock, that no limit of money, tokens or calls is passed by what is spent
// plus what is held. It returns a function that reports the violations seen.
func watchInvariant(t *testing.T, root *Budget) func() {
	t.Helper()
	var bad []string // guarded by the tree lock
	root.t.afterLocked = func(x *Budget) {
		l := x.limits
		switch {
		case l.USD > 0 && x.spent+x.reserved > l.USD:
			bad = append(bad, x.path+": usd "+(x.spent+x.reserved).String()+" > "+l.USD.String())
		case l.Tokens > 0 && x.tokens+x.tokensReserved > l.Tokens:
			bad = append(bad, x.path+": tokens")
		case l.Calls > 0 && x.calls+x.callsReserved > l.Calls:
			bad = append(bad, x.path+": calls")
		case x.reserved < 0 || x.tokensReserved < 0 || x.callsReserved < 0:
			bad = append(bad, x.path+": negative hold")
		}
	}
	return func() {
		t.Helper()
		root.t.mu.Lock()
		defer root.t.mu.Unlock()
		if len(bad) > 0 {
			t.Errorf("%d invariant violations, first: %s", len(bad), bad[0])
		}
	}
}

// TestRaceReserveSettle is the headline proof: 1,000 goroutines race to
// reserve-then-settle from a budget that covers exactly 100 worst-case
// calls. Checked inside the lock after every change: spent+reserved never
// passes the limit on any budget of the tree.
func TestRaceReserveSettle(t *testing.T) {
	const hold = 7_777_777 * price.NanoDollar // an awkward worst case
	const holdTokens = 4096
	for _, tc := range []struct {
		name   string
		random bool // actual cost random in [0, hold], else equal to hold
	}{{"actual equals hold", false}, {"actual random up to hold", true}} {
		t.Run(tc.name, func(t *testing.T) {
			root := New(Limits{USD: 100 * hold})
			check := watchInvariant(t, root)
			// Workers reserve through a 3-level tree: root, 4 leads, 4
			// workers each; the root limit is the binding one.
			var leaves []*Budget
			for range 4 {
				lead := root.Child(Limits{})
				for range 4 {
					leaves = append(leaves, lead.Child(Limits{}))
				}
			}
			var ok, refused atomic.Int64
			var wg sync.WaitGroup
			start := make(chan struct{})
			for i := range 1000 {
				wg.Go(func() {
					rng := rand.New(rand.NewPCG(uint64(i), 7))
					<-start
					r, err := leaves[i%len(leaves)].Reserve(hold, holdTokens)
					if err != nil {
						if !errors.Is(err, ErrExhausted) {
							t.Errorf("Reserve: %v", err)
						}
						refused.Add(1)
						return
					}
					ok.Add(1)
					// Hold a while, as a call in flight does, so that many
					// reservations overlap at the edge of the limit.
					time.Sleep(time.Duration(rng.IntN(200)) * time.Microsecond)
					actual, tokens := hold, int64(holdTokens)
					if tc.random {
						actual = price.Amount(rng.Int64N(int64(hold) + 1))
						tokens = rng.Int64N(holdTokens + 1)
					}
					r.Settle(actual, tokens)
				})
			}
			close(start)
			wg.Wait()
			check()
			s := root.Stats()
			if s.Spent > 100*hold || s.Reserved != 0 || s.CallsReserved != 0 {
				t.Errorf("final stats: %+v", s)
			}
			if ok.Load()+refused.Load() != 1000 || s.Calls != ok.Load() || s.Overruns != 0 {
				t.Errorf("ok %d, refused %d, calls %d, overruns %d", ok.Load(), refused.Load(), s.Calls, s.Overruns)
			}
			if !tc.random && (ok.Load() != 100 || s.Spent != 100*hold || s.RemainingUSD != 0) {
				t.Errorf("%d reservations succeeded, spent %s, remaining %s; want exactly 100, all, none", ok.Load(), s.Spent, s.RemainingUSD)
			}
			if tc.random && ok.Load() < 100 {
				t.Errorf("only %d reservations succeeded; cheaper actuals must free capacity", ok.Load())
			}
			var leafSpent price.Amount
			for _, l := range leaves {
				leafSpent += l.Stats().Spent
			}
			if leafSpent != s.Spent {
				t.Errorf("leaves spent %s, root %s", leafSpent, s.Spent)
			}
		})
	}
}

func TestNestedChildren(t *testing.T) {
	root := NewNamed("run", Limits{USD: 10 * price.Dollar})
	check := watchInvariant(t, root)
	a := root.ChildNamed("a", Limits{})
	b := root.ChildNamed("b", Limits{})
	r, err := a.Reserve(6*price.Dollar, 0)
	if err != nil {
		t.Fatal(err)
	}
	r.Settle(6*price.Dollar, 100)
	_, err = b.Reserve(5*price.Dollar, 0)
	var ex *ExhaustedError
	if !errors.As(err, &ex) || ex.Budget != "run" || ex.Limit != LimitUSD || ex.Need != int64(5*price.Dollar) || ex.Left != int64(4*price.Dollar) {
		t.Fatalf("sibling over the parent's remainder: %v", err)
	}
	if !strings.Contains(err.Error(), `budget "run": usd exhausted: need $5.00, $4.00 left`) {
		t.Errorf("message: %v", err)
	}
	if _, err := b.Reserve(4*price.Dollar, 0); err != nil {
		t.Fatalf("exact remainder: %v", err)
	}
	if s := b.Stats(); s.RemainingUSD != 0 || s.Reserved != 4*price.Dollar {
		t.Errorf("b stats: %+v", s)
	}
	if s := root.Stats(); s.Spent != 6*price.Dollar || s.Reserved != 4*price.Dollar || s.Tokens != 100 {
		t.Errorf("root stats: %+v", s)
	}
	// A grandchild is bounded by every ancestor.
	g := a.Child(Limits{USD: 100 * price.Dollar})
	if g.Name() != "run/a/1" {
		t.Errorf("name %q", g.Name())
	}
	if _, err := g.Reserve(1, 0); !errors.As(err, &ex) || ex.Budget != "run" {
		t.Errorf("grandchild over root: %v", err)
	}
	check()
}

func TestChildLimitSmallerThanParent(t *testing.T) {
	root := New(Limits{USD: 10 * price.Dollar, Tokens: 1_000_000})
	c := root.ChildNamed("w", Limits{USD: price.Dollar, Tokens: 1000})
	_, err := c.Reserve(2*price.Dollar, 10)
	var ex *ExhaustedError
	if !errors.As(err, &ex) || ex.Budget != "run/w" || ex.Limit != LimitUSD {
		t.Fatalf("over the child's limit: %v", err)
	}
	if _, err := c.Reserve(price.Dollar/2, 1001); !errors.As(err, &ex) || ex.Limit != LimitTokens || ex.Left != 1000 {
		t.Fatalf("over the child's tokens: %v", err)
	}
	if _, err := c.Reserve(price.Dollar, 1000); err != nil {
		t.Fatal(err)
	}
	// The parent still has the rest.
	if _, err := root.Reserve(9*price.Dollar, 0); err != nil {
		t.Fatal(err)
	}
	if s := root.Stats(); s.RemainingUSD != 0 || s.RemainingTokens != 1_000_000-1000 {
		t.Errorf("root: %+v", s)
	}
}

func TestReleaseReturnsCapacity(t *testing.T) {
	root := New(Limits{USD: 3, Tokens: 30, Calls: 1})
	check := watchInvariant(t, root)
	r, err := root.Reserve(3, 30)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := root.Reserve(0, 0); !errors.Is(err, ErrExhausted) {
		t.Fatalf("second call while one is held: %v", err)
	}
	r.Release()
	r.Release()     // no effect
	r.Settle(3, 30) // no effect after Release
	s := root.Stats()
	if s.Reserved != 0 || s.Spent != 0 || s.Calls != 0 || s.CallsReserved != 0 || s.RemainingUSD != 3 || s.RemainingCalls != 1 {
		t.Fatalf("after release: %+v", s)
	}
	r2, err := root.Reserve(3, 30)
	if err != nil {
		t.Fatalf("after release: %v", err)
	}
	r2.Settle(2, 20)
	r2.Settle(3, 30) // no effect
	if s := root.Stats(); s.Spent != 2 || s.Tokens != 20 || s.Calls != 1 || s.RemainingCalls != 0 {
		t.Fatalf("after settle: %+v", s)
	}
	check()
}

func TestCallsAndTokensLimits(t *testing.T) {
	root := New(Limits{Calls: 5})
	w := root.Child(Limits{Tokens: 100, Calls: 3})
	for i := range 3 {
		r, err := w.Reserve(0, 30)
		if err != nil {
			t.Fatalf("call %d: %v", i, err)
		}
		r.Settle(0, 30)
	}
	var ex *ExhaustedError
	if _, err := w.Reserve(0, 1); !errors.As(err, &ex) || ex.Limit != LimitCalls || ex.Budget != "run/1" {
		t.Fatalf("4th call on the worker: %v", err)
	}
	w2 := root.Child(Limits{})
	for range 2 {
		if _, err := w2.Reserve(0, 0); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := w2.Reserve(0, 0); !errors.As(err, &ex) || ex.Limit != LimitCalls || ex.Budget != "run" {
		t.Fatalf("6th call on the root: %v", err)
	}
	w3 := root.Child(Limits{Tokens: 10})
	if _, err := w3.Reserve(0, 11); !errors.As(err, &ex) || ex.Limit != LimitTokens || ex.Need != 11 || ex.Left != 10 {
		t.Fatalf("tokens: %v", err)
	}
	if _, err := w3.Reserve(-1, 0); !errors.Is(err, ErrInvalid) {
		t.Fatalf("negative: %v", err)
	}
}

func TestWallDeadline(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		root := New(Limits{Wall: time.Second})
		fast := root.Child(Limits{Wall: 500 * time.Millisecond})
		slow := root.Child(Limits{Wall: 5 * time.Second})
		free := root.Child(Limits{})
		t0 := time.Now()
		if d, ok := fast.Deadline(); !ok || !d.Equal(t0.Add(500*time.Millisecond)) {
			t.Errorf("fast deadline %v %v", d, ok)
		}
		if d, ok := slow.Deadline(); !ok || !d.Equal(t0.Add(time.Second)) {
			t.Errorf("slow deadline %v %v; want the root's", d, ok)
		}
		if _, ok := New(Limits{}).Deadline(); ok {
			t.Error("deadline without a wall limit")
		}
		if _, err := fast.Reserve(1, 1); err != nil {
			t.Fatal(err)
		}
		time.Sleep(500 * time.Millisecond)
		var ex *ExhaustedError
		if _, err := fast.Reserve(1, 1); !errors.As(err, &ex) || ex.Limit != LimitWall || ex.Budget != "run/1" {
			t.Fatalf("past the child's deadline: %v", err)
		}
		if _, err := free.Reserve(1, 1); err != nil {
			t.Fatalf("before the root's deadline: %v", err)
		}
		time.Sleep(600 * time.Millisecond)
		_, err := slow.Reserve(1, 1)
		if !errors.As(err, &ex) || ex.Limit != LimitWall || ex.Budget != "run" || ex.Left != int64(-100*time.Millisecond) {
			t.Fatalf("past the root's deadline: %v", err)
		}
		if !strings.Contains(err.Error(), "wall-clock limit passed 100ms ago") {
			t.Errorf("message: %v", err)
		}
	})
}

// TestSetAsideForLead: the lead's final turn stays funded while workers
// exhaust everything else, and can be taken after the run is closed.
func TestSetAsideForLead(t *testing.T) {
	const d = price.Dollar
	root := New(Limits{USD: 10 * d, Tokens: 10_000})
	check := watchInvariant(t, root)
	lead := root.ChildNamed("lead", Limits{})
	aside, err := lead.SetAside(2*d, 2000)
	if err != nil {
		t.Fatal(err)
	}
	// Workers, below the lead and beside it, exhaust the rest.
	var wg sync.WaitGroup
	var ok atomic.Int64
	for i := range 50 {
		parent := root
		if i%2 == 0 {
			parent = lead
		}
		w := parent.Child(Limits{})
		wg.Go(func() {
			for {
				r, err := w.Reserve(d/4, 100)
				if err != nil {
					return
				}
				ok.Add(1)
				r.Settle(d/4, 100)
			}
		})
	}
	wg.Wait()
	if ok.Load() != 32 { // $8 / $0.25
		t.Errorf("workers made %d calls; want 32", ok.Load())
	}
	if s := root.Stats(); s.RemainingUSD != 0 || s.Reserved != 2*d {
		t.Fatalf("after workers: %+v", s)
	}
	root.Close()
	if _, err := lead.Reserve(1, 0); !errors.Is(err, ErrClosed) || !errors.Is(err, ErrExhausted) {
		t.Fatalf("closed: %v", err)
	}
	// Larger than the set-aside and the rest: refused, set-aside kept.
	var ex *ExhaustedError
	if _, err := aside.Reserve(2*d+1, 100); !errors.As(err, &ex) || ex.Limit != LimitUSD || ex.Left != int64(2*d) {
		t.Fatalf("over the set-aside: %v", err)
	}
	if s := root.Stats(); s.Reserved != 2*d || s.CallsReserved != 1 {
		t.Fatalf("set-aside lost after a refused final turn: %+v", s)
	}
	r, err := aside.Reserve(2*d, 2000)
	if err != nil {
		t.Fatalf("final turn: %v", err)
	}
	r.Settle(d, 1500)
	if _, err := aside.Reserve(1, 1); !errors.Is(err, ErrInvalid) {
		t.Errorf("second use: %v", err)
	}
	aside.Release() // no effect after use
	s := root.Stats()
	if s.Spent != 9*d || s.Reserved != 0 || s.Calls != 33 || s.Overruns != 0 || !s.Closed {
		t.Errorf("final: %+v", s)
	}
	check()
}

func TestSetAsideRelease(t *testing.T) {
	root := New(Limits{USD: 10})
	a, err := root.SetAside(4, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := root.Reserve(7, 0); !errors.Is(err, ErrExhausted) {
		t.Fatalf("set-aside not held: %v", err)
	}
	a.Release()
	if _, err := root.Reserve(10, 0); err != nil {
		t.Fatalf("after release: %v", err)
	}
	if _, err := a.Reserve(1, 0); !errors.Is(err, ErrInvalid) {
		t.Errorf("reserve after release: %v", err)
	}
	if _, err := root.SetAside(1, 0); !errors.Is(err, ErrExhausted) {
		t.Errorf("set-aside beyond the limit: %v", err)
	}
}

func TestOverrunRecorded(t *testing.T) {
	root := New(Limits{USD: 100})
	c := root.Child(Limits{USD: 50})
	r, err := c.Reserve(40, 10)
	if err != nil {
		t.Fatal(err)
	}
	r.Settle(60, 12) // the estimate was wrong: charged anyway
	for _, b := range []*Budget{root, c} {
		s := b.Stats()
		if s.Spent != 60 || s.Overruns != 1 || s.OverrunUSD != 20 || s.OverrunTokens != 2 {
			t.Errorf("%s: %+v", b.Name(), s)
		}
	}
	if s := c.Stats(); s.RemainingUSD != 0 {
		t.Errorf("remaining after overrun: %s", s.RemainingUSD)
	}
	if _, err := c.Reserve(1, 0); !errors.Is(err, ErrExhausted) {
		t.Errorf("reserve after overrun: %v", err)
	}
	if _, err := root.Reserve(40, 0); err != nil {
		t.Errorf("root's rest: %v", err)
	}
}

func TestCloseStopsSubtree(t *testing.T) {
	root := New(Limits{})
	a, b := root.Child(Limits{}), root.Child(Limits{})
	held, err := a.Reserve(5, 5)
	if err != nil {
		t.Fatal(err)
	}
	a.Close()
	if _, err := a.Child(Limits{}).Reserve(1, 1); !errors.Is(err, ErrClosed) {
		t.Errorf("below a closed budget: %v", err)
	}
	if _, err := b.Reserve(1, 1); err != nil {
		t.Errorf("sibling of a closed budget: %v", err)
	}
	held.Settle(5, 5) // a call in flight still settles
	if s := root.Stats(); s.Spent != 5 || s.Closed || !a.Stats().Closed {
		t.Errorf("stats: %+v", s)
	}
	if s := root.Stats(); s.RemainingUSD != Unlimited || s.RemainingTokens != Unlimited || s.RemainingCalls != Unlimited {
		t.Errorf("unlimited: %+v", s)
	}
}

// BenchmarkReserveSettle measures Reserve+Settle on the leaves of a
// 3-level tree from parallel goroutines, against the bare cost of the
// tree-wide mutex as a baseline.
func BenchmarkReserveSettle(b *testing.B) {
	b.Run("baseline-mutex", func(b *testing.B) {
		var mu sync.Mutex
		var n int64
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				mu.Lock()
				n++
				mu.Unlock()
			}
		})
	})
	b.Run("baseline-time-now", func(b *testing.B) {
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				_ = time.Now()
			}
		})
	})
	b.Run("1-level", func(b *testing.B) {
		root := New(Limits{USD: price.Amount(1 << 62)})
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				r, err := root.Reserve(1000, 10)
				if err != nil {
					b.Fatal(err)
				}
				r.Settle(900, 9)
			}
		})
	})
	b.Run("3-level", func(b *testing.B) {
		root := New(Limits{USD: price.Amount(1 << 62), Tokens: 1 << 62, Wall: time.Hour})
		var leaves []*Budget
		for range 8 {
			lead := root.Child(Limits{USD: price.Amount(1 << 61)})
			for range 8 {
				leaves = append(leaves, lead.Child(Limits{Calls: 1 << 40}))
			}
		}
		var next atomic.Int64
		b.RunParallel(func(pb *testing.PB) {
			leaf := leaves[next.Add(1)%int64(len(leaves))]
			for pb.Next() {
				r, err := leaf.Reserve(1000, 10)
				if err != nil {
					b.Fatal(err)
				}
				r.Settle(900, 9)
			}
		})
	})
}

// TestReserveWait: a reservation that does not fit only because calls in
// flight hold the money waits for them to end and then fits; one that
// cannot fit once they end (the money is spent, or set aside) fails as
// Reserve does; and the wait ends with its context.
func TestReserveWait(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		root := New(Limits{USD: price.Dollar, Tokens: 1000})
		check := watchInvariant(t, root)
		pool := root.Child(Limits{})
		held, err := pool.Reserve(80*price.Cent, 100)
		if err != nil {
			t.Fatal(err)
		}
		type result struct {
			r   *Reservation
			err error
		}
		got := make(chan result, 1)
		go func() {
			r, err := pool.ReserveWait(t.Context(), 50*price.Cent, 100)
			got <- result{r, err}
		}()
		synctest.Wait() // the waiter is blocked: nothing has returned
		select {
		case res := <-got:
			t.Fatalf("ReserveWait returned while the money was held: %v", res.err)
		default:
		}
		held.Settle(30*price.Cent, 50) // $0.70 left
		res := <-got
		if res.err != nil || res.r.USD() != 50*price.Cent {
			t.Fatalf("after the hold settled: %v", res.err)
		}

		// Spent money does not come back: a waiter for more than is left
		// once the holds end fails when they do.
		go func() {
			r, err := pool.ReserveWait(t.Context(), 60*price.Cent, 100)
			got <- result{r, err}
		}()
		synctest.Wait()
		res.r.Settle(50*price.Cent, 50) // $0.20 left
		if res := <-got; !errors.Is(res.err, ErrExhausted) {
			t.Fatalf("waiting for spent money: %v, want exhausted", res.err)
		}

		// A set-aside is not given back soon: no wait for it.
		aside, err := root.SetAside(15*price.Cent, 10)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := pool.ReserveWait(t.Context(), 10*price.Cent, 10); !errors.Is(err, ErrExhausted) {
			t.Fatalf("held by a set-aside: %v, want exhausted at once", err)
		}
		aside.Release()

		// Tokens likewise, and the wait ends with its context.
		tok, err := pool.Reserve(0, 800)
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithCancelCause(t.Context())
		go func() {
			r, err := pool.ReserveWait(ctx, 0, 300)
			got <- result{r, err}
		}()
		synctest.Wait()
		stop := errors.New("the task was cancelled")
		cancel(stop)
		if res := <-got; !errors.Is(res.err, stop) {
			t.Fatalf("cancelled wait: %v", res.err)
		}
		tok.Release()
		check()
	})
}
