package limit

import (
	"context"
	"sync/atomic"
	"time"
)

// A Trace tells a caller what the limiter did to its calls: how long they
// waited for admission or to be retried (rate limits, a 429's
// retry-after, backoff after a failure), and how many attempts were sent
// again. Attach one with [WithTrace]; it is safe for concurrent use.
type Trace struct {
	waited      atomic.Int64 // nanoseconds
	retries     atomic.Int64
	rateLimited atomic.Int64
}

// Waited is the time the traced calls spent waiting in the limiter.
func (t *Trace) Waited() time.Duration { return time.Duration(t.waited.Load()) }

// Retries is how many times the traced calls were sent again.
func (t *Trace) Retries() int { return int(t.retries.Load()) }

// RateLimited is how many times the traced calls were answered 429 (rate
// limited), the attempts that were sent again included.
func (t *Trace) RateLimited() int { return int(t.rateLimited.Load()) }

type traceKey struct{}

// WithTrace returns ctx carrying t: calls made through a [Limiter] with
// the returned context add to it.
func WithTrace(ctx context.Context, t *Trace) context.Context {
	return context.WithValue(ctx, traceKey{}, t)
}

func traceOf(ctx context.Context) *Trace {
	t, _ := ctx.Value(traceKey{}).(*Trace)
	return t
}

// since adds the time since start to t's wait, when t is set (the clock is
// read only for traced calls).
func (t *Trace) since(start time.Time) {
	if t != nil {
		t.waited.Add(int64(time.Since(start)))
	}
}

// start returns the time now when t is set.
func (t *Trace) start() time.Time {
	if t == nil {
		return time.Time{}
	}
	return time.Now()
}
