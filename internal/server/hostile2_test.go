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

// TestHostileTokenStarvesStreams: Limits bound "the concurrent event
// streams of a token", but the server keeps one counter for every token:
// a named token holding its own streams open takes every slot, and the
// main token (and every other) is refused its own run's events.
func TestHostileTokenStarvesStreams(t *testing.T) {
	sc := &script{n: 1}
	sc.slow.Store(true)
	e := newTestEnvSetup(t, sc.handle, swarm.Options{}, func(s *Server) {
		s.Tokens = []Token{{Name: "ci", Value: ciToken}}
		s.Limits.StreamsPerToken = 2
	})
	start := func(token string) string {
		var out struct{ ID string }
		if resp := e.do("POST", "/v1/runs", token, map[string]any{"task": "SLOW", "budget_usd": json.Number("1")}, &out); resp.StatusCode != http.StatusCreated {
			t.Fatalf("start: %d", resp.StatusCode)
		}
		t.Cleanup(func() { e.engine.Cancel(context.Background(), out.ID) })
		return out.ID
	}
	stream := func(token, id string) *http.Response {
		req, _ := http.NewRequest("GET", e.srv.URL+"/v1/runs/"+id+"/events", nil)
		req.Header.Set("Authorization", "Bearer "+token)
		resp, err := e.srv.Client().Do(req)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { resp.Body.Close() })
		return resp
	}
	ciRun, mainRun := start(ciToken), start(testToken)
	for range 2 {
		if resp := stream(ciToken, ciRun); resp.StatusCode != http.StatusOK {
			t.Fatalf("ci's own stream: %d", resp.StatusCode)
		}
	}
	if resp := stream(testToken, mainRun); resp.StatusCode != http.StatusOK {
		t.Fatalf("the main token's only stream, refused because token ci holds its own: %d", resp.StatusCode)
	}
}
