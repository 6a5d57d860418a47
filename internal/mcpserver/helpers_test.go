package mcpserver_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/hive-swarm/hive/internal/config"
	"github.com/hive-swarm/hive/internal/journal"
	"github.com/hive-swarm/hive/internal/llm/llmtest"
	"github.com/hive-swarm/hive/internal/mcpserver"
	"github.com/hive-swarm/hive/internal/provider"
	"github.com/hive-swarm/hive/internal/sandbox"
	"github.com/hive-swarm/hive/internal/server"
	"github.com/hive-swarm/hive/internal/swarm"
	"github.com/hive-swarm/hive/internal/verify"
)

// TestMain lets the sandbox re-execute the test binary as its isolated
// child before any test runs.
func TestMain(m *testing.M) {
	sandbox.Init(verify.Programs()...)
	os.Exit(m.Run())
}

type tWriter struct{ t testing.TB }

func (w tWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimSpace(string(p)))
	return len(p), nil
}

func testLogger(t testing.TB) *slog.Logger {
	return slog.New(slog.NewTextHandler(tWriter{t}, &slog.HandlerOptions{Level: slog.LevelWarn}))
}

// env is an engine on a temporary journal whose models ("lead", "cheap",
// "strong") are served by one scripted llmtest server, and an MCP server
// over it.
type env struct {
	t      *testing.T
	llm    *llmtest.Server
	store  *journal.Store
	engine *swarm.Engine
	cfg    *config.Config
	srv    *mcpserver.Server
	script *script
	// workspace is swarm fixer's, holding a.txt.
	workspace string
}

func newEnv(t *testing.T) *env {
	t.Helper()
	e := &env{t: t, script: &script{n: 3}}
	e.llm = llmtest.NewOpenAI(e.script.handle)
	t.Cleanup(e.llm.Close)
	ctx := context.Background()
	store, err := journal.Open(ctx, filepath.Join(t.TempDir(), "hive.db"), testLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	f := func(v float64) *float64 { return &v }
	cfg := config.Default()
	for name, p := range map[string][2]float64{"lead": {1, 2}, "cheap": {0.1, 0.2}, "strong": {1, 2}} {
		cfg.Models[name] = &config.Model{Name: name, Provider: "openai", ID: name, BaseURL: e.llm.URL + "/v1",
			Price: &config.Price{Input: f(p[0]), Output: f(p[1])}}
	}
	cfg.Defaults.Lead, cfg.Defaults.Tiers, cfg.Defaults.BudgetUSD = "lead", []string{"cheap", "strong"}, 1
	e.workspace = t.TempDir()
	if err := os.WriteFile(filepath.Join(e.workspace, "a.txt"), []byte("broken\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	cfg.Swarms = map[string]*config.Swarm{"fast": {Tiers: []string{"cheap"}, BudgetUSD: f(0.5), MaxWorkers: 4},
		"fixer": {Workspace: e.workspace}}
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
	e.srv.ProgressInterval = 20 * time.Millisecond
	return e
}

// client is a Go SDK client session on the server, and the progress
// notifications it got.
type client struct {
	*mcp.ClientSession
	mu       sync.Mutex
	progress []*mcp.ProgressNotificationParams // guarded by mu
}

func (c *client) notes() []*mcp.ProgressNotificationParams {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]*mcp.ProgressNotificationParams(nil), c.progress...)
}

func (c *client) options() *mcp.ClientOptions {
	return &mcp.ClientOptions{ProgressNotificationHandler: func(_ context.Context, req *mcp.ProgressNotificationClientRequest) {
		c.mu.Lock()
		c.progress = append(c.progress, req.Params)
		c.mu.Unlock()
	}}
}

// connect serves the server over pipes until the test ends, and returns
// a client of it; served answers what Serve returned, once it has. When
// the test ends, no goroutine of the server's may be left.
func (e *env) connect(ctx context.Context) (c *client, served <-chan error) {
	e.t.Helper()
	c, served, _ = e.connectPipes(ctx)
	return c, served
}

// connectPipes is connect, also returning a func that closes the
// server's input, as a client that goes away does.
func (e *env) connectPipes(ctx context.Context) (c *client, served <-chan error, hangUp func()) {
	e.t.Helper()
	toServer, fromClient := io.Pipe()
	toClient, fromServer := io.Pipe()
	done := make(chan error, 1)
	ended := make(chan struct{})
	go func() {
		defer close(ended)
		done <- e.srv.Serve(ctx, &mcp.IOTransport{Reader: toServer, Writer: fromServer})
	}()
	c = &client{}
	cs, err := mcp.NewClient(&mcp.Implementation{Name: "test", Version: "1"}, c.options()).
		Connect(ctx, &mcp.IOTransport{Reader: toClient, Writer: fromClient}, nil)
	if err != nil {
		e.t.Fatal(err)
	}
	c.ClientSession = cs
	e.t.Cleanup(func() {
		fromClient.Close()
		select {
		case <-ended:
		case <-time.After(10 * time.Second):
			e.t.Error("Serve did not return after the client closed")
		}
		cs.Close()
		noLeaks(e.t)
	})
	return c, done, func() { fromClient.Close() }
}

// noLeaks fails t if a goroutine of a Server's is still running.
func noLeaks(t *testing.T) {
	t.Helper()
	var stacks string
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		buf := make([]byte, 1<<20)
		stacks = string(buf[:runtime.Stack(buf, true)])
		if !strings.Contains(stacks, "internal/mcpserver.(*Server)") {
			return
		}
	}
	t.Errorf("a goroutine of the server outlived it:\n%s", stacks)
}

// waitNotes waits until the client has a progress notification of at
// least progress (the client handles notifications apart from responses,
// so the last may come just after the answer), and returns them all.
func (c *client) waitNotes(t *testing.T, progress float64) []*mcp.ProgressNotificationParams {
	t.Helper()
	ns := c.notes()
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); ns = c.notes() {
		if len(ns) > 0 && ns[len(ns)-1].Progress >= progress {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	return ns
}

// call calls a tool, failing the test on a protocol error.
func (c *client) call(t *testing.T, ctx context.Context, tool string, args any, token any) *mcp.CallToolResult {
	t.Helper()
	p := &mcp.CallToolParams{Name: tool, Arguments: args}
	if token != nil {
		p.SetProgressToken(token)
	}
	res, err := c.CallTool(ctx, p)
	if err != nil {
		t.Fatalf("%s: %v", tool, err)
	}
	return res
}

// text returns a result's text content.
func text(res *mcp.CallToolResult) string {
	var b strings.Builder
	for _, c := range res.Content {
		if tc, ok := c.(*mcp.TextContent); ok {
			b.WriteString(tc.Text)
		}
	}
	return b.String()
}

// structured decodes a result's structured content into v.
func structured(t *testing.T, res *mcp.CallToolResult, v any) {
	t.Helper()
	data, err := json.Marshal(res.StructuredContent)
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(data, v); err != nil {
		t.Fatalf("structured content %s: %v", data, err)
	}
}

// status reads a run's status from the journal.
func (e *env) status(id string) swarm.Status {
	e.t.Helper()
	jr, err := e.store.Run(context.Background(), id)
	if err != nil {
		e.t.Fatal(err)
	}
	return swarm.Status(jr.Status)
}

// runs counts the journal's runs.
func (e *env) runs() int {
	e.t.Helper()
	rs, err := e.store.Runs(context.Background(), 0)
	if err != nil {
		e.t.Fatal(err)
	}
	return len(rs)
}

// script is the models' behaviour: the lead delegates n tasks, each
// worker submits a report, and the lead finishes with the reports joined.
// A lead whose task mentions SLOW answers only after a minute (or when
// its request is cancelled).
type script struct {
	n         int
	leadCalls atomic.Int32
}

func isLead(c *llmtest.Call) bool { return strings.Contains(c.System, "lead of Hive") }

func toolCall(name string, args any) llmtest.ToolCall {
	b, _ := json.Marshal(args)
	return llmtest.ToolCall{Name: name, Input: string(b)}
}

func (sc *script) handle(c *llmtest.Call) llmtest.Reply {
	if !isLead(c) && strings.Contains(c.LastUserText(), "FIX a.txt") && len(c.ToolResults()) == 0 {
		return llmtest.Reply{ToolCalls: []llmtest.ToolCall{toolCall("write_file", map[string]any{"path": "a.txt", "content": "fixed\n"})}}
	}
	if !isLead(c) {
		name := "?"
		if _, after, ok := strings.Cut(c.LastUserText(), "Task \""); ok {
			name, _, _ = strings.Cut(after, "\"")
		}
		return llmtest.Reply{Latency: 20 * time.Millisecond, ToolCalls: []llmtest.ToolCall{toolCall("submit", map[string]any{"report": "report of " + name})}}
	}
	sc.leadCalls.Add(1)
	for _, m := range c.Messages {
		if strings.Contains(m.Text(), "SLOW") {
			return llmtest.Reply{Latency: time.Minute}
		}
	}
	if len(c.ToolResults()) == 0 && strings.Contains(c.LastUserText(), "FIX") {
		return llmtest.Reply{ToolCalls: []llmtest.ToolCall{toolCall("delegate", map[string]any{"tasks": []map[string]string{{"name": "fix", "instructions": "FIX a.txt"}}})}}
	}
	if len(c.ToolResults()) == 0 {
		tasks := []map[string]string{}
		for i := range sc.n {
			tasks = append(tasks, map[string]string{"name": fmt.Sprintf("t-%d", i), "instructions": fmt.Sprintf("Say %d.", i)})
		}
		return llmtest.Reply{ToolCalls: []llmtest.ToolCall{toolCall("delegate", map[string]any{"tasks": tasks})}}
	}
	return llmtest.Reply{ToolCalls: []llmtest.ToolCall{toolCall("finish", map[string]any{"answer": fmt.Sprintf("%d reports", sc.n)})}}
}

// waitFor polls cond until it holds or 10 s pass.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); !cond(); time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("still not %s after 10s", what)
		}
	}
}
