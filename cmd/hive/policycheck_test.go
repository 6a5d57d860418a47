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
}
