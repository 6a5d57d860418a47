package main

import (
	"context"
	"encoding/json"
	"fmt"

	"github.com/hive-swarm/hive/internal/price"
	"github.com/hive-swarm/hive/internal/swarm"
	"github.com/hive-swarm/hive/internal/treeview"
)

func runResume(ctx context.Context, env *Env, args []string) error {
	fs := newFlags(env, "resume", "[flags] RUN_ID  (an id or a unique prefix of one)")
	var sf storeFlags
	sf.register(fs)
	asJSON := fs.Bool("json", false, "print each event from the resume on as one JSON line on stdout, then a result line")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	sess, jr, err := sf.openRun(ctx, env, fs)
	if err != nil {
		return err
	}
	defer sess.close()
	var spec swarm.Spec
	json.Unmarshal(jr.Spec, &spec) // only for the budget shown; zero is fine
	// The journal's state before this process touches the run: the events
	// after it are the resumed run's (an earlier attempt's run_finished
	// stays behind).
	nodes, err := swarm.LoadNodes(ctx, sess.store, jr.ID)
	if err != nil {
		return fmt.Errorf("read the nodes of run %s: %w", jr.ID, err)
	}
	seq, err := sess.store.LastSeq(ctx, jr.ID)
	if err != nil {
		return fmt.Errorf("read the events of run %s: %w", jr.ID, err)
	}
	if err := sess.startEngine(ctx, env, jr.ID); err != nil {
		return err
	}
	id, err := sess.engine.Resume(ctx, jr.ID)
	if err != nil {
		return err
	}
	tree := treeview.FromNodes(id, nodes)
	tree.Spent = price.Amount(jr.CostNanos)
	return follow(ctx, env, sess, tree, seq, spec.BudgetUSD, *asJSON)
}
