package swarm

import (
	"encoding/json"
	"time"

	"github.com/hive-swarm/hive/internal/journal"
	"github.com/hive-swarm/hive/internal/llm"
	"github.com/hive-swarm/hive/internal/price"
)

// RunView is a journaled run as hive runs --json and the HTTP API show it.
type RunView struct {
	ID        string    `json:"id"`
	Status    Status    `json:"status"`
	Task      string    `json:"task"`
	CostUSD   float64   `json:"cost_usd"`
	CostNanos int64     `json:"cost_nanos"`
	BudgetUSD float64   `json:"budget_usd"`
	Created   time.Time `json:"created"`
	Updated   time.Time `json:"updated"`
	Answer    string    `json:"answer"`
	Error     string    `json:"error"`
	Usage     llm.Usage `json:"usage"`
	Spec      *Spec     `json:"spec,omitempty"`
}

// ViewRun returns r as shown.
func ViewRun(r journal.Run) RunView {
	v := RunView{ID: r.ID, Status: Status(r.Status), Task: r.Task,
		CostUSD: price.Amount(r.CostNanos).Dollars(), CostNanos: r.CostNanos,
		Created: r.Created.UTC(), Updated: r.Updated.UTC(), Answer: r.Answer, Error: r.Error}
	json.Unmarshal(r.Usage, &v.Usage)
	var spec Spec
	if json.Unmarshal(r.Spec, &spec) == nil {
		v.Spec, v.BudgetUSD = &spec, spec.BudgetUSD.Dollars()
	}
	return v
}
