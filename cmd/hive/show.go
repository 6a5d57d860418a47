package main

import (
	"context"
	"encoding/json"
	"fmt"
	"sort"
	"strings"
	"text/tabwriter"

	"github.com/hive-swarm/hive/internal/price"
	"github.com/hive-swarm/hive/internal/swarm"
	"github.com/hive-swarm/hive/internal/treeview"
)

func runShow(ctx context.Context, env *Env, args []string) error {
	fs := newFlags(env, "show", "[flags] RUN_ID  (an id or a unique prefix of one)")
	var sf storeFlags
	sf.register(fs)
	asJSON := fs.Bool("json", false, `print {"run": …, "nodes": […], "totals": …, "tiers": […]}`)
	collapse := fs.Bool("collapse", false, "fold finished nodes to fit the terminal (default: every node)")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	sess, jr, err := sf.openRun(ctx, env, fs)
	if err != nil {
		return err
	}
	defer sess.close()
	nodes, err := swarm.LoadNodes(ctx, sess.store, jr.ID)
	if err != nil {
		return fmt.Errorf("read the nodes of run %s: %w", jr.ID, err)
	}
	tree := treeview.FromNodes(jr.ID, nodes)
	tree.Status = swarm.Status(jr.Status)
	tot := tree.Totals()
	tiers := verification(nodes)
	var spec swarm.Spec
	json.Unmarshal(jr.Spec, &spec)
	var patch *patchJSON
	if _, _, content, err := sess.store.Artifact(ctx, jr.ID, swarm.RunPatch); err == nil {
		patch = &patchJSON{ID: swarm.RunPatch, Summary: swarm.PatchSummary(string(content)), Workspace: spec.Workspace}
	}

	if *asJSON {
		out := showJSON{Run: swarm.ViewRun(jr), Nodes: nodes, Tiers: tiers, Patch: patch, Totals: totalsJSON{
			Nodes: tot.Nodes, ByStatus: tot.ByStatus, CostUSD: tot.Cost.Dollars(), CostNanos: int64(tot.Cost),
			InputTokens: tot.Input, OutputTokens: tot.Output, Calls: tot.Calls,
			CacheReadTokens: tot.CacheRead, CacheWriteTokens: tot.CacheWrite, CacheHitRate: tot.CacheHitRate(),
			CacheSavedUSD: tot.CacheSaved.Dollars(), CacheSavedNanos: int64(tot.CacheSaved),
			Hedges: tot.Hedges, HedgeWins: tot.HedgeWins, HedgeCostUSD: tot.HedgeCost.Dollars(),
			Retries: tot.Retries, WaitMillis: tot.WaitMillis, BatchCalls: tot.BatchCalls}}
		if out.Nodes == nil {
			out.Nodes = []swarm.Node{}
		}
		enc := json.NewEncoder(env.Stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(out)
	}

	w := env.Stdout
	fmt.Fprintf(w, "task: %s\n", shorten(oneLine(jr.Task), 200))
	o := treeview.Options{Budget: spec.BudgetUSD, Hint: "hive show " + jr.ID + " without --collapse shows all"}
	if tw, th, ok := treeview.Terminal(w); ok {
		o.Color = true
		if *collapse {
			o.MaxLines, o.Width = max(th-6, 10), max(tw-1, 20)
		}
	} else if *collapse {
		o.MaxLines = 40
	}
	tree.Render(w, o)
	if len(tiers) > 0 {
		fmt.Fprintln(w)
		tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "TIER\tMODEL\tNODES\tACCEPTED\tREPAIRED\tESCALATED\tFAILED\tCOST")
		for _, t := range tiers {
			fmt.Fprintf(tw, "%d\t%s\t%d\t%d\t%d\t%d\t%d\t%s\n", t.Tier, strings.Join(t.Models, ","), t.Nodes, t.Accepted, t.Repaired, t.Escalated, t.Failed, price.Amount(t.CostNanos))
		}
		tw.Flush()
	}
	if patch != nil {
		fmt.Fprintf(w, "\npatch %s: %s\n  hive apply %s writes it into %s (hive apply --print %s shows it)\n", patch.ID, patch.Summary, jr.ID, patch.Workspace, jr.ID)
	}
	switch {
	case jr.Answer != "":
		fmt.Fprintf(w, "\nanswer:\n%s\n", termSafe(strings.TrimRight(jr.Answer, "\n")))
	case jr.Error != "":
		fmt.Fprintf(w, "\nerror: %s\n", oneLine(jr.Error))
	}
	return nil
}

type showJSON struct {
	Run    swarm.RunView `json:"run"`
	Nodes  []swarm.Node  `json:"nodes"`
	Totals totalsJSON    `json:"totals"`
	Tiers  []tierStats   `json:"tiers"`
	// Patch is the run's merged patch, when it has one.
	Patch *patchJSON `json:"patch,omitempty"`
}

// patchJSON names a run's patch: the artifact, what it changes, and the
// workspace hive apply writes it into.
type patchJSON struct {
	ID        string `json:"id"`
	Summary   string `json:"summary"`
	Workspace string `json:"workspace"`
}

type totalsJSON struct {
	Nodes        int                  `json:"nodes"`
	ByStatus     map[swarm.Status]int `json:"by_status"`
	CostUSD      float64              `json:"cost_usd"`
	CostNanos    int64                `json:"cost_nanos"`
	InputTokens  int64                `json:"input_tokens"`
	OutputTokens int64                `json:"output_tokens"`
	Calls        int                  `json:"calls"`
	// The input tokens read from and written to prompt caches (counted in
	// input_tokens), the share read, and what caching saved.
	CacheReadTokens  int64   `json:"cache_read_tokens"`
	CacheWriteTokens int64   `json:"cache_write_tokens"`
	CacheHitRate     float64 `json:"cache_hit_rate"`
	CacheSavedUSD    float64 `json:"cache_saved_usd"`
	CacheSavedNanos  int64   `json:"cache_saved_nanos"`
	// Calls sent twice (hedged), those whose second copy won, and what
	// the copies not taken cost (in cost_usd); retries and time waited
	// for rate limits.
	Hedges       int     `json:"hedges"`
	HedgeWins    int     `json:"hedge_wins"`
	HedgeCostUSD float64 `json:"hedge_cost_usd"`
	Retries      int     `json:"retries"`
	WaitMillis   int64   `json:"wait_ms"`
	// Calls sent through a batch API, at its price.
	BatchCalls int `json:"batch_calls"`
}

// tierStats are the verification counts of a tier's worker nodes.
type tierStats struct {
	Tier   int      `json:"tier"`
	Models []string `json:"models"`
	Nodes  int      `json:"nodes"`
	// Accepted: done with a passing verdict. Repaired: done after at least
	// one repair. Escalated: failed here and moved up a tier. Failed:
	// failed for good.
	Accepted  int   `json:"accepted"`
	Repaired  int   `json:"repaired"`
	Escalated int   `json:"escalated"`
	Failed    int   `json:"failed"`
	CostNanos int64 `json:"cost_nanos"`
}

// verification counts the worker nodes' outcomes per tier.
func verification(nodes []swarm.Node) []tierStats {
	by := map[int]*tierStats{}
	for _, n := range nodes {
		if n.Role != swarm.RoleWorker {
			continue
		}
		t := by[n.Tier]
		if t == nil {
			t = &tierStats{Tier: n.Tier}
			by[n.Tier] = t
		}
		t.Nodes++
		t.CostNanos += int64(n.Cost)
		if n.Model != "" && !contains(t.Models, n.Model) {
			t.Models = append(t.Models, n.Model)
		}
		switch n.Status {
		case swarm.StatusDone:
			if n.Verdict != nil && n.Verdict.Outcome == "pass" {
				t.Accepted++
			}
			if n.Attempt > 0 {
				t.Repaired++
			}
		case swarm.StatusEscalated:
			t.Escalated++
		case swarm.StatusFailed:
			t.Failed++
		}
	}
	out := make([]tierStats, 0, len(by))
	for _, t := range by {
		out = append(out, *t)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Tier < out[j].Tier })
	return out
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}
