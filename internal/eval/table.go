package eval

import (
	"bufio"
	"fmt"
	"io"
	"math"
	"slices"
	"sort"
	"strings"
	"text/tabwriter"
)

// This file renders a [Report] for people: a fixed-width table, plus the
// helpers that the table, the JSON and the plot share (the reference
// strategy, cost ratios, the Pareto frontier, the best strategy within a
// budget).

// WriteTable writes r as a fixed-width text table, one row per strategy in
// report order: accuracy, cost, cost relative to the reference strategy,
// calls per model, escalation rate and the verifier's confusion. A header
// names the suite; a footer explains the less obvious columns.
func (r *Report) WriteTable(w io.Writer) error {
	bw := bufio.NewWriter(w)
	fmt.Fprintf(bw, "suite %s: %d problems, %d strategies", oneLine(r.Suite), r.Problems, len(r.Strategies))
	if ref := r.reference(); ref != nil {
		fmt.Fprintf(bw, ", costs relative to %s", oneLine(ref.Name))
	} else {
		fmt.Fprint(bw, ", no reference strategy")
	}
	fmt.Fprint(bw, "\n\n")

	tw := tabwriter.NewWriter(bw, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "strategy\tfrontier\taccuracy\tcost\tvs ref\tescalated\tfalse acc\tfalse rej\tunsure\tcalls")
	onFront := map[*StrategyResult]bool{}
	for _, s := range r.Frontier() {
		onFront[s] = true
	}
	for i := range r.Strategies {
		s := &r.Strategies[i]
		name := oneLine(s.Name)
		if r.isReference(s) {
			name += " (ref)"
		}
		front := "no"
		if onFront[s] {
			front = "yes"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%d\t%d\t%d\t%s\n",
			name,
			front,
			tableAccuracy(s),
			tableCost(s),
			r.tableRatio(s),
			tablePercent(s.EscalationRate),
			s.FalseAccepts,
			s.FalseRejects,
			s.Unsure,
			tableCalls(s.Calls),
		)
	}
	if err := tw.Flush(); err != nil {
		return err
	}

	fmt.Fprint(bw, "\n")
	fmt.Fprintln(bw, "frontier:  yes: no strategy with an exact cost is as accurate for less, or more accurate for as little")
	fmt.Fprintln(bw, "vs ref:    cost divided by the reference strategy's cost (— when there is none)")
	fmt.Fprintln(bw, "escalated: share of problems that moved past their first tier")
	fmt.Fprintln(bw, "false acc: wrong answers the verifier accepted (shipped as if right)")
	fmt.Fprintln(bw, "false rej: right answers the verifier rejected (paid for repair or escalation)")
	fmt.Fprintln(bw, "unsure:    verdicts that could not tell (escalated as unverified; never counted as passes)")
	var lower []string
	for _, s := range r.Strategies {
		for _, m := range s.LowerBound {
			if !slices.Contains(lower, m) {
				lower = append(lower, m)
			}
		}
	}
	if len(lower) > 0 {
		fmt.Fprintf(bw, "≥:         a lower bound: only the final answers of %s are recorded, not the calls that led to them\n", strings.Join(lower, ", "))
	}
	for _, s := range r.Strategies {
		if c := s.Calibration; c != nil {
			fmt.Fprintf(bw, "\n%s:\n  %s\n", oneLine(s.Name), c.describe())
		}
	}
	return bw.Flush()
}

// Best returns the most accurate strategy whose cost is at most
// maxCostRatio times the reference strategy's cost, or nil when there is
// no usable reference (none named, not found, or free) or no strategy fits.
// Ties go to the cheaper strategy, then to the earlier one in the report.
func (r *Report) Best(maxCostRatio float64) *StrategyResult {
	var best *StrategyResult
	for i := range r.Strategies {
		s := &r.Strategies[i]
		ratio, ok := r.relCost(s)
		if !ok || ratio > maxCostRatio {
			continue
		}
		if best == nil || s.Accuracy > best.Accuracy ||
			(s.Accuracy == best.Accuracy && s.Cost < best.Cost) {
			best = s
		}
	}
	return best
}

// Frontier returns the strategies on the Pareto frontier of accuracy
// against cost: those that no other strategy dominates, where dominating
// means at least as accurate and at most as costly, and strictly better in
// one of the two. Only a strategy whose cost is exact dominates: one whose
// cost is a lower bound may cost more than it shows. A strategy with an
// unpriced model has no place on the cost axis and is left out. Strategies
// tied in both stay on the frontier together.
// The result points into r.Strategies, ordered by cost, then accuracy,
// then report order.
func (r *Report) Frontier() []*StrategyResult {
	var out []*StrategyResult
	for i := range r.Strategies {
		s := &r.Strategies[i]
		if len(s.Unpriced) > 0 {
			continue
		}
		dominated := false
		for j := range r.Strategies {
			o := &r.Strategies[j]
			if o.exactCost() && o.Accuracy >= s.Accuracy && o.Cost <= s.Cost &&
				(o.Accuracy > s.Accuracy || o.Cost < s.Cost) {
				dominated = true
				break
			}
		}
		if !dominated {
			out = append(out, s)
		}
	}
	sort.SliceStable(out, func(a, b int) bool {
		if out[a].Cost != out[b].Cost {
			return out[a].Cost < out[b].Cost
		}
		return out[a].Accuracy < out[b].Accuracy
	})
	return out
}

// exactCost reports whether s's cost is whole: no model's calls are
// unpriced or only partly recorded.
func (s *StrategyResult) exactCost() bool { return len(s.Unpriced) == 0 && len(s.LowerBound) == 0 }

// reference returns the strategy that r.Reference names, or nil.
func (r *Report) reference() *StrategyResult {
	if r.Reference == "" {
		return nil
	}
	for i := range r.Strategies {
		if r.Strategies[i].Name == r.Reference {
			return &r.Strategies[i]
		}
	}
	return nil
}

func (r *Report) isReference(s *StrategyResult) bool {
	return r.Reference != "" && s.Name == r.Reference
}

// relCost returns s's cost over the reference strategy's cost; ok is false
// when there is no reference, the reference cost nothing, or s called a
// model without a price.
func (r *Report) relCost(s *StrategyResult) (ratio float64, ok bool) {
	ref := r.reference()
	if ref == nil || ref.Cost <= 0 || len(s.Unpriced) > 0 {
		return 0, false
	}
	// Both are exact integers of nano-dollars; the quotient is for display.
	return float64(s.Cost) / float64(ref.Cost), true
}

// tableRatio formats s's cost relative to the reference: "0.38×", "12×",
// "<0.01×", or "—" when there is no reference; "≥" marks a lower bound.
func (r *Report) tableRatio(s *StrategyResult) string {
	ratio, ok := r.relCost(s)
	if ok && len(s.LowerBound) > 0 && ratio >= 0.01 {
		return "≥" + formatRatio(ratio)
	}
	if !ok {
		return "—"
	}
	return formatRatio(ratio)
}

func formatRatio(ratio float64) string {
	switch {
	case ratio == 0:
		return "0×"
	case ratio < 0.01:
		return "<0.01×"
	case ratio >= 100:
		return fmt.Sprintf("%.0f×", ratio)
	case ratio >= 10:
		return fmt.Sprintf("%.1f×", ratio)
	default:
		return fmt.Sprintf("%.2f×", ratio)
	}
}

// tableAccuracy formats "87.8% (144/164)"; without a problem count, only
// the percentage.
func tableAccuracy(s *StrategyResult) string {
	if s.Problems == 0 {
		return tablePercent(s.Accuracy)
	}
	return fmt.Sprintf("%s (%d/%d)", tablePercent(s.Accuracy), s.Correct, s.Problems)
}

// tablePercent formats a 0..1 fraction as a percentage with one decimal.
func tablePercent(f float64) string {
	if math.IsNaN(f) || math.IsInf(f, 0) {
		return "—"
	}
	return fmt.Sprintf("%.1f%%", f*100)
}

// tableCalls formats calls compactly, models in name order:
// "gpt-3.5-turbo-0613×164 gpt-4-1106-preview×31"; "—" for none.
func tableCalls(calls map[string]int) string {
	if len(calls) == 0 {
		return "—"
	}
	models := make([]string, 0, len(calls))
	for m := range calls {
		models = append(models, m)
	}
	sort.Strings(models)
	var b strings.Builder
	for i, m := range models {
		if i > 0 {
			b.WriteByte(' ')
		}
		fmt.Fprintf(&b, "%s×%d", oneLine(m), calls[m])
	}
	return b.String()
}

// oneLine keeps a name from breaking the table: tabs and line breaks,
// which tabwriter treats as cell and row ends, become spaces.
func oneLine(s string) string {
	return strings.Map(func(r rune) rune {
		switch r {
		case '\t', '\n', '\r', '\v', '\f':
			return ' '
		}
		return r
	}, s)
}

// tableCost is a strategy's cost, or "unknown" when a model it called has
// no known price.
func tableCost(s *StrategyResult) string {
	if len(s.Unpriced) > 0 {
		return "unknown (" + strings.Join(s.Unpriced, ", ") + " unpriced)"
	}
	if len(s.LowerBound) > 0 {
		return "≥" + s.Cost.String()
	}
	return s.Cost.String()
}
