package config

import (
	"fmt"
	"maps"
	"path"
	"slices"
	"sort"
	"strings"

	"github.com/hive-swarm/hive/internal/mcp"
)

// PolicyConflicts lists what the rest of c asks for that c's [policy]
// would refuse: the defaults and swarms every run starts from, the models
// hedges go to, the MCP servers configured, and names the policy gives
// that nothing configures. Empty means the configuration and its policy
// agree.
func (c *Config) PolicyConflicts() []string {
	p := c.Policy
	var out []string
	add := func(format string, args ...any) { out = append(out, fmt.Sprintf(format, args...)) }
	model := func(where, m string, lead bool) {
		if m == "" {
			return
		}
		if p.Models != nil && !slices.Contains(p.Models, m) {
			add("%s names model %s, which policy.models does not allow", where, m)
		}
		if lead && p.LeadModels != nil && !slices.Contains(p.LeadModels, m) {
			add("%s has %s lead, which policy.lead_models does not allow", where, m)
		}
	}
	knobs := func(where string, budget *float64, workers, depth int) {
		if budget != nil && p.MaxBudgetUSD > 0 && *budget > p.MaxBudgetUSD {
			add("%s.budget_usd is %g, over policy.max_budget_usd (%g)", where, *budget, p.MaxBudgetUSD)
		}
		if budget != nil && *budget == 0 && p.DailyBudgetUSD > 0 && p.MaxBudgetUSD == 0 {
			add("%s has no budget_usd, and under policy.daily_budget_usd a run needs one (or set policy.max_budget_usd, which runs without one take)", where)
		}
		if p.MaxWorkers > 0 && workers > p.MaxWorkers {
			add("%s.max_workers is %d, over policy.max_workers (%d)", where, workers, p.MaxWorkers)
		}
		if p.MaxDepth > 0 && depth > p.MaxDepth {
			add("%s.max_depth is %d, over policy.max_depth (%d)", where, depth, p.MaxDepth)
		}
	}
	d := c.Defaults
	model("defaults", d.Lead, true)
	for _, t := range d.Tiers {
		model("defaults.tiers", t, false)
	}
	budget := d.BudgetUSD
	knobs("defaults", &budget, d.MaxWorkers, d.MaxDepth)
	names := make([]string, 0, len(c.Swarms))
	for n := range c.Swarms {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		sw := c.Swarms[n]
		if sw == nil {
			continue
		}
		where := "swarms." + n
		model(where, sw.Lead, true)
		for _, t := range sw.Tiers {
			model(where+".tiers", t, false)
		}
		knobs(where, sw.BudgetUSD, sw.MaxWorkers, sw.MaxDepth)
	}
	for _, n := range c.ModelNames() {
		if h := c.Models[n].Hedge; h != nil && h.To != "" {
			model("models."+n+".hedge.to", h.To, false)
		}
	}
	if cl := p.Screen.Classifier; cl != nil {
		model("policy.screen.classifier", cl.Model, false)
	}
	servers := make([]string, 0, len(c.MCP))
	for n := range c.MCP {
		servers = append(servers, n)
	}
	sort.Strings(servers)
	for _, n := range servers {
		if p.MCPServers != nil && !slices.Contains(p.MCPServers, n) {
			add("mcp.%s is configured, but policy.mcp_servers does not allow it", n)
		}
		if s := c.MCP[n]; s != nil && !s.Network.Meets(p.MCPNetwork) {
			add("mcp.%s.network is %s, and policy.mcp_network = %q requires %s", n, s.Network, p.MCPNetwork, mcp.Requirement(p.MCPNetwork))
		}
	}
	rules := map[string]*PolicyRule{"policy.workers": p.Workers, "policy.lead": p.Lead}
	for n, r := range p.Tiers {
		rules["policy.tiers."+n] = r
		if _, ok := c.Models[n]; !ok && !strings.Contains(n, ":") {
			add("policy.tiers.%s names a model no [models.%s] configures (a typo?)", n, n)
		}
	}
	for _, key := range slices.Sorted(maps.Keys(rules)) {
		if r := rules[key]; r != nil {
			for _, s := range r.MCPServers {
				if _, ok := c.MCP[s]; !ok {
					add("%s.mcp_servers names %s, which no [mcp.%s] configures (a typo?)", key, s, s)
				}
			}
		}
	}
	// An approval pattern that can match no configured server's tool
	// switches a person's check off without a word.
	for _, pat := range p.Approval.Tools {
		server, _, ok := strings.Cut(pat, "__")
		// A pattern without "__" ("*") may match any server's tools.
		matched := !ok && strings.ContainsAny(pat, "*?[") && len(c.MCP) > 0
		for n := range c.MCP {
			if m, _ := path.Match(server, n); ok && m {
				matched = true
			}
		}
		if !matched {
			add("policy.approval.tools names %q, which no [mcp.NAME] server's tools can match (tools are SERVER__tool)", pat)
		}
	}
	for _, list := range []struct {
		key   string
		names []string
	}{{"policy.models", p.Models}, {"policy.lead_models", p.LeadModels}} {
		for _, m := range list.names {
			if _, ok := c.Models[m]; !ok && !strings.Contains(m, ":") {
				add("%s names %s, which no [models.%s] configures (a typo?)", list.key, m, m)
			}
		}
	}
	return out
}
