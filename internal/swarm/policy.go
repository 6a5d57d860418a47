package swarm

import (
	"errors"
	"fmt"
	"maps"
	"slices"
	"time"

	"github.com/hive-swarm/hive/internal/journal"
	"github.com/hive-swarm/hive/internal/mcp"
	"github.com/hive-swarm/hive/internal/price"
)

// RunPolicy is what the operator allows every run ([policy] of
// hive.toml): a run that asks for more is refused, naming the rule; a
// knob it leaves at zero takes the policy's bound.
type RunPolicy struct {
	// Models, when not nil, are the only models a run may use: its lead,
	// its tiers and the models its verify specs name. LeadModels, when
	// not nil, are the only ones that may lead.
	Models, LeadModels []string
	// MCPServers, when not nil, are the only [mcp.NAME] servers a run's
	// models may be offered.
	MCPServers []string
	// MCPNetwork, when set, is what every MCP server's network must be:
	// mcp.RequireNone or mcp.RequireAllowlist ([mcp.Network.Meets]).
	MCPNetwork string
	// MaxBudget bounds a run's dollar budget, and makes one necessary;
	// DailyBudget bounds what all runs started on one day (UTC) may spend
	// together, across every process sharing the journal. Zero: none.
	MaxBudget, DailyBudget price.Amount
	// MaxWorkers, MaxDepth and MaxWall bound those knobs of a run; zero:
	// no bound beyond Hive's own.
	MaxWorkers, MaxDepth int
	MaxWall              time.Duration
}

// PolicyError is a run the policy refused.
type PolicyError struct {
	Rule string // the policy's key, "policy.max_workers"
	Why  string
}

func (e *PolicyError) Error() string { return fmt.Sprintf("refused by %s: %s", e.Rule, e.Why) }

// apply fills the knobs s leaves at zero with the policy's bounds and
// checks the rest against it.
func (p *RunPolicy) apply(s Spec) (Spec, error) {
	if p == nil {
		return s, nil
	}
	if s.MaxWorkers == 0 {
		s.MaxWorkers = p.MaxWorkers
	}
	if s.MaxDepth == 0 {
		s.MaxDepth = p.MaxDepth
	}
	if s.Wall == 0 {
		s.Wall = p.MaxWall
	}
	if s.BudgetUSD == 0 && p.MaxBudget > 0 {
		s.BudgetUSD = p.MaxBudget
	}
	switch {
	case p.MaxWorkers > 0 && s.MaxWorkers > p.MaxWorkers:
		return s, &PolicyError{"policy.max_workers", fmt.Sprintf("at most %d workers at once; this run asks for %d", p.MaxWorkers, s.MaxWorkers)}
	case p.MaxDepth > 0 && s.MaxDepth > p.MaxDepth:
		return s, &PolicyError{"policy.max_depth", fmt.Sprintf("at most depth %d; this run asks for %d", p.MaxDepth, s.MaxDepth)}
	case p.MaxWall > 0 && s.Wall > p.MaxWall:
		return s, &PolicyError{"policy.max_wall", fmt.Sprintf("at most %s of wall time; this run asks for %s", p.MaxWall, s.Wall)}
	case p.MaxBudget > 0 && s.BudgetUSD > p.MaxBudget:
		return s, &PolicyError{"policy.max_budget_usd", fmt.Sprintf("a run's budget is at most %s; this run asks for %s", p.MaxBudget, s.BudgetUSD)}
	case p.DailyBudget > 0 && s.BudgetUSD > p.DailyBudget:
		return s, &PolicyError{"policy.daily_budget_usd", fmt.Sprintf("a run's budget is at most the day's, %s; this run asks for %s", p.DailyBudget, s.BudgetUSD)}
	case p.DailyBudget > 0 && s.BudgetUSD <= 0:
		return s, &PolicyError{"policy.daily_budget_usd", "under a daily budget every run needs a dollar budget of its own: give one"}
	}
	if p.LeadModels != nil && !slices.Contains(p.LeadModels, s.Lead) {
		return s, &PolicyError{"policy.lead_models", fmt.Sprintf("%s may not lead (allowed: %v)", s.Lead, p.LeadModels)}
	}
	if p.Models != nil {
		for _, m := range append(append([]string{s.Lead}, s.Tiers...), s.Models...) {
			if !slices.Contains(p.Models, m) {
				return s, &PolicyError{"policy.models", fmt.Sprintf("model %s is not allowed (allowed: %v)", m, p.Models)}
			}
		}
	}
	for _, name := range slices.Sorted(maps.Keys(s.MCP)) {
		if p.MCPServers != nil && !slices.Contains(p.MCPServers, name) {
			return s, &PolicyError{"policy.mcp_servers", fmt.Sprintf("MCP server %s is not allowed (allowed: %v)", name, p.MCPServers)}
		}
		if c := s.MCP[name]; c != nil && !c.Network.Meets(p.MCPNetwork) {
			return s, &PolicyError{"policy.mcp_network", fmt.Sprintf("MCP server %s has network %s, and every one must have %s", name, c.Network, mcp.Requirement(p.MCPNetwork))}
		}
	}
	return s, nil
}

// spendCap is the journal's cap for a run of budget b, nil without a
// daily budget.
func (p *RunPolicy) spendCap(b price.Amount, now time.Time) *journal.SpendCap {
	if p == nil || p.DailyBudget <= 0 {
		return nil
	}
	day := now.UTC().Truncate(24 * time.Hour)
	return &journal.SpendCap{Since: day, LimitNanos: int64(p.DailyBudget), BudgetNanos: int64(b),
		Final: func(st string) bool { return Status(st).Final() }}
}

// capError turns the journal's refusal into the policy's.
func capError(err error) error {
	var ce *journal.CapError
	if errors.As(err, &ce) {
		return &PolicyError{"policy.daily_budget_usd", fmt.Sprintf("today's runs have spent or may still spend %s of %s, and this run's budget is %s",
			price.Amount(ce.Committed), price.Amount(ce.Limit), price.Amount(ce.Budget))}
	}
	return err
}
