package main

import (
	"context"
	"encoding/json"
	"fmt"
	"strconv"

	"github.com/BurntSushi/toml"

	"github.com/hive-swarm/hive/internal/config"
	"github.com/hive-swarm/hive/internal/price"
	"github.com/hive-swarm/hive/internal/swarm"
)

// runPolicy is the engine's view of cfg's [policy].
func runPolicy(cfg *config.Config) *swarm.RunPolicy {
	p := cfg.Policy
	usd := func(v float64) price.Amount {
		a, _ := price.ParseUSD(strconv.FormatFloat(v, 'f', -1, 64)) // checked ≥ 0 when loaded
		return a
	}
	rp := &swarm.RunPolicy{Models: p.Models, LeadModels: p.LeadModels, MCPServers: p.MCPServers, MCPNetwork: p.MCPNetwork,
		MaxBudget: usd(p.MaxBudgetUSD), DailyBudget: usd(p.DailyBudgetUSD),
		MaxWorkers: p.MaxWorkers, MaxDepth: p.MaxDepth, MaxWall: p.MaxWall.Duration}
	rule := func(key string, r *config.PolicyRule) *swarm.ToolRule {
		if r == nil {
			return nil
		}
		return &swarm.ToolRule{Key: key, Tools: r.Tools, Write: r.Write, Read: r.Read, MCPServers: r.MCPServers}
	}
	rp.Workers, rp.Lead = rule("policy.workers", p.Workers), rule("policy.lead", p.Lead)
	for name, r := range p.Tiers {
		if rp.Tiers == nil {
			rp.Tiers = map[string]*swarm.ToolRule{}
		}
		rp.Tiers[name] = rule("policy.tiers."+name, r)
	}
	for name, t := range cfg.Serve.Tokens {
		if rp.Principals == nil {
			rp.Principals = map[string]swarm.PrincipalPolicy{}
		}
		rp.Principals[name] = swarm.PrincipalPolicy{MaxBudget: usd(t.MaxBudgetUSD), DailyBudget: usd(t.DailyBudgetUSD)}
	}
	return rp
}

const policyUsage = `Usage: hive policy check [--json]

Prints the policy hive.toml's [policy] sets, with every screen rule (the
built-in credential detectors too), and checks the rest of the
configuration against it: defaults and swarms that ask for more than it
allows, models or MCP servers it does not allow, names it gives that nothing
configures. Exits 1 when they disagree.`

func runPolicyCmd(ctx context.Context, env *Env, args []string) error {
	if len(args) == 0 || args[0] != "check" {
		if len(args) > 0 && (args[0] == "-h" || args[0] == "--help" || args[0] == "help") {
			fmt.Fprintln(env.Stdout, policyUsage)
			return nil
		}
		fmt.Fprintln(env.Stderr, policyUsage)
		return usageErrorf("policy: want the subcommand check")
	}
	fs := newFlags(env, "policy check", "[--json]")
	var g globalFlags
	g.register(fs)
	asJSON := fs.Bool("json", false, "print the policy, its rules and the conflicts as JSON")
	if err := parseFlags(fs, args[1:]); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return usageErrorf("policy check: unexpected argument %q", fs.Arg(0))
	}
	cfg, _, _, err := g.load(env)
	if err != nil {
		return err
	}
	scr, err := cfg.Screen()
	if err != nil {
		return err
	}
	type ruleJSON struct {
		Name, Category, Pattern, Action string
		On                              []string `json:",omitempty"`
	}
	var rules []ruleJSON
	for _, r := range scr.Rules() {
		rj := ruleJSON{Name: r.Name, Category: r.Category, Pattern: r.Pattern.String(), Action: string(r.Action)}
		for _, w := range r.On {
			rj.On = append(rj.On, string(w))
		}
		rules = append(rules, rj)
	}
	conflicts := cfg.PolicyConflicts()
	if *asJSON {
		enc := json.NewEncoder(env.Stdout)
		enc.SetIndent("", "  ")
		if conflicts == nil {
			conflicts = []string{}
		}
		if err := enc.Encode(map[string]any{"config": cfg.Path, "policy": cfg.Policy, "tokens": cfg.Serve.Tokens, "screen_rules": rules, "conflicts": conflicts}); err != nil {
			return err
		}
	} else {
		src := cfg.Path
		if src == "" {
			src = "the built-in defaults (no hive.toml)"
		}
		fmt.Fprintf(env.Stdout, "# the policy of %s\n", src)
		pol := cfg.Policy
		pol.Screen.Rules = nil // listed below, with the built-in ones
		if err := toml.NewEncoder(env.Stdout).Encode(map[string]any{"policy": pol}); err != nil {
			return err
		}
		if len(cfg.Serve.Tokens) > 0 {
			// The tokens' bounds (their secrets stay in the variables).
			fmt.Fprintf(env.Stdout, "\n# API tokens of their own\n")
			if err := toml.NewEncoder(env.Stdout).Encode(map[string]any{"serve": map[string]any{"tokens": cfg.Serve.Tokens}}); err != nil {
				return err
			}
		}
		fmt.Fprintf(env.Stdout, "\n# screen rules, in the order they run\n")
		for _, r := range rules {
			on := "tasks, reports, tool calls"
			if len(r.On) > 0 {
				on = fmt.Sprint(r.On)
			}
			fmt.Fprintf(env.Stdout, "%-22s %-12s %-6s %s  %s\n", r.Name, r.Category, r.Action, on, r.Pattern)
		}
		if len(conflicts) == 0 {
			fmt.Fprintln(env.Stdout, "\nthe configuration agrees with its policy")
		} else {
			noun := "conflicts"
			if len(conflicts) == 1 {
				noun = "conflict"
			}
			fmt.Fprintf(env.Stdout, "\n%d %s with the policy:\n", len(conflicts), noun)
			for _, c := range conflicts {
				fmt.Fprintln(env.Stdout, "  - "+c)
			}
		}
	}
	if len(conflicts) > 0 {
		return &exitError{code: 1, err: errSilent}
	}
	return nil
}
