package budget

import (
	"fmt"

	"github.com/hive-swarm/hive/internal/price"
)

// An Aside is capacity held on a budget for one later call that nothing
// else may use: the lead's final turn. It is made by [Budget.SetAside].
//
// While the Aside is held, its money, tokens and call count as reserved on
// its budget and every ancestor, so workers below (or beside) cannot
// reserve it. When the rest is exhausted, [Aside.Reserve] turns it into the
// final call's reservation. That reservation ignores closed flags and
// wall deadlines (the final turn is what the engine does once time is up
// or the run is stopping) but never the money, token or call limits: it
// may use the set-aside plus whatever else is left, nothing more.
type Aside struct {
	r *Reservation
}

// SetAside holds usd, tokens and one call on b for a later final turn,
// subject to the same checks as [Budget.Reserve].
func (b *Budget) SetAside(usd price.Amount, tokens int64) (*Aside, error) {
	r, err := b.Reserve(usd, tokens)
	if err != nil {
		return nil, err
	}
	b.t.mu.Lock()
	r.asideLocked(1)
	b.t.mu.Unlock()
	return &Aside{r: r}, nil
}

// USD returns the amount set aside.
func (a *Aside) USD() price.Amount { return a.r.usd }

// Tokens returns the tokens set aside.
func (a *Aside) Tokens() int64 { return a.r.tokens }

// Reserve releases the set-aside and reserves usd and tokens for the
// final call in one step, on the set-aside's budget. If the call does not
// fit, the set-aside stays held and the error says why. An Aside serves one
// reservation; a second Reserve, or one after Release, is an error
// matching [ErrInvalid].
func (a *Aside) Reserve(usd price.Amount, tokens int64) (*Reservation, error) {
	if usd < 0 || tokens < 0 {
		return nil, fmt.Errorf("%w: reserve %s, %d tokens", ErrInvalid, usd, tokens)
	}
	b := a.r.b
	b.t.mu.Lock()
	defer b.t.mu.Unlock()
	if a.r.done {
		return nil, fmt.Errorf("%w: set-aside on %q already used or released", ErrInvalid, b.path)
	}
	b.holdLocked(-a.r.usd, -a.r.tokens, -1)
	if err := b.admitLocked(usd, tokens, true); err != nil {
		b.holdLocked(a.r.usd, a.r.tokens, 1)
		return nil, err
	}
	a.r.asideLocked(-1)
	a.r.done = true
	b.holdLocked(usd, tokens, 1)
	return &Reservation{b: b, usd: usd, tokens: tokens}, nil
}

// Release returns the set-aside to its budget unused (the run ended
// without needing a final turn). It does nothing after Reserve.
func (a *Aside) Release() { a.r.Release() }
