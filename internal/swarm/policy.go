package swarm

import (
	"errors"
	"fmt"
	"maps"
	"path"
	"slices"
	"strings"
	"time"

	"github.com/bmatcuk/doublestar/v4"

	"github.com/hive-swarm/hive/internal/journal"
	"github.com/hive-swarm/hive/internal/mcp"
	"github.com/hive-swarm/hive/internal/price"
	"github.com/hive-swarm/hive/internal/provider"
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
	// Principals are the bounds of each API token's runs, by the token's
	// name ([serve.tokens.NAME]).
	Principals map[string]PrincipalPolicy
	// Workers bounds what every worker may use, Tiers what the workers of
	// one tier's model may (instead of Workers), Lead what the lead may;
	// nil: no bound beyond the run's own.
	Workers, Lead *ToolRule
	Tiers         map[string]*ToolRule
}

// ToolRule is what the models of one role or tier may use. A nil list
// bounds nothing.
type ToolRule struct {
	// Key names the rule in refusals ("policy.tiers.cheap").
	Key string
	// Tools are the built-in tools offered (run_code, delegate,
	// list_files, read_file, grep, write_file, edit_file); submit and
	// finish always are.
	Tools []string
	// Write are the workspace paths (globs, ** for any depth) that
	// write_file and edit_file may change.
	Write []string
	// Read are the workspace paths read_file reads, grep searches and
	// list_files lists files of (directories are listed by name). Code
	// a worker runs sees the whole workspace: a rule with Read offers no
	// run_code (config checks it).
	Read []string
	// MCPServers are the [mcp.NAME] servers whose tools are offered.
	MCPServers []string
}

// BuiltinTools are the tools a ToolRule may name.
var BuiltinTools = []string{toolRunCode, toolDelegate, toolListFiles, toolReadFile, toolGrep, toolWriteFile, toolEditFile}

// policy is the run's policy, nil for none (or a run without an engine,
// in tests).
func (r *run) policy() *RunPolicy {
	if r.e == nil {
		return nil
	}
	return r.e.opts.Policy
}

// workerRule is the rule of a worker of model, nil when none bounds it.
func (p *RunPolicy) workerRule(model string) *ToolRule {
	if p == nil {
		return nil
	}
	if r := p.Tiers[model]; r != nil {
		return r
	}
	return p.Workers
}

// leadRule is the lead's rule, nil when none bounds it.
func (p *RunPolicy) leadRule() *ToolRule {
	if p == nil {
		return nil
	}
	return p.Lead
}

// allowsTool reports whether the rule lets its models use the tool name:
// the built-in tools it names, and every other (submit, finish, and MCP
// tools, which allowsServer bounds).
func (t *ToolRule) allowsTool(name string) bool {
	return t == nil || t.Tools == nil || !slices.Contains(BuiltinTools, name) || slices.Contains(t.Tools, name)
}

// allowsServer reports whether the rule lets its models use the MCP
// server's tools.
func (t *ToolRule) allowsServer(server string) bool {
	return t == nil || t.MCPServers == nil || slices.Contains(t.MCPServers, server)
}

// checkRead and checkWrite refuse a read or a write of the workspace
// path p (as the model gave it) that rule's Read or Write globs do not
// name. Paths are compared cleaned and exactly ("docs/../src/x" is src/x,
// and no case or Unicode alias of an allowed path is taken for it), and
// as they resolve through the workspace's links: a link docs/guide.md ->
// ../src/x.go reads and writes src/x.go.
func (r *run) checkRead(rule *ToolRule, p string) error {
	if rule == nil {
		return nil
	}
	return r.checkPath(rule.Key+".read", "read", rule.Read, p)
}

func (r *run) checkWrite(rule *ToolRule, p string) error {
	if rule == nil {
		return nil
	}
	return r.checkPath(rule.Key+".write", "written", rule.Write, p)
}

func (r *run) checkPath(key, done string, globs []string, p string) error {
	if globs == nil {
		return nil
	}
	shown := cleanRel(p)
	ok := matchAny(globs, p)
	if ok && r.ws != nil {
		if real, err := r.ws.Resolve(p); err == nil && real != shown {
			// A path that does not resolve fails in the tool, saying why.
			shown += " (a link to " + real + ")"
			ok = matchAny(globs, real)
		}
	}
	if ok {
		return nil
	}
	return &PolicyError{key, fmt.Sprintf("%s may not be %s here (only %s)", shown, done, strings.Join(globs, ", "))}
}

// readable reports whether rule lets its models see the file at the
// clean workspace path p (one a listing or a search found).
func (t *ToolRule) readable(p string) bool { return t == nil || t.Read == nil || matchAny(t.Read, p) }

func cleanRel(p string) string { return path.Clean(strings.TrimPrefix(p, "./")) }

// matchAny reports whether one of globs matches the path p, cleaned.
func matchAny(globs []string, p string) bool {
	c := cleanRel(p)
	for _, g := range globs {
		if ok, _ := doublestar.Match(g, c); ok {
			return true
		}
	}
	return false
}

// PrincipalPolicy bounds the runs one API token starts: each run's budget
// (MaxBudget) and what all of them admitted on one day (UTC) may spend
// together (DailyBudget), across every process sharing the journal. Zero:
// no bound beyond the policy's.
type PrincipalPolicy struct {
	MaxBudget, DailyBudget price.Amount
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
	pp := p.Principals[s.Principal]
	if s.BudgetDefault && pp.MaxBudget > 0 && s.BudgetUSD > pp.MaxBudget {
		s.BudgetUSD = pp.MaxBudget
	}
	if s.BudgetUSD == 0 && pp.MaxBudget > 0 {
		s.BudgetUSD = pp.MaxBudget // the token's own bound first: it is the tighter one meant
	}
	if s.BudgetUSD == 0 && p.MaxBudget > 0 {
		s.BudgetUSD = p.MaxBudget
	}
	tokenRule := "serve.tokens." + s.Principal
	switch {
	case pp.MaxBudget > 0 && s.BudgetUSD > pp.MaxBudget:
		return s, &PolicyError{tokenRule + ".max_budget_usd", fmt.Sprintf("a run of token %s has a budget of at most %s; this run asks for %s", s.Principal, pp.MaxBudget, s.BudgetUSD)}
	case pp.DailyBudget > 0 && s.BudgetUSD > pp.DailyBudget:
		return s, &PolicyError{tokenRule + ".daily_budget_usd", fmt.Sprintf("a run's budget is at most the day's of token %s, %s; this run asks for %s", s.Principal, pp.DailyBudget, s.BudgetUSD)}
	case pp.DailyBudget > 0 && s.BudgetUSD <= 0:
		return s, &PolicyError{tokenRule + ".daily_budget_usd", "under a daily budget every run needs a dollar budget of its own: give one"}
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

// allowsHedge refuses a model whose hedges go to a model the policy does
// not allow: a hedged call is a call to that model.
func (p *RunPolicy) allowsHedge(m *provider.Model) error {
	if p == nil || p.Models == nil || m.Hedge == nil || m.Hedge.To == "" || slices.Contains(p.Models, m.Hedge.To) {
		return nil
	}
	return &PolicyError{"policy.models", fmt.Sprintf("model %s hedges to %s ([models.%s.hedge] to), which is not allowed (allowed: %v)", m.Name, m.Hedge.To, m.Name, p.Models)}
}

// spendCaps are the journal's caps for a run of spec admitted at now:
// the day's cap of all runs and that of the run's principal, when set.
func (p *RunPolicy) spendCaps(spec Spec, now time.Time) []journal.SpendCap {
	if p == nil {
		return nil
	}
	day := now.UTC().Truncate(24 * time.Hour)
	final := func(st string) bool { return Status(st).Final() }
	var caps []journal.SpendCap
	if p.DailyBudget > 0 {
		caps = append(caps, journal.SpendCap{Since: day, LimitNanos: int64(p.DailyBudget), BudgetNanos: int64(spec.BudgetUSD), Final: final})
	}
	if d := p.Principals[spec.Principal].DailyBudget; d > 0 && spec.Principal != "" {
		caps = append(caps, journal.SpendCap{Since: day, Principal: spec.Principal, LimitNanos: int64(d), BudgetNanos: int64(spec.BudgetUSD), Final: final})
	}
	return caps
}

// capError turns the journal's refusal into the policy's.
func capError(err error) error {
	var ce *journal.CapError
	if !errors.As(err, &ce) {
		return err
	}
	rule, whose := "policy.daily_budget_usd", "today's runs"
	if ce.Principal != "" {
		rule, whose = "serve.tokens."+ce.Principal+".daily_budget_usd", "today's runs of token "+ce.Principal
	}
	return &PolicyError{rule, fmt.Sprintf("%s have spent or may still spend %s of %s, and this run may spend %s",
		whose, price.Amount(ce.Committed), price.Amount(ce.Limit), price.Amount(ce.Budget))}
}
