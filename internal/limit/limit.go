// Package limit admits model calls so that a swarm of callers shares one
// provider's capacity without losing requests to it.
//
// A [Limiter] guards one model and is shared by every caller in the process
// (a [Set] hands out one per model name). [Limiter.Do] runs a call once it is
// admitted, and retries it when the provider pushes back:
//
//   - Concurrency adapts, AIMD style. Every success grows the limit by one
//     per limit-many successes (by one per success in a short slow start,
//     until the first congestion signal); a 429 or an overloaded answer cuts
//     it by 30%. At most one cut per window: a
//     429 from a call admitted before the last cut was sent under the old
//     limit and says nothing new, so a burst of them does not collapse the
//     limit to [Config.MinConcurrency].
//   - Requests-per-minute and tokens-per-minute token buckets, refilled
//     continuously up to one minute's worth. A call is charged its estimated
//     tokens when admitted and corrected with the real usage after.
//   - Retry-After is honoured for everyone: a server that says "wait 2 s"
//     pauses all admissions of the limiter for 2 s, and the call it refused
//     is not sent again before then. A wait longer than
//     [Config.MaxRetryAfter] (5 minutes) is a refusal, not pacing: the call
//     fails at once with an error that says what the server asked, and
//     nothing is paused, so that one header cannot hold a run for a day.
//   - Transient and overloaded failures are retried after a jittered
//     exponential backoff, up to [Config.MaxAttempts] calls in all.
//     Failures that a retry cannot fix (auth, bad request, context too long,
//     cancelled) return at once. A 429 never loses a request: it waits and
//     retries; only when the attempts run out does the last error come back,
//     wrapped so that [llm.KindOf] still classifies it.
//   - Priorities: when slots are scarce a waiting [Lead] call is admitted
//     before any waiting [Verifier] call, and those before [Worker] calls;
//     FIFO within a priority, and a retried call keeps its original place.
//
// There is no background goroutine. Waiters queue in order and only the
// head of the queue ever waits on a timer (for a pause or a bucket to
// refill); releases, cancellations and admissions wake the next head. A
// waiter whose context ends leaves the queue at once.
package limit

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"sync"
	"time"

	"github.com/hive-swarm/hive/internal/llm"
)

// Priority orders waiting calls: higher is admitted first.
type Priority int

const (
	Worker   Priority = iota // worker calls: the bulk of the traffic
	Verifier                 // verifier and judge calls: they unblock workers
	Lead                     // the lead: every worker waits on it
	numPriorities
)

func (p Priority) String() string {
	switch p {
	case Worker:
		return "worker"
	case Verifier:
		return "verifier"
	case Lead:
		return "lead"
	}
	return fmt.Sprintf("priority(%d)", int(p))
}

// Config tunes a [Limiter]. The zero value of every field gets the default
// documented on it.
type Config struct {
	// MaxConcurrency bounds the calls in flight. Default 64.
	MaxConcurrency int
	// MinConcurrency is the floor of multiplicative cuts. Default 1.
	MinConcurrency int
	// InitialConcurrency is where the limit starts. Default
	// min(8, MaxConcurrency).
	InitialConcurrency int
	// RPM and TPM cap requests and tokens per minute. Zero means no cap.
	RPM, TPM int
	// CacheReadsFree leaves the tokens a call read from a prompt cache
	// out of TPM, as Anthropic counts its input-tokens-per-minute limit
	// on current models: uncached input and cache writes only
	// (https://docs.anthropic.com/en/api/rate-limits, "cache-aware
	// ITPM"). OpenAI counts every prompt token, cached or not.
	CacheReadsFree bool
	// MaxAttempts caps the calls made for one Do, the first included.
	// Default 6.
	MaxAttempts int
	// MaxRetryAfter is the longest retry-after honoured. Default 5
	// minutes: per-minute rate limits ask for seconds, never more than
	// their minute, and an overloaded service for seconds too; a server
	// that asks for longer is out of a quota that resets by the hour or
	// the day, or broken, and no run should sit idle waiting for it. A
	// call told to wait longer fails instead.
	MaxRetryAfter time.Duration
	// BaseBackoff and MaxBackoff shape the jittered exponential backoff
	// after a transient or overloaded failure that carries no retry-after:
	// the nth retry waits a uniformly random time in
	// [0, min(MaxBackoff, BaseBackoff·2ⁿ⁻¹)]. Defaults 500 ms and 30 s.
	BaseBackoff, MaxBackoff time.Duration
}

// cutFactor is the multiplicative decrease applied on a 429 or overload.
const cutFactor = 0.7

// defaultMaxRetryAfter is [Config.MaxRetryAfter]'s default.
const defaultMaxRetryAfter = 5 * time.Minute

func (c Config) withDefaults() Config {
	if c.MaxConcurrency <= 0 {
		c.MaxConcurrency = 64
	}
	if c.MinConcurrency <= 0 {
		c.MinConcurrency = 1
	}
	c.MinConcurrency = min(c.MinConcurrency, c.MaxConcurrency)
	if c.InitialConcurrency <= 0 {
		c.InitialConcurrency = min(8, c.MaxConcurrency)
	}
	c.InitialConcurrency = max(c.MinConcurrency, min(c.InitialConcurrency, c.MaxConcurrency))
	if c.MaxAttempts <= 0 {
		c.MaxAttempts = 6
	}
	if c.MaxRetryAfter <= 0 {
		c.MaxRetryAfter = defaultMaxRetryAfter
	}
	if c.BaseBackoff <= 0 {
		c.BaseBackoff = 500 * time.Millisecond
	}
	if c.MaxBackoff <= 0 {
		c.MaxBackoff = 30 * time.Second
	}
	c.MaxBackoff = max(c.MaxBackoff, c.BaseBackoff)
	return c
}

// Stats is a snapshot of a [Limiter].
type Stats struct {
	Limit       int                // current concurrency limit
	InFlight    int                // calls running now
	Waiting     [numPriorities]int // calls waiting for admission, by Priority
	Admitted    int64              // calls admitted, retries included
	Retries     int64              // calls sent again after a failure
	Throttled   int64              // 429 and overloaded answers received
	Cuts        int64              // multiplicative cuts of the limit
	MaxInFlight int                // most calls ever in flight at once
	PausedFor   time.Duration      // what is left of a retry-after pause
}

// A Limiter admits the calls of one model. It is safe for concurrent use
// and owns no goroutine; the zero value is not usable, call [New].
type Limiter struct {
	name string
	cfg  Config
	log  *slog.Logger

	mu sync.Mutex
	// Everything below is guarded by mu.
	limit       float64 // adaptive concurrency limit, in [Min, Max]
	ssthresh    float64 // below it the limit grows by one per success
	inFlight    int
	queue       queue
	nextSeq     uint64    // order of arrival of Do calls
	admitSeq    uint64    // number of admissions so far
	cutSeq      uint64    // admitSeq at the last cut
	pausedUntil time.Time // no admission before it
	rpm, tpm    bucket
	stats       Stats // counters only; the rest is filled by Stats()
}

// New returns a limiter for the model called name (used in logs and
// errors). A nil log discards.
func New(name string, cfg Config, log *slog.Logger) *Limiter {
	cfg = cfg.withDefaults()
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	l := &Limiter{
		name:     name,
		cfg:      cfg,
		log:      log.With("limiter", name),
		limit:    float64(cfg.InitialConcurrency),
		ssthresh: float64(cfg.MaxConcurrency),
	}
	now := time.Now()
	l.rpm = newBucket(cfg.RPM, now)
	l.tpm = newBucket(cfg.TPM, now)
	return l
}

// Name returns the limiter's model name.
func (l *Limiter) Name() string { return l.name }

// Stats returns a snapshot of l's state and counters.
func (l *Limiter) Stats() Stats {
	l.mu.Lock()
	defer l.mu.Unlock()
	s := l.stats
	s.Limit = int(l.limit)
	s.InFlight = l.inFlight
	for p := range s.Waiting {
		s.Waiting[p] = l.queue.byPrio[p].Len()
	}
	if d := time.Until(l.pausedUntil); d > 0 {
		s.PausedFor = d
	}
	return s
}

// Do runs call once l admits it at priority p, and again, within
// [Config.MaxAttempts], while it fails in a way a retry can fix. estTokens
// is charged to the tokens-per-minute bucket before each attempt; call
// returns the tokens it really used (zero when unknown), which corrects the
// charge.
//
// Do returns nil once call succeeds. It returns a non-retryable error of
// call as it is; the last error, wrapped, when the attempts run out or the
// server asks for a wait longer than [Config.MaxRetryAfter]; and ctx's
// error, wrapped, when ctx ends while waiting for admission or for a
// retry. [llm.KindOf] classifies all of them.
func (l *Limiter) Do(ctx context.Context, p Priority, estTokens int64, call func(ctx context.Context) (usedTokens int64, err error)) error {
	p = max(Worker, min(p, Lead))
	var seq uint64 // set by the first acquire; retries keep their place
	var lastErr error
	tr := traceOf(ctx)
	for attempt := 1; ; attempt++ {
		start := tr.start()
		t, err := l.acquire(ctx, p, &seq, estTokens)
		tr.since(start)
		if err != nil {
			if lastErr != nil {
				return fmt.Errorf("limit %s: waiting to retry (after %d attempts, last: %v): %w", l.name, attempt-1, lastErr, err)
			}
			return fmt.Errorf("limit %s: waiting for admission: %w", l.name, err)
		}
		used, err := call(ctx)
		l.release(t, used, err)
		if err == nil {
			return nil
		}
		if tr != nil && llm.KindOf(err) == llm.KindRateLimited {
			tr.rateLimited.Add(1)
		}
		var f *final
		if errors.As(err, &f) {
			return f.err
		}
		if !llm.KindOf(err).Retryable() {
			return err
		}
		lastErr = err
		wait := llm.RetryAfter(err)
		if wait > l.cfg.MaxRetryAfter {
			return fmt.Errorf("limit %s: the server asked to wait %v before a retry, longer than the %v a call waits: %w", l.name, wait, l.cfg.MaxRetryAfter, err)
		}
		if attempt >= l.cfg.MaxAttempts {
			return fmt.Errorf("limit %s: giving up after %d attempts: %w", l.name, attempt, err)
		}
		if wait <= 0 {
			wait = l.backoff(attempt)
		}
		l.mu.Lock()
		l.stats.Retries++
		l.mu.Unlock()
		if tr != nil {
			tr.retries.Add(1)
		}
		start = tr.start()
		err = sleep(ctx, wait)
		tr.since(start)
		if err != nil {
			return fmt.Errorf("limit %s: waiting to retry (after %d attempts, last: %v): %w", l.name, attempt, lastErr, err)
		}
	}
}

// final wraps an error that Do must return without retrying, whatever its
// kind: a stream that already delivered output.
type final struct{ err error }

func (f *final) Error() string { return f.err.Error() }
func (f *final) Unwrap() error { return f.err }

// backoff returns the full-jitter wait before retry number n (1-based).
func (l *Limiter) backoff(n int) time.Duration {
	ceil := l.cfg.MaxBackoff
	if n-1 < 32 {
		ceil = min(ceil, l.cfg.BaseBackoff<<(n-1))
	}
	if ceil <= 0 { // overflow
		ceil = l.cfg.MaxBackoff
	}
	return time.Duration(rand.Int64N(int64(ceil) + 1))
}

// sleep waits d or until ctx ends.
func sleep(ctx context.Context, d time.Duration) error {
	if d <= 0 {
		return ctx.Err()
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
