package swarm

import (
	"context"
	"errors"
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
	// cancelled before it answered has no bill of its own: it is billed
	// as if it had written the winner's answer (Estimated), the most a
	// provider charges for a generation stopped no later than that.
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
	case !errors.Is(lose.Err, context.Canceled) || (!b.Won && !reached.Load()):
		// It failed on its own (providers bill no error), or it was
		// cancelled before it reached the provider.
		lres.Release()
	default:
		u := rec.Usage
		hr.Usage = llm.Usage{InputTokens: u.InputTokens + u.CacheReadTokens + u.CacheWriteTokens, OutputTokens: u.OutputTokens}
		cost, _ := lm.Cost(hr.Usage)
		cost = min(cost, lres.USD())
		lres.Settle(cost, min(hr.Usage.Total(), lres.Tokens()))
		hr.CostNanos, hr.Estimated = int64(cost), true
	}
	rec.Hedge = hr
	return rec, nil
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
