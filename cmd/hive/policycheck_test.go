package main

import (
	"os"
	"strings"
	"testing"
)

// hive policy check prints the effective policy with every screen rule,
// and exits 1 listing what the configuration asks for past it.
func TestPolicyCheck(t *testing.T) {
	w := newWorld(t)
	code, out, errOut := w.hive("policy", "check")
	if code != 0 || !strings.Contains(out, "agrees with its policy") || !strings.Contains(out, "private-key") {
		t.Fatalf("no policy: exit %d\n%s%s", code, out, errOut)
	}
	cfg, _ := os.ReadFile(w.cfg)
	policy := `
[policy]
models = ["cheap", "lead", "cheep"]
lead_models = ["lead"]
max_workers = 4
max_budget_usd = 1
mcp_servers = []

[policy.tiers.cheap]
tools = ["read_file", "write_file"]
write = ["docs/**"]
mcp_servers = ["github"]

[policy.tiers.cheep]
tools = []

[policy.approval]
tools = ["gh_create_*"]

[serve.tokens.ci]
env = "HIVE_TOKEN_CI"
daily_budget_usd = 5

[[policy.screen.rules]]
name = "prod"
pattern = 'production'
action = "hold"
`
	// The world's defaults: lead "lead", tiers cheap and strong, no
	// max_workers; add a swarm asking for more.
	extra := "\n[swarms.big]\nlead = \"cheap\"\ntiers = [\"cheap\"]\nbudget_usd = 5\nmax_workers = 50\n"
	if err := os.WriteFile(w.cfg, append(cfg, (extra+policy)...), 0o600); err != nil {
		t.Fatal(err)
	}
	code, out, _ = w.hive("policy", "check")
	if code != 1 {
		t.Fatalf("conflicts: exit %d\n%s", code, out)
	}
	for _, want := range []string{
		"defaults.tiers names model strong, which policy.models does not allow",
		"swarms.big has cheap lead, which policy.lead_models does not allow",
		"swarms.big.budget_usd is 5, over policy.max_budget_usd (1)",
		"swarms.big.max_workers is 50, over policy.max_workers (4)",
		"policy.models names cheep, which no [models.cheep] configures",
		"policy.tiers.cheep names a model no [models.cheep] configures",
		`policy.approval.tools names "gh_create_*", which no [mcp.NAME] server's tools can match`,
		"policy.tiers.cheap.mcp_servers names github, which no [mcp.github] configures",
		`write = ["docs/**"]`, `env = "HIVE_TOKEN_CI"`,
		"prod ", "hold",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("policy check lacks %q:\n%s", want, out)
		}
	}
	// A run of the defaults is refused by the same rule the check names.
	code, _, errOut = w.hive("run", "count to three")
	if code == 0 || !strings.Contains(errOut, "refused by policy.models") || !strings.Contains(errOut, "strong") {
		t.Fatalf("a run past the policy: exit %d: %s", code, errOut)
	}
	// A rule naming a tool that is not built in, a lead rule with tools,
	// a write glob that is absolute, and a token without a variable are
	// refused when the file loads, naming the key.
	for bad, want := range map[string]string{
		"[policy.workers]\ntools = [\"shell\"]\n":       "policy.workers.tools: \"shell\" is not a built-in tool",
		"[policy.workers]\nread = [\"docs/**\"]\n":      "code a worker runs sees the whole workspace",
		"[policy.lead]\ntools = [\"delegate\"]\n":       "policy.lead takes only mcp_servers",
		"[policy.tiers.cheap]\nwrite = [\"/etc/**\"]\n": "policy.tiers.cheap.write",
		"[serve.tokens.ci]\ndaily_budget_usd = 1\n":     "serve.tokens.ci.env is missing",
		"[serve.tokens.\"c i\"]\nenv = \"X_TOKEN\"\n":   "a token's name is letters",
	} {
		if err := os.WriteFile(w.cfg, append(append([]byte{}, cfg...), ("\n"+bad)...), 0o600); err != nil {
			t.Fatal(err)
		}
		if code, out, errOut := w.hive("policy", "check"); code != 2 && code != 1 || !strings.Contains(errOut+out, want) {
			t.Errorf("%q: exit %d: %s%s", bad, code, out, errOut)
		}
	}
}
