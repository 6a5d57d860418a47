package swarm

import (
	"context"
	"fmt"

	"github.com/hive-swarm/hive/internal/workspace"
)

// openWorkspace opens the run's workspace as its spec says.
func openWorkspace(spec Spec) (*workspace.Workspace, error) {
	ws, err := workspace.Open(spec.Workspace, workspace.Options{Hide: spec.WorkspaceHide, Show: spec.WorkspaceShow})
	if err != nil {
		return nil, fmt.Errorf("workspace %s: %w", spec.Workspace, err)
	}
	return ws, nil
}

// baseFingerprint returns the fingerprint of the workspace a run is about
// to start on: what hive apply checks the directory against at the end.
func baseFingerprint(ctx context.Context, spec Spec) (string, error) {
	ws, err := openWorkspace(spec)
	if err != nil {
		return "", err
	}
	defer ws.Close()
	fp, err := ws.Fingerprint(ctx)
	if err != nil {
		return "", fmt.Errorf("workspace %s: %w", spec.Workspace, err)
	}
	return fp, nil
}
