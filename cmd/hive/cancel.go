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
	if _, err := swarm.CancelStored(ctx, sess.store, jr.ID); err != nil {
		return fmt.Errorf("%s (see hive show %s)", oneLine(err.Error()), jr.ID)
	}
	fmt.Fprintf(env.Stdout, "cancelled run %s; continue it with: hive resume %s\n", jr.ID, jr.ID)
	return nil
}
