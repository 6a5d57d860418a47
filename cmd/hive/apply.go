package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"

	"github.com/hive-swarm/hive/internal/journal"
	"github.com/hive-swarm/hive/internal/swarm"
	"github.com/hive-swarm/hive/internal/workspace"
)

// errNoPatch: a done run whose workers changed nothing the lead merged.
var errNoPatch = errors.New("its workers changed nothing that the lead merged")

func runApply(ctx context.Context, env *Env, args []string) error {
	fs := newFlags(env, "apply", "[flags] RUN_ID  (an id or a unique prefix of one)")
	var sf storeFlags
	sf.register(fs)
	dir := fs.String("dir", "", "write the patch into DIR instead of the run's workspace: a copy of it as it was when the run began (a fresh clone, say)")
	print := fs.Bool("print", false, "print the run's patch (a unified diff that git apply reads) instead of writing it")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	sess, jr, err := sf.openRun(ctx, env, fs)
	if err != nil {
		return err
	}
	defer sess.close()
	return applyRun(ctx, env, sess, jr, *dir, *print)
}

// applyRun writes run jr's merged patch into its workspace (or dir), as
// workspace.Apply does: only when the directory is as the run found it.
// With print, it prints the patch instead.
func applyRun(ctx context.Context, env *Env, sess *session, jr journal.Run, dir string, print bool) error {
	var spec swarm.Spec
	json.Unmarshal(jr.Spec, &spec)
	if spec.Workspace == "" {
		return fmt.Errorf("run %s has no workspace, so no patch to apply (hive run --workspace DIR gives a run one)", jr.ID)
	}
	_, _, content, err := sess.store.Artifact(ctx, jr.ID, swarm.RunPatch)
	switch {
	case errors.Is(err, journal.ErrNotFound) && swarm.Status(jr.Status) == swarm.StatusDone:
		return fmt.Errorf("run %s has no patch: %w (hive show %s shows the tree)", jr.ID, errNoPatch, jr.ID)
	case errors.Is(err, journal.ErrNotFound):
		return fmt.Errorf("run %s has no patch: it is %s, and a run's patch is made when its lead finishes (hive resume %s continues it)", jr.ID, jr.Status, jr.ID)
	case err != nil:
		return err
	}
	if print {
		if isTerminal(env.Stdout) { // piped, the patch goes as it is, for git apply
			content = []byte(termSafe(string(content)))
		}
		_, err := env.Stdout.Write(content)
		return err
	}
	p, err := workspace.ParsePatch("run "+jr.ID, string(content))
	if err != nil {
		return fmt.Errorf("run %s's patch cannot be read: %w", jr.ID, err)
	}
	target := spec.Workspace
	if dir != "" {
		if target, err = workspaceDir(dir, "--dir"); err != nil {
			return err
		}
	}
	if fi, err := os.Stat(target); err != nil || !fi.IsDir() {
		return fmt.Errorf("workspace %s no longer exists (or is not a directory): apply the patch to a copy with hive apply --dir DIR %s, or print it with hive apply --print %s", target, jr.ID, jr.ID)
	}
	ws, err := workspace.Open(target, workspace.Options{Hide: spec.WorkspaceHide, Show: spec.WorkspaceShow})
	if err != nil {
		return fmt.Errorf("workspace %s: %w", target, err)
	}
	defer ws.Close()
	if err := ws.Apply(ctx, p, spec.WorkspaceBase); err != nil {
		if errors.Is(err, workspace.ErrChanged) {
			return fmt.Errorf("%s: %v; or apply what still fits yourself: hive apply --print %s > %s.patch, then in %s git apply --reject %s.patch (it writes the hunks that no longer fit to .rej files)",
				target, err, jr.ID, jr.ID, target, jr.ID)
		}
		return fmt.Errorf("%s: %w (nothing was written)", target, err)
	}
	add, del := p.Stat()
	fmt.Fprintf(env.Stderr, "applied run %s's patch to %s: %d file(s), +%d -%d\n", jr.ID, target, len(p.Paths()), add, del)
	return nil
}
