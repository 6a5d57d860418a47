// Package budget holds a run's spending inside limits that can never be
// overrun.
//
// Budgets form a tree that mirrors the swarm: the run at the root, a
// budget per node below it. A model call first reserves its worst-case cost
// (the prompt's tokens plus MaxTokens of output, priced by package price)
// with [Budget.Reserve]; only if that succeeds is the call sent. When the
// answer arrives, [Reservation.Settle] releases the hold and charges what
// the call really cost; a call never sent, or failed without a bill, is
// released with [Reservation.Release]. Because every call holds its worst case before it
// starts, the sum of what is spent and what is held never passes a limit,
// however many calls run at once: the limit is enforced before the money is
// spent, not discovered after.
//
// A reservation counts on its budget and on every ancestor, atomically: all
// of them admit it or none is charged. A child's [Limits] are a cap on the
// child, not money set apart for it: siblings draw on their parent's
// remainder first come, first served. To keep capacity for one purpose
// that others cannot eat into, hold it with [Budget.SetAside]; the engine
// does so for the lead's final turn, the answer it gives with what it has
// once the workers have exhausted the rest.
//
// Exhaustion is an [*ExhaustedError] that matches [ErrExhausted]; callers
// branch on it (stop delegating, give the lead its final turn), they do not
// parse it.
//
// # Locking
//
// One mutex per tree (held by the root) guards every budget's counters,
// closed flag and every reservation's state; nothing is held across a call
// to the outside world. Names, limits and deadlines are fixed when a budget
// is made and read without the lock.
package budget

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"time"

	"github.com/hive-swarm/hive/internal/price"
)

// Limits bound a budget. A zero field means no limit at this level; the
// budget is still bounded by its ancestors.
type Limits struct {
	USD    price.Amount
	Tokens int64 // input of every kind plus output
	Calls  int64
	// Wall is how long the budget accepts reservations, counted from its
	// creation.
	Wall time.Duration
}

// Unlimited is the Remaining value of a quantity no budget on the path to
// the root limits.
const Unlimited = -1

// ErrExhausted matches every [*ExhaustedError].
var ErrExhausted = errors.New("budget exhausted")

// ErrClosed matches an [*ExhaustedError] caused by [Budget.Close].
var ErrClosed = errors.New("budget closed")

// ErrInvalid is returned for a negative reservation or a set-aside used
// twice.
var ErrInvalid = errors.New("invalid budget operation")

// Limit names what ran out.
const (
	LimitUSD    = "usd"
	LimitTokens = "tokens"
	LimitCalls  = "calls"
	LimitWall   = "wall"
	LimitClosed = "closed"
)

// ExhaustedError says which budget refused a reservation and why.
type ExhaustedError struct {
	Budget string // path of the refusing budget, "run/lead/worker-3"
	Limit  string // LimitUSD, LimitTokens, LimitCalls, LimitWall or LimitClosed
	// Need is what the reservation asked for and Left what the budget had
	// left, in the limit's unit: nano-dollars, tokens, calls (1), or for
	// the wall limit nanoseconds (Left is the negative time past the
	// deadline). Both are zero for LimitClosed.
	Need, Left int64
}

func (e *ExhaustedError) Error() string {
	s := "budget " + strconv.Quote(e.Budget) + ": "
	switch e.Limit {
	case LimitUSD:
		return s + fmt.Sprintf("usd exhausted: need %s, %s left", price.Amount(e.Need), price.Amount(e.Left))
	case LimitWall:
		return s + fmt.Sprintf("wall-clock limit passed %s ago", time.Duration(-e.Left))
	case LimitClosed:
		return s + "closed"
	}
	return s + fmt.Sprintf("%s exhausted: need %d, %d left", e.Limit, e.Need, e.Left)
}

// Is makes errors.Is(err, ErrExhausted) true for every ExhaustedError, and
// errors.Is(err, ErrClosed) for one caused by Close.
func (e *ExhaustedError) Is(target error) bool {
	return target == ErrExhausted || (target == ErrClosed && e.Limit == LimitClosed)
}

// tree is what all budgets of one tree share.
type tree struct {
	mu sync.Mutex
	// freed, when not nil, is closed (and cleared) when a hold ends:
	// what [Budget.ReserveWait] waits on.
	freed chan struct{}
	// afterLocked, when set (tests only), is called with the lock held
	// after every change of b's counters.
	afterLocked func(b *Budget)
}

// A Budget is one node of the tree. Its methods are safe for concurrent use.
type Budget struct {
	t        *tree
	parent   *Budget
	path     string
	limits   Limits
	deadline time.Time // zero: no wall limit of its own

	// Guarded by t.mu.
	nchild         int
	closed         bool
	spent          price.Amount
	reserved       price.Amount
	tokens         int64 // settled
	tokensReserved int64
	calls          int64 // settled
	callsReserved  int64
	overruns       int64
	overrunUSD     price.Amount
	overrunTokens  int64
	// asideUSD and asideTokens are the part of the holds that are
	// set-asides: held until a final turn, not soon given back.
	asideUSD    price.Amount
	asideTokens int64
}

// New returns a root budget named "run". Its wall limit starts now.
func New(l Limits) *Budget { return NewNamed("run", l) }

// NewNamed returns a root budget with the given name.
func NewNamed(name string, l Limits) *Budget {
	return newBudget(&tree{}, nil, name, l)
}

// Child returns a budget below b, named after its position ("run/1"). It
// admits a reservation only if it, b and every ancestor of b all can. Its
// wall limit starts now.
func (b *Budget) Child(l Limits) *Budget {
	b.t.mu.Lock()
	b.nchild++
	n := b.nchild
	b.t.mu.Unlock()
	return newBudget(b.t, b, strconv.Itoa(n), l)
}

// ChildNamed is Child with a name ("lead", "node-12") for errors and stats.
func (b *Budget) ChildNamed(name string, l Limits) *Budget {
	b.t.mu.Lock()
	b.nchild++
	b.t.mu.Unlock()
	return newBudget(b.t, b, name, l)
}

func newBudget(t *tree, parent *Budget, name string, l Limits) *Budget {
	b := &Budget{t: t, parent: parent, path: name, limits: l}
	if parent != nil {
		b.path = parent.path + "/" + name
	}
	if l.Wall > 0 {
		b.deadline = time.Now().Add(l.Wall)
	}
	return b
}

// Name returns b's path from the root, "run/lead/3".
func (b *Budget) Name() string { return b.path }

// Limits returns b's own limits.
func (b *Budget) Limits() Limits { return b.limits }

// Deadline returns the earliest wall-clock deadline of b and its
// ancestors, and false when none has a wall limit. Callers put it on the
// context of the calls they make.
func (b *Budget) Deadline() (time.Time, bool) {
	var d time.Time
	for x := b; x != nil; x = x.parent {
		if !x.deadline.IsZero() && (d.IsZero() || x.deadline.Before(d)) {
			d = x.deadline
		}
	}
	return d, !d.IsZero()
}

// Close stops b and every budget below it from admitting new
// reservations (the run was cancelled). Reservations already held can
// still be settled or released. Closing twice does nothing.
func (b *Budget) Close() {
	b.t.mu.Lock()
	b.closed = true
	b.t.mu.Unlock()
}

// A Reservation is money and tokens held for one call. Exactly one of
// Settle and Release ends it; later calls of either do nothing.
type Reservation struct {
	b      *Budget
	usd    price.Amount
	tokens int64
	done   bool // guarded by b.t.mu
	aside  bool // a set-aside's hold; guarded by b.t.mu
}

// USD returns the amount held.
func (r *Reservation) USD() price.Amount { return r.usd }

// Tokens returns the tokens held.
func (r *Reservation) Tokens() int64 { return r.tokens }

// Reserve holds usd and tokens for one call on b and every ancestor, all
// or nothing. It fails with an [*ExhaustedError] when any of them is
// closed, past its wall deadline, or would pass a limit of money, tokens
// or calls counting what is spent and what is already held.
func (b *Budget) Reserve(usd price.Amount, tokens int64) (*Reservation, error) {
	if usd < 0 || tokens < 0 {
		return nil, fmt.Errorf("%w: reserve %s, %d tokens", ErrInvalid, usd, tokens)
	}
	b.t.mu.Lock()
	defer b.t.mu.Unlock()
	if err := b.admitLocked(usd, tokens, false); err != nil {
		return nil, err
	}
	b.holdLocked(usd, tokens, 1)
	return &Reservation{b: b, usd: usd, tokens: tokens}, nil
}

// ReserveWait is [Budget.Reserve] that, when the money or tokens a call
// needs are only held by calls in flight (not spent, not set aside),
// waits for those holds to end rather than fail: a wave whose worst
// cases do not all fit at once runs as its settled bills make room. It
// fails as Reserve does once what is spent (and set aside) leaves no
// room, and with the context's cause when ctx ends first.
func (b *Budget) ReserveWait(ctx context.Context, usd price.Amount, tokens int64) (*Reservation, error) {
	if usd < 0 || tokens < 0 {
		return nil, fmt.Errorf("%w: reserve %s, %d tokens", ErrInvalid, usd, tokens)
	}
	for {
		b.t.mu.Lock()
		err := b.admitLocked(usd, tokens, false)
		if err == nil {
			b.holdLocked(usd, tokens, 1)
			b.t.mu.Unlock()
			return &Reservation{b: b, usd: usd, tokens: tokens}, nil
		}
		if !b.heldBackLocked(err.(*ExhaustedError), usd, tokens) {
			b.t.mu.Unlock()
			return nil, err
		}
		if b.t.freed == nil {
			b.t.freed = make(chan struct{})
		}
		freed := b.t.freed
		b.t.mu.Unlock()
		select {
		case <-freed:
		case <-ctx.Done():
			return nil, context.Cause(ctx)
		}
	}
}

// heldBackLocked reports whether the refusal e of a reservation of usd
// and tokens on b comes only from holds of calls in flight: the refusing
// budget would admit it once they end.
func (b *Budget) heldBackLocked(e *ExhaustedError, usd price.Amount, tokens int64) bool {
	x := b
	for x != nil && x.path != e.Budget {
		x = x.parent
	}
	if x == nil {
		return false
	}
	switch e.Limit {
	case LimitUSD:
		return x.reserved > x.asideUSD && usd <= x.limits.USD-x.spent-x.asideUSD
	case LimitTokens:
		return x.tokensReserved > x.asideTokens && tokens <= x.limits.Tokens-x.tokens-x.asideTokens
	}
	return false
}

// freedLocked wakes the reservations waiting for holds to end.
func (t *tree) freedLocked() {
	if t.freed != nil {
		close(t.freed)
		t.freed = nil
	}
}

// asideLocked counts (sign 1) or uncounts (-1) r as a set-aside on its
// budget and every ancestor.
func (r *Reservation) asideLocked(sign int64) {
	r.aside = sign > 0
	for x := r.b; x != nil; x = x.parent {
		x.asideUSD += price.Amount(sign) * r.usd
		x.asideTokens += sign * r.tokens
	}
}

// admitLocked reports whether a reservation of usd, tokens and one call
// fits b and every ancestor. final (the lead's last turn, from a set-aside)
// ignores closed flags and wall deadlines, never money, tokens or calls.
func (b *Budget) admitLocked(usd price.Amount, tokens int64, final bool) error {
	var now time.Time // read once, only if some budget has a deadline
	for x := b; x != nil; x = x.parent {
		l := x.limits
		if !final && x.closed {
			return &ExhaustedError{Budget: x.path, Limit: LimitClosed}
		}
		if !final && !x.deadline.IsZero() {
			if now.IsZero() {
				now = time.Now()
			}
			if !now.Before(x.deadline) {
				return &ExhaustedError{Budget: x.path, Limit: LimitWall, Left: int64(x.deadline.Sub(now))}
			}
		}
		if l.USD > 0 {
			if left := l.USD - x.spent - x.reserved; usd > left {
				return &ExhaustedError{Budget: x.path, Limit: LimitUSD, Need: int64(usd), Left: int64(max(left, 0))}
			}
		}
		if l.Tokens > 0 {
			if left := l.Tokens - x.tokens - x.tokensReserved; tokens > left {
				return &ExhaustedError{Budget: x.path, Limit: LimitTokens, Need: tokens, Left: max(left, 0)}
			}
		}
		if l.Calls > 0 {
			if left := l.Calls - x.calls - x.callsReserved; left < 1 {
				return &ExhaustedError{Budget: x.path, Limit: LimitCalls, Need: 1, Left: max(left, 0)}
			}
		}
	}
	return nil
}

// holdLocked adds (or with negative arguments removes) a hold on b and
// every ancestor.
func (b *Budget) holdLocked(usd price.Amount, tokens, calls int64) {
	for x := b; x != nil; x = x.parent {
		x.reserved += usd
		x.tokensReserved += tokens
		x.callsReserved += calls
		if h := b.t.afterLocked; h != nil {
			h(x)
		}
	}
}

// Settle ends r: it releases the hold and charges what the call cost. If
// that is more than was held (a hold that was not the worst case), the
// actual is charged anyway and recorded as an overrun on every budget of
// the path, which [Budget.Stats] reports. Negative arguments count as zero.
func (r *Reservation) Settle(usd price.Amount, tokens int64) {
	usd, tokens = max(usd, 0), max(tokens, 0)
	t := r.b.t
	t.mu.Lock()
	defer t.mu.Unlock()
	if r.done {
		return
	}
	r.done = true
	t.freedLocked()
	over := usd > r.usd || tokens > r.tokens
	for x := r.b; x != nil; x = x.parent {
		x.reserved -= r.usd
		x.tokensReserved -= r.tokens
		x.callsReserved--
		x.spent += usd
		x.tokens += tokens
		x.calls++
		if over {
			x.overruns++
			x.overrunUSD += max(usd-r.usd, 0)
			x.overrunTokens += max(tokens-r.tokens, 0)
		}
		if h := t.afterLocked; h != nil {
			h(x)
		}
	}
}

// Release ends r without a charge: the call was never sent, or failed
// without a bill. The call does not count against a calls limit.
func (r *Reservation) Release() {
	t := r.b.t
	t.mu.Lock()
	defer t.mu.Unlock()
	if r.done {
		return
	}
	r.done = true
	if r.aside {
		r.asideLocked(-1)
	}
	r.b.holdLocked(-r.usd, -r.tokens, -1)
	t.freedLocked()
}

// Stats is a snapshot of one budget. Spent, Reserved and the call and
// token counts include every budget below it.
type Stats struct {
	Name   string
	Limits Limits

	Spent    price.Amount // settled
	Reserved price.Amount // held by calls in flight and set-asides
	// RemainingUSD is what a new reservation here could still hold: the
	// least left on the path to the root, or [Unlimited].
	RemainingUSD price.Amount

	Tokens          int64 // settled
	TokensReserved  int64
	RemainingTokens int64 // or Unlimited

	Calls          int64 // settled
	CallsReserved  int64 // in flight, set-asides included
	RemainingCalls int64 // or Unlimited

	// Overruns counts settled calls that cost more than they held, and
	// OverrunUSD and OverrunTokens the excess. They should stay zero;
	// when they are not, the worst-case estimate is wrong.
	Overruns      int64
	OverrunUSD    price.Amount
	OverrunTokens int64

	Deadline time.Time // earliest on the path; zero when none
	Closed   bool      // b or an ancestor is closed
}

// Stats returns a snapshot of b.
func (b *Budget) Stats() Stats {
	b.t.mu.Lock()
	defer b.t.mu.Unlock()
	s := Stats{
		Name: b.path, Limits: b.limits,
		Spent: b.spent, Reserved: b.reserved,
		Tokens: b.tokens, TokensReserved: b.tokensReserved,
		Calls: b.calls, CallsReserved: b.callsReserved,
		Overruns: b.overruns, OverrunUSD: b.overrunUSD, OverrunTokens: b.overrunTokens,
		RemainingUSD: Unlimited, RemainingTokens: Unlimited, RemainingCalls: Unlimited,
	}
	s.Deadline, _ = b.Deadline()
	least := func(cur, left int64) int64 {
		left = max(left, 0)
		if cur == Unlimited || left < cur {
			return left
		}
		return cur
	}
	for x := b; x != nil; x = x.parent {
		s.Closed = s.Closed || x.closed
		if x.limits.USD > 0 {
			s.RemainingUSD = price.Amount(least(int64(s.RemainingUSD), int64(x.limits.USD-x.spent-x.reserved)))
		}
		if x.limits.Tokens > 0 {
			s.RemainingTokens = least(s.RemainingTokens, x.limits.Tokens-x.tokens-x.tokensReserved)
		}
		if x.limits.Calls > 0 {
			s.RemainingCalls = least(s.RemainingCalls, x.limits.Calls-x.calls-x.callsReserved)
		}
	}
	return s
}

// Charge records spend that already happened without asking b's leave:
// the calls of a resumed run that its journal replays instead of sending
// again. It counts calls calls on b and every ancestor.
func (b *Budget) Charge(usd price.Amount, tokens, calls int64) {
	usd, tokens = max(usd, 0), max(tokens, 0)
	t := b.t
	t.mu.Lock()
	defer t.mu.Unlock()
	for x := b; x != nil; x = x.parent {
		x.spent += usd
		x.tokens += tokens
		x.calls += calls
		if h := t.afterLocked; h != nil {
			h(x)
		}
	}
}
