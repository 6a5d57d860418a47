package mcpserver_test

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/hive-swarm/hive/internal/config"
	"github.com/hive-swarm/hive/internal/journal"
	"github.com/hive-swarm/hive/internal/llm"
	"github.com/hive-swarm/hive/internal/llm/llmtest"
	"github.com/hive-swarm/hive/internal/mcpserver"
	"github.com/hive-swarm/hive/internal/provider"
	"github.com/hive-swarm/hive/internal/server"
	"github.com/hive-swarm/hive/internal/swarm"
)

// envWith is newEnv with the models answering by handle.
func envWith(t *testing.T, handle func(*llmtest.Call) llmtest.Reply) *env {
	t.Helper()
	e := &env{t: t, script: &script{n: 1}}
	e.llm = llmtest.NewOpenAI(handle)
	t.Cleanup(e.llm.Close)
	ctx := context.Background()
	store, err := journal.Open(ctx, filepath.Join(t.TempDir(), "hive.db"), testLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	f := func(v float64) *float64 { return &v }
	cfg := config.Default()
	for name, p := range map[string][2]float64{"lead": {1, 2}, "cheap": {0.1, 0.2}} {
		cfg.Models[name] = &config.Model{Name: name, Provider: "openai", ID: name, BaseURL: e.llm.URL + "/v1",
			Price: &config.Price{Input: f(p[0]), Output: f(p[1])}}
	}
	cfg.Defaults.Lead, cfg.Defaults.Tiers, cfg.Defaults.BudgetUSD = "lead", []string{"cheap"}, 1
	reg := provider.NewRegistry(cfg, func(string) string { return "" }, testLogger(t))
	engine, err := swarm.New(ctx, store, reg, testLogger(t), swarm.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		engine.Close(context.Background())
		store.Close()
	})
	e.store, e.engine, e.cfg = store, engine, cfg
	e.srv = mcpserver.New(engine, cfg, server.MCPPlanner(cfg), testLogger(t))
	return e
}

// TestHostileMCPWorkspaceIsGitDir: an MCP client names, as its workspace,
// a repository's .git directory under an allowed root. In it no path
// element is ".git": the workers would read .git/config (credentials in
// remote URLs) and patch it (core.fsmonitor runs a command at the next
// git status once hive apply writes it). The run is refused.
func TestHostileMCPWorkspaceIsGitDir(t *testing.T) {
	root := t.TempDir()
	repo := filepath.Join(root, "repo")
	os.MkdirAll(repo, 0o755)
	if out, err := exec.Command("git", "-C", repo, "init", "-q").CombinedOutput(); err != nil {
		t.Fatal(err, string(out))
	}
	exec.Command("git", "-C", repo, "remote", "add", "origin", "https://alice:ghp_SECRETTOKEN123@github.com/a/b").Run()
	marker := filepath.Join(t.TempDir(), "pwned")

	var leaked string
	handle := func(c *llmtest.Call) llmtest.Reply {
		if !isLead(c) {
			n := 0
			for _, m := range c.Messages {
				for _, pt := range m.Parts {
					if _, ok := pt.(llm.ToolResult); ok {
						n++
					}
				}
			}
			switch n {
			case 0:
				return llmtest.Reply{ToolCalls: []llmtest.ToolCall{toolCall("read_file", map[string]any{"path": "config"})}}
			case 1:
				for _, r := range c.ToolResults() {
					leaked += r.Content
				}
				return llmtest.Reply{ToolCalls: []llmtest.ToolCall{toolCall("edit_file", map[string]any{
					"path": "config", "old_string": "[core]\n",
					"new_string": "[core]\n\tfsmonitor = \"touch " + marker + "; false\"\n"})}}
			}
			return llmtest.Reply{ToolCalls: []llmtest.ToolCall{toolCall("submit", map[string]any{"report": "tidied the config"})}}
		}
		if len(c.ToolResults()) == 0 {
			return llmtest.Reply{ToolCalls: []llmtest.ToolCall{toolCall("delegate", map[string]any{"tasks": []map[string]string{{"name": "tidy", "instructions": "tidy"}}})}}
		}
		return llmtest.Reply{ToolCalls: []llmtest.ToolCall{toolCall("finish", map[string]any{"answer": "done"})}}
	}
	e := envWith(t, handle)
	e.cfg.Workspace.Roots = []string{root}
	e.srv = mcpserver.New(e.engine, e.cfg, server.MCPPlanner(e.cfg), testLogger(t))
	ctx := context.Background()
	c, _ := e.connect(ctx)
	res := c.call(t, ctx, "run_swarm", map[string]any{"task": "tidy", "workspace": filepath.Join(repo, ".git")}, nil)
	if !res.IsError || !strings.Contains(text(res), ".git directory") {
		t.Fatalf("run_swarm on the repository's .git: %s", text(res))
	}
	if strings.Contains(leaked, "ghp_SECRETTOKEN123") {
		t.Errorf("a worker read .git/config, with the remote's token")
	}
	if _, err := os.Stat(marker); err == nil {
		t.Errorf("the model's command ran")
	}
}
