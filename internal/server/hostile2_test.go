package server

import (
	"context"
	"encoding/json"
	"net/http"
	"os"
	"path/filepath"
	"testing"

	"github.com/hive-swarm/hive/internal/swarm"
)

// TestHostileTokenWorkspaceAnywhere: /mcp lets a token name a workspace
// only under [workspace] roots (none here: no directory at all), but
// POST /v1/runs takes any absolute path from the same named token, so a
// client the operator bounded has its workers list and read any directory
// of the server's machine (the operator's home, another token's project).
func TestHostileTokenWorkspaceAnywhere(t *testing.T) {
	sc := &script{n: 1}
	e := newTestEnvSetup(t, sc.handle, swarm.Options{}, func(s *Server) {
		s.Tokens = []Token{{Name: "ci", Value: ciToken}}
	})
	private := t.TempDir()
	os.WriteFile(filepath.Join(private, "notes.txt"), []byte("the operator's notes\n"), 0o644)
	var out struct{ ID string }
	resp := e.do("POST", "/v1/runs", ciToken, map[string]any{"task": "Summarise the notes.", "budget_usd": json.Number("1"), "workspace": private}, &out)
	if out.ID != "" {
		t.Cleanup(func() { e.engine.Cancel(context.Background(), out.ID) })
	}
	if resp.StatusCode != http.StatusBadRequest {
		t.Fatalf("token ci named %s, under no root, as its run's workspace: %d (run %s)", private, resp.StatusCode, out.ID)
	}
}
