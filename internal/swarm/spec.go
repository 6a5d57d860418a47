package swarm

import (
	"fmt"
	"path/filepath"
	"slices"
	"time"

	"github.com/hive-swarm/hive/internal/config"
	"github.com/hive-swarm/hive/internal/mcp"
	"github.com/hive-swarm/hive/internal/price"
	"github.com/hive-swarm/hive/internal/verify"
)

// Spec is what a run is asked to do and within which limits.
// OriginMCP is the [Spec].Origin of a run an MCP client started.
const OriginMCP = "mcp"

type Spec struct {
	// Origin says who started the run: empty for hive run and the HTTP
	// API, [OriginMCP] for an MCP client, which may read and cancel only
	// the runs of that origin.
	Origin string `json:"origin,omitempty"`
	// Principal is who started it: the name of the API token
	// ([serve.tokens.NAME]), empty for the command line and the main
	// token. Spend caps may be a principal's own (RunPolicy.Principals).
	Principal string `json:"principal,omitempty"`
	// BudgetDefault says BudgetUSD is the configuration's default, not
	// one the caller asked for: a principal's lower max_budget_usd then
	// replaces it rather than refusing the run.
	BudgetDefault bool     `json:"-"`
	Task          string   `json:"task"`
	Lead          string   `json:"lead"`  // the lead's model name
	Tiers         []string `json:"tiers"` // worker model names, cheapest first
	// Models are further models the run's models may name (a judge, the
	// voters and confirmers of a verify spec); the lead and the tiers are
	// always allowed, and no other model is ever called.
	Models []string `json:"models,omitempty"`
	// Checks are the commands a verify spec may run, by name: configured
	// by the user ([checks.NAME] of hive.toml and the task file). A model
	// names one; it can never give a command.
	Checks map[string]verify.CommandCheck `json:"checks,omitempty"`
	// Workspace is the directory, an absolute path, that workers read
	// (list_files, read_file, grep; run_code sees a copy) and change
	// through patches (write_file, edit_file), never in place; "" for
	// none. hive apply writes the run's merged patch into it.
	Workspace string `json:"workspace,omitempty"`
	// WorkspaceHide and WorkspaceShow are globs of paths of the workspace
	// to hide as secrets, and of ignored paths to show ([workspace] of
	// hive.toml; see workspace.Options).
	WorkspaceHide []string `json:"workspace_hide,omitempty"`
	WorkspaceShow []string `json:"workspace_show,omitempty"`
	// WorkspaceBase is the workspace's fingerprint when the run started:
	// set by [Engine.Start], journaled with the spec, and checked by hive
	// apply, which writes nothing to a directory that changed since.
	WorkspaceBase string `json:"workspace_base,omitempty"`
	// MCP are the MCP servers whose allowed tools the run's models are
	// offered ([mcp.NAME] of hive.toml and the task file): by NAME, as
	// configured by the user. Secrets are not in it, only the names of
	// the variables that hold them.
	MCP map[string]*mcp.ServerConfig `json:"mcp,omitempty"`
	// Budget bounds the whole run; zero fields are unbounded.
	BudgetUSD price.Amount  `json:"budget_nanos"`
	MaxTokens int64         `json:"max_tokens,omitempty"`
	MaxCalls  int64         `json:"max_calls,omitempty"`
	Wall      time.Duration `json:"wall,omitempty"`
	// LeadReserve is set aside from BudgetUSD for the lead's final turn
	// when the rest is exhausted. Default: the worst case of one lead call.
	LeadReserve price.Amount `json:"lead_reserve_nanos,omitempty"`

	MaxWorkers int `json:"max_workers"` // workers in flight at once
	MaxDepth   int `json:"max_depth"`   // 1: only the lead delegates; 2: workers may too
	// ReportCap caps, in tokens (about 4 bytes each), a report that reaches
	// the lead; the rest becomes an artifact the report references.
	ReportCap int `json:"report_cap"`
	// MaxTurns bounds each node's model calls.
	MaxTurns int `json:"max_turns"`
	// MaxToolErrors bounds consecutive malformed turns (no tool call, an
	// unknown tool, arguments that do not parse) before a node fails.
	MaxToolErrors int `json:"max_tool_errors"`
	// Repairs bounds how often a result that fails verification goes back
	// to the same model before the task moves up a tier: 0 means the
	// default (2), a negative number none.
	Repairs int `json:"repairs"`
	// CallTokens is the max output tokens of each call.
	CallTokens int `json:"call_tokens"`
	// Urgency is UrgencyBatch for a run whose workers may wait hours (the
	// providers answer batches within 24): their calls go through the
	// providers' batch APIs at the batch prices, on the tiers BatchTiers
	// names (indexes into Tiers; all when empty). Empty: every call is
	// sent at once.
	Urgency    string `json:"urgency,omitempty"`
	BatchTiers []int  `json:"batch_tiers,omitempty"`
}

// UrgencyBatch is the [Spec].Urgency of a run sent through batch APIs.
const UrgencyBatch = "batch"

// batched reports whether the calls of workers on tier go through a
// batch API.
func (s Spec) batched(tier int) bool {
	if s.Urgency != UrgencyBatch {
		return false
	}
	return len(s.BatchTiers) == 0 || slices.Contains(s.BatchTiers, tier)
}

// withDefaults fills the zero knobs of s.
func (s Spec) withDefaults() Spec {
	if s.MaxWorkers <= 0 {
		s.MaxWorkers = 100
	}
	if s.MaxDepth <= 0 {
		s.MaxDepth = 2
	}
	if s.ReportCap <= 0 {
		s.ReportCap = 2000
	}
	if s.MaxTurns <= 0 {
		s.MaxTurns = 16
	}
	if s.MaxToolErrors <= 0 {
		s.MaxToolErrors = 3
	}
	if s.Repairs == 0 {
		s.Repairs = 2 // negative: no repairs
	}
	if s.CallTokens <= 0 {
		s.CallTokens = 2048
	}
	return s
}

func (s Spec) validate() error {
	if s.Task == "" {
		return fmt.Errorf("the task is empty")
	}
	if s.Lead == "" {
		return fmt.Errorf("no lead model: pass --lead NAME or set defaults.lead in hive.toml")
	}
	if len(s.Tiers) == 0 {
		return fmt.Errorf("no worker tiers: pass --tiers NAME,NAME or set defaults.tiers in hive.toml")
	}
	for name, ch := range s.Checks {
		if len(ch.Argv) == 0 || ch.Argv[0] == "" {
			return fmt.Errorf("check %s has no command", name)
		}
	}
	switch s.Urgency {
	case "", "now", UrgencyBatch:
	default:
		return fmt.Errorf("urgency %q: it is \"now\" (the default) or \"batch\"", s.Urgency)
	}
	if len(s.BatchTiers) > 0 && s.Urgency != UrgencyBatch {
		return fmt.Errorf("batch_tiers is set but urgency is not \"batch\": set urgency = \"batch\" too")
	}
	for _, t := range s.BatchTiers {
		if t < 0 || t >= len(s.Tiers) {
			return fmt.Errorf("batch_tiers names tier %d, and the run has tiers 0 to %d", t, len(s.Tiers)-1)
		}
	}
	if s.Workspace != "" && !filepath.IsAbs(s.Workspace) {
		return fmt.Errorf("workspace %q is not an absolute path", s.Workspace)
	}
	for name, c := range s.MCP {
		if c == nil {
			return fmt.Errorf("mcp.%s: the table is empty", name)
		}
		c.Name = name
		if err := c.Validate(); err != nil {
			return err
		}
	}
	return nil
}

// ChecksFrom turns [checks.NAME] tables into the checks of a [Spec]; a
// name in a later set overrides the same name in an earlier one (a task
// file's over hive.toml's).
func ChecksFrom(sets ...map[string]*config.Check) map[string]verify.CommandCheck {
	var out map[string]verify.CommandCheck
	for _, set := range sets {
		for name, ch := range set {
			if out == nil {
				out = map[string]verify.CommandCheck{}
			}
			out[name] = verify.CommandCheck{Name: name, Argv: ch.Command, Timeout: ch.Timeout.Duration, Env: ch.Env, OnHost: ch.OnHost}
		}
	}
	return out
}
