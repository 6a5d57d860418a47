package swarm

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	sdk "github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/hive-swarm/hive/internal/llm/llmtest"
	"github.com/hive-swarm/hive/internal/mcp"
)

type (
	sumIn struct {
		A float64 `json:"a"`
		B float64 `json:"b"`
	}
	sizeIn struct {
		Bytes int `json:"bytes"`
	}
	noArgs struct{}
)

// calcServer is an MCP server built with the Go SDK, over streamable HTTP,
// that counts the calls of each of its tools.
type calcServer struct {
	URL   string
	mu    sync.Mutex
	calls map[string]int // guarded by mu
}

func newCalcServer(t *testing.T) *calcServer {
	t.Helper()
	cs := &calcServer{calls: map[string]int{}}
	count := func(name string) {
		cs.mu.Lock()
		cs.calls[name]++
		cs.mu.Unlock()
	}
	srv := sdk.NewServer(&sdk.Implementation{Name: "calc", Version: "1"}, nil)
	sdk.AddTool(srv, &sdk.Tool{Name: "add", Description: "Adds two numbers."},
		func(_ context.Context, _ *sdk.CallToolRequest, in sumIn) (*sdk.CallToolResult, any, error) {
			count("add")
			return &sdk.CallToolResult{Content: []sdk.Content{&sdk.TextContent{Text: strconv.FormatFloat(in.A+in.B, 'f', -1, 64)}}}, nil, nil
		})
	sdk.AddTool(srv, &sdk.Tool{Name: "big", Description: "Answers that many bytes."},
		func(_ context.Context, _ *sdk.CallToolRequest, in sizeIn) (*sdk.CallToolResult, any, error) {
			count("big")
			return &sdk.CallToolResult{Content: []sdk.Content{&sdk.TextContent{Text: strings.Repeat("x", in.Bytes)}}}, nil, nil
		})
	sdk.AddTool(srv, &sdk.Tool{Name: "drop_tables", Description: "Not for models."},
		func(_ context.Context, _ *sdk.CallToolRequest, _ noArgs) (*sdk.CallToolResult, any, error) {
			count("drop_tables")
			return &sdk.CallToolResult{Content: []sdk.Content{&sdk.TextContent{Text: "dropped"}}}, nil, nil
		})
	h := sdk.NewStreamableHTTPHandler(func(*http.Request) *sdk.Server { return srv }, nil)
	ts := httptest.NewServer(h)
	t.Cleanup(func() {
		for ss := range srv.Sessions() {
			ss.Close()
		}
		ts.Close()
	})
	cs.URL = ts.URL
	return cs
}

func (cs *calcServer) count(name string) int {
	cs.mu.Lock()
	defer cs.mu.Unlock()
	return cs.calls[name]
}

// TestMCPTools: a run offers the tools its [mcp.NAME] table allows, by
// SERVER__tool, to the roles and tiers it names; a call answers through
// the server, a long answer is capped with the whole of it an artifact, a
// tool not allowed or arguments that are not an object reach nothing, and
// every call is counted on its node; the lead calls one when roles allow.
func TestMCPTools(t *testing.T) {
	calc := newCalcServer(t)
	w := &steps{calls: []llmtest.ToolCall{
		toolCall("calc__add", map[string]any{"a": 2, "b": 40}),
		toolCall("calc__big", map[string]any{"bytes": 5000}),
		toolCall("calc__drop_tables", map[string]any{}),
		{Name: "calc__add", Input: `[2, 40]`},
		toolCall("calc__add", map[string]any{"a": 1, "b": 2}),
		{Name: "calc__add", Input: `"two and forty"`},
		toolCall("submit", map[string]any{"report": "42"}),
	}}
	var strongTools, leadTools, leadSaw notes
	h := func(c *llmtest.Call) llmtest.Reply {
		if isLead(c) {
			if turns(c) == 0 {
				leadTools.add(strings.Join(c.Tools, " "))
				return llmtest.Reply{ToolCalls: []llmtest.ToolCall{toolCall("calc__add", map[string]any{"a": 1, "b": 1})}}
			}
			if turns(c) == 1 {
				leadSaw.add(lastResult(c))
				return llmtest.Reply{ToolCalls: []llmtest.ToolCall{toolCall("delegate", delegateArgs{Tasks: []TaskSpec{
					{Name: "sum", Instructions: "Add 2 and 40."},
					{Name: "strong", Instructions: "Say hi.", Tier: ptr(1)},
				}})}}
			}
			return finish("done")
		}
		if taskName(c) == "strong" {
			strongTools.add(strings.Join(c.Tools, " "))
			return llmtest.Reply{ToolCalls: []llmtest.ToolCall{toolCall("submit", submitArgs{Report: "hi"})}}
		}
		return w.reply(c)
	}
	hs := newHarness(t, h, Options{})
	res := hs.run(Spec{Task: "use tools", BudgetUSD: 1e9, MCP: map[string]*mcp.ServerConfig{
		"calc": {URL: calc.URL, Allow: []string{"add", "big"}, MaxOutput: 1000, Roles: []string{"worker", "lead"}, Tiers: []string{"cheap"}},
	}})
	if res.Status != StatusDone {
		t.Fatalf("run %s: %q", res.Status, res.Error)
	}
	for i, want := range map[int]string{
		0: "42",
		1: "[the whole output, 5000 bytes, is the artifact 1/mcp-0-2]",
		2: `unknown tool "calc__drop_tables"`,
		3: "the arguments are an array; give a JSON object",
		4: "3",
		5: "the arguments are a string; give a JSON object",
	} {
		if got := w.result(i); !strings.Contains(got, want) {
			t.Errorf("call %d (%s): %q, want %q", i, w.calls[i].Name, clip(got, 300), want)
		}
	}
	if got := w.result(1); len(got) > 1200 {
		t.Errorf("the big answer reached the model whole: %d bytes", len(got))
	}
	if _, _, full, err := hs.store.Artifact(context.Background(), res.RunID, "1/mcp-0-2"); err != nil || len(full) != 5000 {
		t.Errorf("the whole answer: %d bytes, %v", len(full), err)
	}
	if calc.count("drop_tables") != 0 || calc.count("add") != 3 || calc.count("big") != 1 {
		t.Errorf("calls reaching the server: %v", calc.calls)
	}
	if got := strongTools.all(); len(got) != 1 || strings.Contains(got[0], "calc__") {
		t.Errorf("a worker of a tier the table does not name was offered its tools: %q", got)
	}
	if got := leadTools.all(); len(got) != 1 || !strings.Contains(got[0], "calc__add calc__big") {
		t.Errorf("the lead's tools: %q", got)
	}
	if got := leadSaw.all(); len(got) != 1 || got[0] != "2" {
		t.Errorf("the lead's call: %q", got)
	}
	var worker Node
	for _, n := range hs.nodes(res.RunID) {
		if n.ID == "1" {
			worker = n
		}
	}
	if worker.Status != StatusDone || worker.ToolCalls != 3 || worker.ToolErrors != 0 {
		t.Errorf("worker node: %s, %d tool calls, %d failed; want done, 3 and 0", worker.Status, worker.ToolCalls, worker.ToolErrors)
	}
	tools := 0
	for ev := range hs.engine.Watch(context.Background(), res.RunID, 0) {
		if ev.Type == EventTool {
			tools++
		}
	}
	if tools != 4 {
		t.Errorf("%d tool events, want 4", tools)
	}
}

// TestMCPResume: a call journaled before the run was cancelled is read
// back when it resumes, never made again.
func TestMCPResume(t *testing.T) {
	calc := newCalcServer(t)
	started := make(chan struct{})
	release := make(chan struct{})
	var once sync.Once
	var calls atomic.Int32
	w := &steps{calls: []llmtest.ToolCall{
		toolCall("calc__add", map[string]any{"a": 2, "b": 40}),
		toolCall("submit", map[string]any{"report": "added"}),
	}}
	h := func(c *llmtest.Call) llmtest.Reply {
		if isLead(c) {
			return leadOneTask(c, TaskSpec{Name: "sum", Instructions: "Add."})
		}
		calls.Add(1)
		if turns(c) == 1 {
			once.Do(func() { close(started) })
			<-release
		}
		return w.reply(c)
	}
	hs := newHarness(t, h, Options{})
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	id, err := hs.engine.Start(ctx, Spec{Task: "add and resume", Lead: "lead", Tiers: []string{"cheap"}, BudgetUSD: 1e9,
		MCP: map[string]*mcp.ServerConfig{"calc": {URL: calc.URL, Allow: []string{"*"}}}})
	if err != nil {
		t.Fatal(err)
	}
	select {
	case <-started:
	case <-ctx.Done():
		t.Fatal("the worker did not call")
	}
	if err := hs.engine.Cancel(ctx, id); err != nil {
		t.Fatal(err)
	}
	close(release)
	if res, err := hs.engine.Wait(ctx, id); err != nil || res.Status != StatusCancelled {
		t.Fatalf("after cancel: %+v, %v", res, err)
	}
	if _, err := hs.engine.Resume(ctx, id); err != nil {
		t.Fatal(err)
	}
	res, err := hs.engine.Wait(ctx, id)
	if err != nil || res.Status != StatusDone || res.Answer != "done: added" {
		t.Fatalf("after resume: %+v, %v", res, err)
	}
	if n := calc.count("add"); n != 1 {
		t.Errorf("the tool was called %d times; once, and read back on resume", n)
	}
	if got := w.result(0); got != "42" {
		t.Errorf("the resumed worker read %q", got)
	}
}
