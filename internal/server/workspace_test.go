package server

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hive-swarm/hive/internal/config"
	"github.com/hive-swarm/hive/internal/swarm"
)

// TestRunWorkspace: POST /v1/runs takes a workspace, whose fingerprint the
// run journals; a [swarms.NAME] table's workspace reaches the runs of the
// chat endpoint that name it.
func TestRunWorkspace(t *testing.T) {
	e := newTestEnv(t, (&script{n: 1}).handle)
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "a.txt"), []byte("a\n"), 0o644)
	var created struct{ ID string }
	if resp := e.do("POST", "/v1/runs", testToken, `{"task": "look", "workspace": "`+dir+`"}`, &created); resp.StatusCode != 201 {
		t.Fatalf("POST /v1/runs: %d", resp.StatusCode)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, err := e.engine.Wait(ctx, created.ID); err != nil {
		t.Fatal(err)
	}
	jr, err := e.store.Run(ctx, created.ID)
	if err != nil {
		t.Fatal(err)
	}
	v := swarm.ViewRun(jr)
	if v.Spec == nil || v.Spec.Workspace != dir || !strings.HasPrefix(v.Spec.WorkspaceBase, "sha256:") {
		t.Errorf("the run's spec: %+v", v.Spec)
	}

	e.cfg.Swarms["fixer"] = &config.Swarm{Workspace: dir}
	spec, ok, err := e.server.swarmSpec("fixer")
	if !ok || err != nil || spec.Workspace != dir {
		t.Errorf("swarm fixer: %+v, %v, %v", spec.Workspace, ok, err)
	}
}
