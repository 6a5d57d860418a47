package main

import (
	"context"
	"encoding/json"
	"fmt"
	"github.com/hive-swarm/hive/internal/swarm"
	"text/tabwriter"

	"github.com/hive-swarm/hive/internal/price"
)

func runRuns(ctx context.Context, env *Env, args []string) error {
	fs := newFlags(env, "runs", "[flags]")
	var sf storeFlags
	sf.register(fs)
	limit := fs.Int("limit", 20, "list at most this many runs, newest first; 0 for all")
	asJSON := fs.Bool("json", false, "print a JSON array")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if fs.NArg() != 0 {
		return usageErrorf("runs takes no arguments (hive show RUN_ID shows one run)")
	}
	if *limit < 0 {
		return usageErrorf("--limit takes a number ≥ 0")
	}
	sess, err := sf.openStore(ctx, env)
	if err != nil {
		return err
	}
	defer sess.close()
	runs, err := sess.store.Runs(ctx, *limit)
	if err != nil {
		return err
	}
	if *asJSON {
		out := make([]swarm.RunView, 0, len(runs))
		for _, r := range runs {
			out = append(out, swarm.ViewRun(r))
		}
		enc := json.NewEncoder(env.Stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(out)
	}
	if len(runs) == 0 {
		fmt.Fprintln(env.Stderr, `No runs yet: start one with hive run "TASK".`)
		return nil
	}
	w := tabwriter.NewWriter(env.Stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(w, "ID\tSTATUS\tCOST\tCREATED\tTASK")
	for _, r := range runs {
		fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\n", r.ID, r.Status, price.Amount(r.CostNanos), r.Created.Local().Format("2006-01-02 15:04"), shorten(oneLine(r.Task), 60))
	}
	return w.Flush()
}

// shorten cuts s to n runes, the last an ellipsis.
func shorten(s string, n int) string {
	r := []rune(s)
	if len(r) <= n {
		return s
	}
	return string(r[:n-1]) + "…"
}
