package eval

import (
	"time"

	"github.com/hive-swarm/hive/internal/price"
)

// Report is the outcome of evaluating strategies on one suite.
type Report struct {
	Suite    string `json:"suite"`
	Problems int    `json:"problems"`
	// Reference names the strategy that costs are compared with: the
	// strongest single model (the single:MODEL strategy with the highest
	// accuracy) whose cost is whole, or "" when there is none.
	Reference  string           `json:"reference,omitempty"`
	Strategies []StrategyResult `json:"strategies"`
}

// StrategyResult is one strategy's score. Correctness is judged with what
// the system never sees at run time (hidden tests, gold answers).
type StrategyResult struct {
	Name     string  `json:"name"`
	Accuracy float64 `json:"accuracy"` // correct / problems, 0..1
	Correct  int     `json:"correct"`
	Problems int     `json:"problems"`
	// Cost is what the strategy's model calls cost at list prices.
	Cost    price.Amount `json:"-"`
	CostUSD float64      `json:"cost_usd"`
	// Unpriced lists the models called that have no known price: the cost
	// leaves them out, and shows as unknown.
	Unpriced []string `json:"unpriced_models,omitempty"`
	// LowerBound lists the models called whose recorded usage hides some
	// of their calls (see price.Price.LowerBound): the cost is at least
	// CostUSD.
	LowerBound []string `json:"cost_lower_bound_models,omitempty"`
	// CostRatio is Cost over the reference strategy's cost (0 when there
	// is no reference).
	CostRatio float64        `json:"cost_ratio,omitempty"`
	Calls     map[string]int `json:"calls"` // model → calls
	// Escalations counts problems that moved past their first tier;
	// EscalationRate is Escalations / Problems.
	Escalations    int     `json:"escalations"`
	EscalationRate float64 `json:"escalation_rate"`
	// The verifier's confusion, over the answers it judged: wrong answers
	// it accepted (the dangerous ones) and right answers it rejected.
	FalseAccepts int `json:"false_accepts"`
	FalseRejects int `json:"false_rejects"`
	// Unsure counts verdicts that could not tell (a sandbox error, a check
	// too costly to run): the task's policy escalated them, or at the top
	// tier let the answer stand marked unsure; they are in neither count
	// above.
	Unsure int `json:"unsure"`
	// Calibration, for a score strategy, says how its thresholds were
	// chosen and what its gate did without them.
	Calibration *Calibration `json:"calibration,omitempty"`
	// Wall is how long the strategy took to run (not a calibration run,
	// which [Calibration] times; the strategy's run then finds the hidden
	// tests of answers the calibration judged already done).
	Wall time.Duration `json:"wall_ns"`
}
