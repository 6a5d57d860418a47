// Package price knows what model calls cost, exactly.
//
// Money is an [Amount] of nano-dollars, an integer: a run that makes a
// million calls must add up to the cent, and a budget that can never be
// overrun (package budget) cannot be enforced in floating point. A [Price]
// holds a model's rates in dollars per million tokens (as vendors publish
// them) for input, output, cache writes and cache reads, plus its batch
// discount, each row with the source and date of the numbers. [Price.Cost]
// turns an [llm.Usage] into an Amount.
//
// # Rounding
//
// A rate of R nano-dollars per million tokens makes one token cost R/1e6
// nano-dollars, usually a fraction. Cost multiplies each of the four token
// counts by its rate in 128-bit integers and rounds each product UP to the
// next nano-dollar, so a cost is never under-counted and exceeds the exact
// value by less than 1 n$ per component: under 4 n$ per call. Summing the
// costs of many calls can therefore exceed the cost of their summed usage
// by under 4 n$ a call (a million calls: under $0.004), never fall short.
//
// # Cache tokens
//
// [llm.Usage] counts uncached input, cache writes and cache reads apart.
// Anthropic bills 5-minute cache writes at 1.25× and reads at 0.1× the
// input rate. OpenAI has no explicit cache writes and bills cached input at
// its own rate. A CacheWrite or CacheRead rate of zero means "no separate
// price": those tokens bill at the Input rate, so that a provider without
// explicit caching is never charged zero for tokens it billed as input.
//
// # Table
//
// [Lookup] finds a model in the built-in table ([Table] lists it); an
// unknown model is reported as unknown, never priced at zero. A [Catalog]
// is the built-in table plus overrides from hive.toml ([Price.With]).
package price

import (
	"errors"
	"fmt"
	"math"
	"math/bits"

	"github.com/hive-swarm/hive/internal/llm"
)

// Price is one model's rates. Every rate is an [Amount] per million tokens
// (a $3/MTok input rate is 3 * [Dollar]).
type Price struct {
	// Model is the canonical model id, as sent to the provider API.
	Model string
	// Aliases are other ids that name exactly this model at exactly this
	// price, such as dated snapshots ("claude-sonnet-4-5-20250929").
	Aliases []string

	Input  Amount // uncached input tokens
	Output Amount // output tokens, reasoning tokens included
	// CacheWrite is the 5-minute cache write rate. Zero: bill at Input.
	// A 1-hour entry's write is billed at twice Input, Anthropic's rate
	// for every model that has it (the only provider with such entries).
	CacheWrite Amount
	// CacheRead is the cache hit rate. Zero: bill at Input.
	CacheRead Amount
	// BatchDiscountPct is the discount, in percent, on every rate for calls
	// sent through the provider's batch API; 0 when it has none.
	BatchDiscountPct int

	// Source is where the numbers come from: the vendor's pricing page or
	// a dated announcement. Date is when the price took effect where known,
	// else when it was read from Source.
	Source string
	Date   string
	// Note says what is assumed or estimated about this row.
	Note string
	// LowerBound marks a system whose recorded answers hide some of the
	// calls that produced them (an agent loop recorded by its last answer
	// only): costs computed from its usage are lower bounds.
	LowerBound bool
}

// Cost returns what u costs at p's standard (non-batch) rates, rounded up
// per component to the nano-dollar (see the package doc).
func (p Price) Cost(u llm.Usage) Amount { return p.cost(u, 0) }

// BatchCost returns what u costs through the provider's batch API: every
// rate less BatchDiscountPct percent, rounded up like Cost.
func (p Price) BatchCost(u llm.Usage) Amount { return p.cost(u, p.BatchDiscountPct) }

func (p Price) cost(u llm.Usage, discountPct int) Amount {
	keep := uint64(100 - min(max(discountPct, 0), 100))
	cw, cr := p.CacheWrite, p.CacheRead
	if cw == 0 {
		cw = p.Input
	}
	if cr == 0 {
		cr = p.Input
	}
	// Of the writes, those to 1-hour entries at their own rate.
	hour := min(max(u.CacheWrite1hTokens, 0), max(u.CacheWriteTokens, 0))
	var total Amount
	for _, c := range [...]struct {
		n    int64
		rate Amount
	}{{u.InputTokens, p.Input}, {u.OutputTokens, p.Output}, {u.CacheWriteTokens - hour, cw}, {hour, p.hourWrite()}, {u.CacheReadTokens, cr}} {
		total = addSat(total, tokensCost(c.n, c.rate, keep))
	}
	return total
}

// hourWrite is the rate of a write to a 1-hour cache entry: twice Input
// (Anthropic's prompt caching pricing), and never less than CacheWrite.
func (p Price) hourWrite() Amount { return max(addSat(p.Input, p.Input), p.CacheWrite) }

// WorstCase returns the most a call can cost with inputTokens of prompt,
// however the provider splits them between uncached input, cache writes
// and cache reads, and maxOutput tokens of output: what a budget reserves
// before the call is sent. It is never less than Cost of any usage with
// those totals.
func (p Price) WorstCase(inputTokens, maxOutput int64) Amount {
	return p.worstCase(inputTokens, maxOutput, false, 100)
}

// WorstCaseHour is WorstCase for a request that may write 1-hour cache
// entries, which cost more than any other input.
func (p Price) WorstCaseHour(inputTokens, maxOutput int64) Amount {
	return p.worstCase(inputTokens, maxOutput, true, 100)
}

// BatchWorstCase is WorstCase (or WorstCaseHour, when hour is set) for a
// call sent through the provider's batch API, at its discount: never less
// than BatchCost of any usage with those totals.
func (p Price) BatchWorstCase(inputTokens, maxOutput int64, hour bool) Amount {
	return p.worstCase(inputTokens, maxOutput, hour, uint64(100-min(max(p.BatchDiscountPct, 0), 100)))
}

func (p Price) worstCase(inputTokens, maxOutput int64, hour bool, keep uint64) Amount {
	in := p.Input
	for _, r := range [...]Amount{p.CacheWrite, p.CacheRead} {
		in = max(in, r) // a zero rate bills at Input, already counted
	}
	if hour {
		in = max(in, p.hourWrite())
	}
	return addSat(tokensCost(inputTokens, in, keep), tokensCost(maxOutput, p.Output, keep))
}

// tokensCost returns ceil(n × rate × keep / (1e6 × 100)) nano-dollars,
// computed in 128 bits and saturated at MaxInt64. Negative token counts or
// rates count as zero.
func tokensCost(n int64, rate Amount, keep uint64) Amount {
	if n <= 0 || rate <= 0 || keep == 0 {
		return 0
	}
	if rate > maxRate {
		return math.MaxInt64
	}
	const div = 1_000_000 * 100
	hi, lo := bits.Mul64(uint64(n), uint64(rate)*keep) // rate*keep <= MaxInt64
	if hi >= div {
		return math.MaxInt64
	}
	q, r := bits.Div64(hi, lo, div)
	if r != 0 {
		q++
	}
	if q > math.MaxInt64 {
		return math.MaxInt64
	}
	return Amount(q)
}

func addSat(a, b Amount) Amount {
	if s := a + b; s >= a {
		return s
	}
	return math.MaxInt64
}

// ErrInvalid is returned (wrapped) by [Price.Validate].
var ErrInvalid = errors.New("invalid price")

// maxRate bounds a rate so that rate × 100 fits in 64 bits: $92 billion per
// million tokens, beyond any real price.
const maxRate = Amount(math.MaxInt64 / 100)

// Validate reports whether p can price calls: a model id, non-negative
// rates no larger than $92M per token, a discount in [0, 100].
func (p Price) Validate() error {
	if p.Model == "" {
		return fmt.Errorf("%w: no model id", ErrInvalid)
	}
	for _, r := range [...]struct {
		name string
		v    Amount
	}{{"input", p.Input}, {"output", p.Output}, {"cache_write", p.CacheWrite}, {"cache_read", p.CacheRead}} {
		if r.v < 0 || r.v > maxRate {
			return fmt.Errorf("%w: %s: %s rate %s out of range", ErrInvalid, p.Model, r.name, r.v)
		}
	}
	if p.BatchDiscountPct < 0 || p.BatchDiscountPct > 100 {
		return fmt.Errorf("%w: %s: batch discount %d%% out of range", ErrInvalid, p.Model, p.BatchDiscountPct)
	}
	return nil
}

// Override changes some fields of a Price; nil fields and empty strings
// leave the field as it was. It is what a models.NAME.price table of
// hive.toml decodes to (rates parsed with [PerMTok] or [PerMTokFloat]).
type Override struct {
	Input, Output, CacheWrite, CacheRead *Amount
	BatchDiscountPct                     *int
	Source, Date, Note                   string
}

// With returns p with o applied. Source defaults to "config" when o
// changes a rate and gives no source, so a row never claims a vendor page
// for numbers the user typed.
func (p Price) With(o Override) Price {
	changed := false
	set := func(dst *Amount, v *Amount) {
		if v != nil {
			*dst, changed = *v, true
		}
	}
	set(&p.Input, o.Input)
	set(&p.Output, o.Output)
	set(&p.CacheWrite, o.CacheWrite)
	set(&p.CacheRead, o.CacheRead)
	if o.BatchDiscountPct != nil {
		p.BatchDiscountPct, changed = *o.BatchDiscountPct, true
	}
	switch {
	case o.Source != "":
		p.Source = o.Source
	case changed:
		p.Source = "config"
	}
	if o.Date != "" {
		p.Date = o.Date
	}
	if o.Note != "" {
		p.Note = o.Note
	}
	p.Aliases = append([]string(nil), p.Aliases...)
	return p
}
