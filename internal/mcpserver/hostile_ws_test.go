package mcpserver_test

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/hive-swarm/hive/internal/mcpserver"
	"github.com/hive-swarm/hive/internal/server"
)

// TestHostileMCPWorkspaceIsGitDir: an MCP client names, as its workspace,
// a repository's .git directory under an allowed root. Inside it no path
// element is ".git": workers would read .git/config (credentials in
// remote URLs) and patch it (core.fsmonitor runs a command at the next
// git status once hive apply writes it). The run is refused before any
// model is called.
func TestHostileMCPWorkspaceIsGitDir(t *testing.T) {
	root := t.TempDir()
	repo := filepath.Join(root, "repo")
	if err := os.MkdirAll(repo, 0o755); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command("git", "-C", repo, "init", "-q").CombinedOutput(); err != nil {
		t.Fatal(err, string(out))
	}
	e := newEnv(t)
	e.cfg.Workspace.Roots = []string{root}
	e.srv = mcpserver.New(e.engine, e.cfg, server.MCPPlanner(e.cfg), testLogger(t))
	ctx := context.Background()
	c, _ := e.connect(ctx)
	for _, dir := range []string{filepath.Join(repo, ".git"), filepath.Join(repo, ".git", "hooks")} {
		res := c.call(t, ctx, "run_swarm", map[string]any{"task": "tidy", "workspace": dir}, nil)
		if !res.IsError || !strings.Contains(text(res), ".git directory") {
			t.Errorf("run_swarm on %s: %s", dir, text(res))
		}
	}
	if n := e.llm.Requests(); n != 0 {
		t.Errorf("the models were called %d times", n)
	}
}
