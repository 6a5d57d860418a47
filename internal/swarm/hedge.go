package swarm

import (
	"context"
	"errors"
	"math"
	"sync/atomic"
	"time"

	"github.com/hive-swarm/hive/internal/budget"
	"github.com/hive-swarm/hive/internal/hedge"
	"github.com/hive-swarm/hive/internal/llm"
	"github.com/hive-swarm/hive/internal/price"
	"github.com/hive-swarm/hive/internal/provider"
)

// hedgeRecord is what a hedged call journals of its second copy.
type hedgeRecord struct {
	// Model received the hedge; Won says its answer was taken.
	Model string `json:"model"`
	Won   bool   `json:"won,omitempty"`
	// Usage and CostNanos are the bill of the copy that lost. A copy
	// cancelled before it answered has no bill of its own: it is billed an
	// estimate (Estimated), the winner's output at the winner's speed over
	// the time the loser ran, never above its reservation (cancelledBill).
	Usage     llm.Usage `json:"usage"`
	CostNanos int64     `json:"cost_nanos"`
	Estimated bool      `json:"estimated,omitempty"`
}

// copyOf is one copy of a hedged call.
type copyOf struct {
	m    *provider.Model
	res  *budget.Reservation
	resp *llm.Response
}

// hedged sends req to the agent's model, reserved as res, and, when no
// answer has come delay after it was sent, a second copy to the model's
// hedge target; the first answer is taken and the other copy cancelled.
// Both are billed.
func (a *agent) hedged(ctx context.Context, req *llm.Request, res *budget.Reservation, delay time.Duration) (callRecord, error) {
	hm := a.model
	if to := a.model.Hedge.To; to != "" {
		m, err := a.r.e.models.Get(to)
		if err != nil {
			a.r.e.log.Warn("hedge target unavailable; the call goes unhedged", "model", a.model.Name, "to", to, "err", err)
			hm = nil
		} else {
			hm = m
		}
	}
	primary := func(ctx context.Context) (copyOf, error) {
		resp, err := a.model.Admitted(a.prio).Generate(ctx, req)
		return copyOf{m: a.model, res: res, resp: resp}, err
	}
	var reached atomic.Bool // the hedge got past its limiter to the provider
	backup := func(ctx context.Context) (copyOf, bool, error) {
		if hm == nil {
			return copyOf{}, false, nil
		}
		ctx = hedge.WithSent(ctx, func() { reached.Store(true) })
		if err := a.r.priced(hm); err != nil {
			a.r.e.log.Warn("the hedge target cannot be billed; the call goes unhedged", "model", a.model.Name, "to", hm.Name, "err", err)
			return copyOf{}, false, err
		}
		usd, tokens, err := worstCase(hm, req)
		if err != nil {
			a.r.e.log.Warn("a hedge cannot be priced; the call goes unhedged", "model", a.model.Name, "to", hm.Name, "err", err)
			return copyOf{}, false, err
		}
		hres, err := a.bud.Reserve(usd, tokens)
		if err != nil {
			return copyOf{}, false, nil // no budget for a hedge: wait for the first copy
		}
		resp, err := hm.Admitted(a.prio).Generate(ctx, req)
		if err != nil && !reached.Load() {
			// Cancelled, or failed, before its limiter let it go: never
			// sent, so neither billed nor counted as a hedge.
			hres.Release()
			return copyOf{}, false, err
		}
		return copyOf{m: hm, res: hres, resp: resp}, true, err
	}
	p, b := hedge.Race(ctx, a.model.Latency, *a.model.Hedge, delay, primary, backup)
	win, lose := p, b
	if b.Won {
		win, lose = b, p
	}
	if !win.Won {
		// Neither answered: nothing was taken, so nothing is billed but
		// what the providers report, which a failed call does not.
		res.Release()
		if b.Sent && b.Value.res != nil {
			b.Value.res.Release()
		}
		return callRecord{}, p.Err
	}
	rec := settle(win.Value.res, win.Value.m, req, win.Value.resp, a.r.e.opts.Redact)
	if !lose.Sent || lose.Value.res == nil {
		return rec, nil
	}
	hr := &hedgeRecord{Model: hm.Name, Won: b.Won}
	lm, lres := lose.Value.m, lose.Value.res
	switch {
	case lose.Err == nil && lose.Value.resp != nil:
		// Both answered: the loser's own bill.
		lrec := settle(lres, lm, req, lose.Value.resp, a.r.e.opts.Redact)
		hr.Usage, hr.CostNanos = lrec.Usage, lrec.CostNanos
	case !errors.Is(lose.Err, context.Canceled):
		// It failed on its own: providers bill no error.
		lres.Release()
	default:
		var cost price.Amount
		hr.Usage, cost = cancelledBill(lm, req, rec.Usage, win.Took, lose.Took, lres.USD(), lres.Tokens())
		lres.Settle(cost, hr.Usage.Total())
		hr.CostNanos, hr.Estimated = int64(cost), true
	}
	rec.Hedge = hr
	return rec, nil
}

// cancelledBill estimates the bill of a copy of req cancelled on m after
// it ran loseTook, when the winner answered with usage won after winTook.
// No provider reports what a stopped generation cost, and it may have
// been long under way: the primary was sent the hedge delay before its
// hedge, and a loser that ran longer than the winner wrote more. So its
// output is the winner's at the winner's speed over the loser's time,
// and its prompt, when the request carried cache breakpoints, is priced
// at the worse of the input and cache-write rates (it may have written
// the cache, at 1.25x input or 2x for 1-hour entries). Neither ever goes
// above the copy's reservation: at most maxUSD and maxTokens, and the
// request's output cap. When the winner's time is unknown, the loser is
// taken to have written all it was allowed.
func cancelledBill(m *provider.Model, req *llm.Request, won llm.Usage, winTook, loseTook time.Duration, maxUSD price.Amount, maxTokens int64) (llm.Usage, price.Amount) {
	in := min(won.InputTokens+won.CacheWriteTokens+won.CacheReadTokens, maxTokens)
	room := maxTokens - in
	if req.MaxTokens > 0 {
		room = min(room, int64(req.MaxTokens))
	}
	out := room
	if winTook > 0 {
		est := math.Ceil(float64(won.OutputTokens) * loseTook.Seconds() / winTook.Seconds())
		out = int64(min(max(est, 0), float64(room)))
	}
	u := llm.Usage{InputTokens: in, OutputTokens: out}
	cost, _ := m.Cost(u)
	if cachesPrompt(req) {
		w := llm.Usage{CacheWriteTokens: in, OutputTokens: out}
		if req.CacheTTL >= time.Hour {
			w.CacheWrite1hTokens = in
		}
		if c, _ := m.Cost(w); c > cost {
			u, cost = w, c
		}
	}
	return u, min(cost, maxUSD)
}

// cachesPrompt reports whether req marks a prompt-cache breakpoint, which
// a provider may write the cache at.
func cachesPrompt(req *llm.Request) bool {
	if req.CacheSystem {
		return true
	}
	for _, m := range req.Messages {
		if m.Cache {
			return true
		}
	}
	return false
}

// billed returns what a journaled call cost in all, with its hedge.
func (rec *callRecord) billed() (price.Amount, int64) {
	cost, tokens := price.Amount(rec.CostNanos), rec.Usage.Total()
	if h := rec.Hedge; h != nil {
		cost += price.Amount(h.CostNanos)
		tokens += h.Usage.Total()
	}
	return cost, tokens
}
