package limit

import (
	"container/list"
	"context"
	"time"

	"github.com/hive-swarm/hive/internal/llm"
)

// A waiter is a call waiting for admission.
type waiter struct {
	prio Priority
	seq  uint64        // order of arrival of its Do call
	wake chan struct{} // buffered 1: a wake-up is never lost nor blocks
	elem *list.Element
}

// queue holds the waiters, one list per priority, each ordered by seq.
type queue struct {
	byPrio [numPriorities]list.List
}

func (q *queue) empty() bool {
	for p := range q.byPrio {
		if q.byPrio[p].Len() > 0 {
			return false
		}
	}
	return true
}

// head returns the waiter next in line, or nil.
func (q *queue) head() *waiter {
	for p := numPriorities - 1; p >= 0; p-- {
		if e := q.byPrio[p].Front(); e != nil {
			return e.Value.(*waiter)
		}
	}
	return nil
}

// insert places w by seq in its priority's list. New calls have the
// largest seq and go to the back at once; a retry walks back to its place.
func (q *queue) insert(w *waiter) {
	ls := &q.byPrio[w.prio]
	for e := ls.Back(); e != nil; e = e.Prev() {
		if e.Value.(*waiter).seq < w.seq {
			w.elem = ls.InsertAfter(w, e)
			return
		}
	}
	w.elem = ls.PushFront(w)
}

func (q *queue) remove(w *waiter) {
	q.byPrio[w.prio].Remove(w.elem)
	w.elem = nil
}

// A ticket is an admitted call.
type ticket struct {
	admitSeq uint64 // l.admitSeq when admitted
	charged  int64  // tokens charged to the TPM bucket
}

// acquire waits until l admits a call of priority p charged est tokens.
// *seq is the call's place in line: zero on a first attempt, which assigns
// it.
func (l *Limiter) acquire(ctx context.Context, p Priority, seq *uint64, est int64) (ticket, error) {
	if err := ctx.Err(); err != nil {
		return ticket{}, err
	}
	now := l.clock()
	l.mu.Lock()
	if *seq == 0 {
		l.nextSeq++
		*seq = l.nextSeq
	}
	if l.queue.empty() {
		if t, wait := l.tryAdmitLocked(est, now); wait == 0 {
			l.mu.Unlock()
			return t, nil
		}
	}
	w := &waiter{prio: p, seq: *seq, wake: make(chan struct{}, 1)}
	l.queue.insert(w)
	var timer *time.Timer
	defer func() {
		if timer != nil {
			timer.Stop()
		}
	}()
	for {
		wait := time.Duration(-1) // wait for a wake-up only
		if l.queue.head() == w {
			var t ticket
			if t, wait = l.tryAdmitLocked(est, now); wait == 0 {
				l.queue.remove(w)
				l.wakeHeadLocked() // the next in line may fit too
				l.mu.Unlock()
				return t, nil
			}
		}
		l.mu.Unlock()

		var tick <-chan time.Time
		if wait > 0 {
			if timer == nil {
				timer = time.NewTimer(wait)
			} else {
				timer.Reset(wait)
			}
			tick = timer.C
		}
		select {
		case <-w.wake:
		case <-tick:
		case <-ctx.Done():
			l.mu.Lock()
			wasHead := l.queue.head() == w
			l.queue.remove(w)
			if wasHead {
				l.wakeHeadLocked()
			}
			l.mu.Unlock()
			return ticket{}, ctx.Err()
		}
		if timer != nil {
			timer.Stop()
		}
		now = l.clock()
		l.mu.Lock()
	}
}

// clock returns the time when l has buckets, read before taking the lock,
// and the zero time otherwise: the clock costs more than the rest of an
// admission on some virtual machines.
func (l *Limiter) clock() time.Time {
	if l.rpm.rate > 0 || l.tpm.rate > 0 { // immutable after New
		return time.Now()
	}
	return time.Time{}
}

// tryAdmitLocked admits a call charged est tokens if a slot, the pause and
// the buckets allow it now, and returns its ticket and 0. Otherwise it
// returns how long to wait before trying again, or -1 when only a release
// can help.
// now is the time from [Limiter.clock]; when it is zero the clock is read
// only if a pause needs it.
func (l *Limiter) tryAdmitLocked(est int64, now time.Time) (ticket, time.Duration) {
	if l.inFlight >= int(l.limit) {
		return ticket{}, -1
	}
	var charge float64
	if !l.pausedUntil.IsZero() || !now.IsZero() {
		if now.IsZero() {
			now = time.Now()
		}
		if now.Before(l.pausedUntil) {
			return ticket{}, l.pausedUntil.Sub(now)
		}
		l.pausedUntil = time.Time{}
		charge = min(float64(max(est, 0)), l.tpm.capacity) // a huge call must fit some day
		if wait := max(l.rpm.wait(1, now), l.tpm.wait(charge, now)); wait > 0 {
			return ticket{}, wait
		}
		l.rpm.take(1)
		l.tpm.take(charge)
	}
	l.inFlight++
	l.admitSeq++
	l.stats.Admitted++
	l.stats.MaxInFlight = max(l.stats.MaxInFlight, l.inFlight)
	return ticket{admitSeq: l.admitSeq, charged: int64(charge)}, 0
}

// wakeHeadLocked wakes the waiter next in line, if any, to try again.
func (l *Limiter) wakeHeadLocked() {
	if w := l.queue.head(); w != nil {
		select {
		case w.wake <- struct{}{}:
		default:
		}
	}
}

// release ends an admitted call that used used tokens (zero if unknown)
// and failed with err (nil on success): it adapts the limit, honours a
// retry-after no longer than MaxRetryAfter (Do fails the call told to wait
// longer), corrects the token charge and wakes the next in line.
func (l *Limiter) release(t ticket, used int64, err error) {
	now := l.clock()
	var kind llm.Kind
	var ra time.Duration
	if err != nil {
		kind, ra = llm.KindOf(err), llm.RetryAfter(err)
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	load := l.inFlight
	l.inFlight--
	switch {
	case err == nil:
		l.growLocked(load)
	case kind == llm.KindRateLimited || kind == llm.KindOverloaded:
		l.stats.Throttled++
		if t.admitSeq > l.cutSeq {
			l.cutLocked(load, kind)
		}
	}
	if ra > 0 && ra <= l.cfg.MaxRetryAfter {
		if now.IsZero() {
			now = time.Now()
		}
		if until := now.Add(ra); until.After(l.pausedUntil) {
			l.pausedUntil = until
			l.log.Debug("pause", "retry_after", ra)
		}
	}
	if l.tpm.rate > 0 {
		l.tpm.refill(now)
		switch {
		case used > 0:
			l.tpm.take(float64(used - t.charged))
		case err != nil:
			l.tpm.take(-float64(t.charged)) // not billed: give the estimate back
		}
	}
	l.wakeHeadLocked()
}

// growLocked grows the limit after a success that ran with load calls in
// flight. A limit that is not being used is not grown: a success at low
// load says nothing about what the provider can take.
func (l *Limiter) growLocked(load int) {
	if float64(load) < l.limit/2 {
		return
	}
	if l.limit < l.ssthresh {
		l.limit++ // slow start: doubles per round trip
	} else {
		l.limit += 1 / l.limit
	}
	l.limit = min(l.limit, float64(l.cfg.MaxConcurrency))
}

// cutLocked cuts the limit after a throttle that ran with load calls in
// flight, and opens a new window: throttles of calls admitted before this
// point do not cut again. The cut is of the limit, not the load: a 429 at a
// low load is a rate limit rather than a concurrency one, and the growth
// rule keeps the limit within about twice the load anyway.
func (l *Limiter) cutLocked(load int, kind llm.Kind) {
	old := l.limit
	l.limit = max(float64(l.cfg.MinConcurrency), float64(int(l.limit*cutFactor)))
	l.ssthresh = l.limit
	l.cutSeq = l.admitSeq
	l.stats.Cuts++
	l.log.Debug("cut", "kind", kind.String(), "from", old, "to", l.limit, "in_flight", load)
}

// A bucket is a token bucket refilled continuously at rate per second up to
// capacity. Its level may go negative when a call used more than it was
// charged; admissions then wait for the debt to be repaid.
type bucket struct {
	rate     float64 // tokens per second; zero means unlimited
	capacity float64
	level    float64
	last     time.Time
}

// newBucket returns a full bucket of perMinute tokens a minute, or an
// unlimited one when perMinute is zero.
func newBucket(perMinute int, now time.Time) bucket {
	if perMinute <= 0 {
		return bucket{capacity: float64(^uint64(0) >> 1)}
	}
	c := float64(perMinute)
	return bucket{rate: c / 60, capacity: c, level: c, last: now}
}

func (b *bucket) refill(now time.Time) {
	if b.rate == 0 || !now.After(b.last) {
		return
	}
	b.level = min(b.capacity, b.level+now.Sub(b.last).Seconds()*b.rate)
	b.last = now
}

// wait returns how long until n tokens are available, zero if they are.
func (b *bucket) wait(n float64, now time.Time) time.Duration {
	if b.rate == 0 {
		return 0
	}
	b.refill(now)
	if b.level >= n {
		return 0
	}
	d := time.Duration((n - b.level) / b.rate * float64(time.Second))
	return max(d, time.Millisecond) // never spin on rounding
}

// take removes n tokens; a negative n gives them back.
func (b *bucket) take(n float64) {
	if b.rate == 0 {
		return
	}
	b.level = min(b.capacity, b.level-n)
}
