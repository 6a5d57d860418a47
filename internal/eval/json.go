package eval

import (
	"encoding/json"
	"io"
)

// WriteJSON writes r as indented JSON for scripts:
//
//	{"suite", "problems", "reference", "strategies": [{"name", "accuracy",
//	  "correct", "problems", "cost_usd", "cost_ratio", "calls": {model: n},
//	  "escalations", "escalation_rate", "false_accepts", "false_rejects",
//	  "unsure", "calibration": {"folds", "target_false_accept_rate",
//	  "judged", "chosen": [{"agree", "margin", "problems"}],
//	  "false_accepts_without", "false_rejects_without"}, "wall_ns"}]}
//
// calibration is there for score strategies only (see calibrate.go).
//
// cost_usd is derived from each strategy's exact Cost, and cost_ratio from
// the reference strategy's cost (omitted when there is no reference), so
// the numbers always agree with [Report.WriteTable]. r is not modified.
func (r *Report) WriteJSON(w io.Writer) error {
	out := *r
	out.Strategies = make([]StrategyResult, len(r.Strategies))
	for i := range r.Strategies {
		s := r.Strategies[i]
		s.CostUSD = s.Cost.Dollars()
		s.CostRatio, _ = r.relCost(&r.Strategies[i])
		if s.Calls == nil {
			s.Calls = map[string]int{} // "calls": {} rather than null
		}
		out.Strategies[i] = s
	}
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	enc.SetEscapeHTML(false) // a file for scripts, not a page: keep "<" readable
	return enc.Encode(&out)
}
