// Package hedge sends a second copy of a model call that is slower than
// most, and takes whichever answer comes first: the hedged requests of
// "The Tail at Scale" (Dean and Barroso, CACM 2013), which cut a
// service's 99.9th-percentile latency from 1,800 ms to 74 ms for 2% more
// requests.
//
// A [Tracker] learns a model's latencies from the calls it sees (wrap the
// model's client with [Timed]); a [Policy] says after how long a call is
// hedged (a quantile of those latencies, or a fixed delay) and caps the
// share of calls hedged, so that a slow provider is not sent twice the
// load. [Race] runs the two copies.
package hedge

import (
	"context"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/hive-swarm/hive/internal/llm"
)

// A Policy says when a model's calls are hedged.
type Policy struct {
	// Quantile, when set (0.5 to 0.999), hedges a call once it has taken
	// longer than that quantile of the model's recent calls.
	Quantile float64
	// Delay, when Quantile is zero, hedges a call after a fixed time.
	Delay time.Duration
	// MinSamples is how many calls the tracker must have seen before a
	// quantile is trusted (default 20).
	MinSamples int
	// MaxShare caps the share of calls that are hedged (default 0.1).
	MaxShare float64
	// To names the model that receives the hedge: another endpoint or
	// provider of the same kind of model; empty sends it to the same one.
	To string
}

// Parse reads a policy's "after" setting: a quantile such as "p95" or
// "p99.9", or a duration such as "1.5s".
func Parse(after string) (Policy, error) {
	s := strings.TrimSpace(after)
	if q, ok := strings.CutPrefix(s, "p"); ok {
		f, err := strconv.ParseFloat(q, 64)
		if err != nil || f < 50 || f >= 100 {
			return Policy{}, fmt.Errorf("hedge after %q: a quantile is p50 to p99.9", after)
		}
		return Policy{Quantile: f / 100}, nil
	}
	d, err := time.ParseDuration(s)
	if err != nil || d <= 0 {
		return Policy{}, fmt.Errorf("hedge after %q: want a quantile such as \"p95\" or a duration such as \"2s\"", after)
	}
	return Policy{Delay: d}, nil
}

// String says the policy in a word: "p95→other(≤10%)" hedges a call
// slower than the model's p95 to the model other, at most 10% of calls.
func (p Policy) String() string {
	when := p.Delay.String()
	if p.Quantile > 0 {
		when = "p" + strconv.FormatFloat(p.Quantile*100, 'f', -1, 64)
	}
	to := ""
	if p.To != "" {
		to = "→" + p.To
	}
	return fmt.Sprintf("%s%s(≤%s%%)", when, to, strconv.FormatFloat(p.Share()*100, 'f', -1, 64))
}

// Samples is MinSamples, or its default.
func (p Policy) Samples() int {
	if p.MinSamples > 0 {
		return p.MinSamples
	}
	return 20
}

// Share is MaxShare, or its default.
func (p Policy) Share() float64 {
	if p.MaxShare > 0 {
		return p.MaxShare
	}
	return 0.1
}

// window is how many recent latencies a tracker keeps.
const window = 512

// A Tracker keeps a model's recent call latencies and counts its calls
// and hedges. It is safe for concurrent use.
type Tracker struct {
	mu     sync.Mutex
	ring   [window]time.Duration
	n      int // latencies seen, of which the last min(n, window) are kept
	calls  int64
	hedges int64
}

// Observe records the latency of a call that completed.
func (t *Tracker) Observe(d time.Duration) {
	t.mu.Lock()
	t.ring[t.n%window] = d
	t.n++
	t.mu.Unlock()
}

// Quantile returns the q quantile of the recent latencies, and false when
// fewer than min have been seen.
func (t *Tracker) Quantile(q float64, minSeen int) (time.Duration, bool) {
	t.mu.Lock()
	k := min(t.n, window)
	if k == 0 || t.n < minSeen {
		t.mu.Unlock()
		return 0, false
	}
	xs := slices.Clone(t.ring[:k])
	t.mu.Unlock()
	slices.Sort(xs)
	i := int(q*float64(k)+0.5) - 1
	return xs[max(0, min(k-1, i))], true
}

// Delay returns how long a new call under p waits before it is hedged,
// and false when it is not to be hedged: too few latencies seen yet, or
// the share of calls hedged is at its cap. It counts the call. Its hedge
// is counted only when it is due ([Race] reserves it then), since the
// calls of a wave all start before any of theirs is.
func (t *Tracker) Delay(p Policy) (time.Duration, bool) {
	t.mu.Lock()
	t.calls++
	room := t.roomLocked(p.Share())
	t.mu.Unlock()
	if !room {
		return 0, false
	}
	if p.Quantile == 0 {
		return p.Delay, p.Delay > 0
	}
	return t.Quantile(p.Quantile, p.Samples())
}

// roomLocked reports whether one more hedge keeps the hedges within share
// of the calls counted.
func (t *Tracker) roomLocked(share float64) bool {
	return float64(t.hedges+1) <= share*float64(t.calls)
}

// reserve counts a hedge about to be sent, and false, counting nothing,
// when it would take the hedges over share of the calls started. The
// check and the count are one step, so that hedges coming due together
// cannot all pass the check before any is counted.
func (t *Tracker) reserve(share float64) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	if !t.roomLocked(share) {
		return false
	}
	t.hedges++
	return true
}

// unreserve gives back a hedge reserved but not sent.
func (t *Tracker) unreserve() {
	t.mu.Lock()
	t.hedges--
	t.mu.Unlock()
}

// Stats returns the calls counted by Delay and the hedges sent.
func (t *Tracker) Stats() (calls, hedges int64) {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.calls, t.hedges
}

type sentKey struct{}

// WithSent returns ctx carrying f, which a [Timed] model calls when it
// sends the request (after any wait for admission): a hedge's delay runs
// from then. A callback ctx already carries is called too, before f: a
// caller of [Race] and Race itself may both want to know.
func WithSent(ctx context.Context, f func()) context.Context {
	if prev, ok := ctx.Value(sentKey{}).(func()); ok {
		g := f
		f = func() { prev(); g() }
	}
	return context.WithValue(ctx, sentKey{}, f)
}

// Timed wraps m so that every call that completes records its latency in
// t, and tells the caller when it is sent (see [WithSent]).
func Timed(m llm.Model, t *Tracker) llm.Model { return &timed{m: m, t: t} }

type timed struct {
	m llm.Model
	t *Tracker
}

func (w *timed) start(ctx context.Context) time.Time {
	if f, ok := ctx.Value(sentKey{}).(func()); ok {
		f()
	}
	return time.Now()
}

func (w *timed) Generate(ctx context.Context, req *llm.Request) (*llm.Response, error) {
	start := w.start(ctx)
	resp, err := w.m.Generate(ctx, req)
	w.end(ctx, start, err)
	return resp, err
}

func (w *timed) Stream(ctx context.Context, req *llm.Request, fn func(llm.Delta)) (*llm.Response, error) {
	start := w.start(ctx)
	resp, err := w.m.Stream(ctx, req, fn)
	w.end(ctx, start, err)
	return resp, err
}

// end records a call's latency and, when it answered, calls its
// context's [withAnswered] callback.
func (w *timed) end(ctx context.Context, start time.Time, err error) {
	if err != nil {
		return
	}
	w.t.Observe(time.Since(start))
	if f, ok := ctx.Value(answeredKey{}).(func()); ok {
		f()
	}
}

type answeredKey struct{}

// withAnswered returns ctx carrying f, which a [Timed] model calls when
// the provider has answered, before the call returns through the model's
// limiter. [Race] stops the other copy from there: once the limiter let
// the winner's slot go, a copy waiting for one would be sent, only to be
// cancelled a moment later, and billed.
func withAnswered(ctx context.Context, f func()) context.Context {
	return context.WithValue(ctx, answeredKey{}, f)
}

// Result is what [Race] returns of one copy of a call.
type Result[T any] struct {
	Value T
	Err   error
	// Sent says the copy was started; Won that its answer was taken.
	Sent, Won bool
	// Took is how long the copy ran from when it reached the provider
	// (its context's [WithSent] callback, the first time) to its end; zero
	// if it never reached it. What a cancelled copy cost depends on it.
	Took time.Duration
}

// Race runs primary, and when it has not answered delay after it was
// sent (its context's [WithSent] callback), runs backup beside it; the
// first to succeed wins and the other's context is cancelled. When the
// first to end fails, Race waits for the other, if it was sent. backup
// returns ok false when it cannot be sent (a budget that refuses it, say);
// Race then waits for primary alone, as it does when the hedges already
// sent are p's share of the calls t counted.
//
// t counts the hedges, and learns from a primary cancelled because its
// hedge won: it ran for at least as long as it was waited for. Left out,
// the calls slow enough to be hedged would be missing from t's latencies
// and the hedge delay would drift down. A cancelled hedge teaches
// nothing: it started late and was stopped when the primary answered.
func Race[T any](ctx context.Context, t *Tracker, p Policy, delay time.Duration, primary func(ctx context.Context) (T, error), backup func(ctx context.Context) (T, bool, error)) (pr, br Result[T]) {
	pctx, pcancel := context.WithCancel(ctx)
	defer pcancel()
	bctx, bcancel := context.WithCancel(ctx)
	defer bcancel()
	// Each copy's callback runs before its function returns, so its time
	// is read safely once its end has been received.
	var psent, bsent time.Time
	sent := make(chan struct{})
	var once sync.Once
	pctx = WithSent(pctx, func() { once.Do(func() { psent = time.Now(); close(sent) }) })
	pctx = withAnswered(pctx, bcancel)
	bctx = WithSent(bctx, func() {
		if bsent.IsZero() { // a retry by the limiter is not a new copy
			bsent = time.Now()
		}
	})

	type end struct {
		backup bool
		r      Result[T]
		at     time.Time
	}
	ends := make(chan end, 2)
	go func() {
		v, err := primary(pctx)
		ends <- end{false, Result[T]{Value: v, Err: err, Sent: true}, time.Now()}
	}()
	pr.Sent = true
	var timer <-chan time.Time
	var censored time.Duration // the primary's time when cancelled for its hedge
	pending, won := 1, false
	for pending > 0 {
		select {
		case <-sent:
			sent = nil
			tm := time.NewTimer(delay)
			defer tm.Stop()
			timer = tm.C
		case <-timer:
			timer = nil
			if !t.reserve(p.Share()) {
				break // at the cap: wait for the primary alone
			}
			pending++
			br.Sent = true
			go func() {
				v, ok, err := backup(bctx)
				if !ok {
					t.unreserve()
				}
				ends <- end{true, Result[T]{Value: v, Err: err, Sent: ok}, time.Now()}
			}()
		case e := <-ends:
			pending--
			if e.backup {
				br = e.r
				br.Took = since(bsent, e.at)
			} else {
				pr = e.r
				pr.Took = since(psent, e.at)
				if censored > 0 && e.r.Err != nil {
					t.Observe(censored) // it ended cancelled, its latency unknown
				}
			}
			// No hedge is sent once the primary has ended: it won, or it
			// failed before a hedge was due (the limiter has retried it).
			timer = nil
			if e.r.Err == nil && e.r.Sent && !won {
				// The winner: stop the other, and wait for it to return.
				won = true
				if e.backup {
					br.Won = true
					censored = since(psent, e.at)
					pcancel()
				} else {
					pr.Won = true
					bcancel()
				}
			}
		}
	}
	return pr, br
}

// since is the time from start to end, zero when start is.
func since(start, end time.Time) time.Duration {
	if start.IsZero() {
		return 0
	}
	return end.Sub(start)
}
