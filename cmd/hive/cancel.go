package main

import (
	"context"
	"fmt"

	"github.com/hive-swarm/hive/internal/swarm"
)

func runCancel(ctx context.Context, env *Env, args []string) error {
	fs := newFlags(env, "cancel", "[flags] RUN_ID  (an id or a unique prefix of one)")
	var sf storeFlags
	sf.register(fs)
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if fs.NArg() != 1 {
		return usageErrorf("cancel takes one run id (hive runs lists them)")
	}
	sess, err := sf.openStore(ctx, env)
	if err != nil {
		return err
	}
	defer sess.close()
	jr, err := sess.findRun(ctx, fs.Arg(0))
	if err != nil {
		return err
	}
	if swarm.Status(jr.Status).Final() {
		return fmt.Errorf("run %s already ended (%s); nothing to cancel", jr.ID, jr.Status)
	}
	if err := sess.startEngine(ctx, env, jr.ID); err != nil {
		return err
	}
	if err := sess.engine.Cancel(ctx, jr.ID); err != nil {
		return fmt.Errorf("%s (see hive show %s)", oneLine(err.Error()), jr.ID)
	}
	// Stop what runs here (the engine recovered the run if a killed
	// process left it), then make sure the journal says cancelled: the
	// engine's own end of a run it stopped for Cancel may record "failed"
	// after Cancel recorded "cancelled" (a race in package swarm).
	sess.engine.Close(ctx)
	sess.engine = nil
	if cur, err := sess.store.Run(ctx, jr.ID); err == nil && (cur.Status == string(swarm.StatusFailed) || !swarm.Status(cur.Status).Final()) {
		sess.log.Debug("cancel: the run ended as "+cur.Status+" while cancelled; journaling it cancelled", "run", jr.ID)
		cur.Status, cur.Error = string(swarm.StatusCancelled), "cancelled"
		if err := sess.store.UpdateRun(ctx, cur); err != nil {
			return fmt.Errorf("journal the cancel of run %s: %w", jr.ID, err)
		}
	}
	fmt.Fprintf(env.Stdout, "cancelled run %s; continue it with: hive resume %s\n", jr.ID, jr.ID)
	return nil
}
