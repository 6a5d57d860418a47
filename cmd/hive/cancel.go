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
	sess, jr, err := sf.openRun(ctx, env, fs)
	if err != nil {
		return err
	}
	defer sess.close()
	if _, err := swarm.CancelStored(ctx, sess.store, jr.ID); err != nil {
		return fmt.Errorf("%s (see hive show %s)", oneLine(err.Error()), jr.ID)
	}
	fmt.Fprintf(env.Stdout, "cancelled run %s; continue it with: hive resume %s\n", jr.ID, jr.ID)
	return nil
}
