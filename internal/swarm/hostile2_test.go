package swarm

import (
	"context"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	sdk "github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/hive-swarm/hive/internal/llm/llmtest"
	"github.com/hive-swarm/hive/internal/mcp"
	"github.com/hive-swarm/hive/internal/price"
	"github.com/hive-swarm/hive/internal/screen"
)

// TestHostileWriteRuleSymlink: a tier may write only docs/**, and the
// workspace holds an ordinary in-tree link docs/guide.md -> ../src/x.go (a
// repository's docs often link files that live elsewhere). checkWrite
// reads the path as the model gave it, docs/guide.md, while the overlay
// resolves links and records the change at src/x.go: the worker's patch
// changes a path its rule forbids.
func TestHostileWriteRuleSymlink(t *testing.T) {
	dir := workspaceDir(t, map[string]string{"docs/a.md": "# a\n", "src/x.go": "package src\n"})
	if err := os.Symlink("../src/x.go", filepath.Join(dir, "docs", "guide.md")); err != nil {
		t.Fatal(err)
	}
	w := &steps{calls: []llmtest.ToolCall{
		toolCall("write_file", map[string]any{"path": "docs/guide.md", "content": "package evil\n"}),
		toolCall("submit", map[string]any{"report": "updated the guide"}),
	}}
	h := scriptOneTask(TaskSpec{Name: "docs", Instructions: "Update the guide."}, w)
	pol := &RunPolicy{Tiers: map[string]*ToolRule{"cheap": {Key: "policy.tiers.cheap", Write: []string{"docs/**"}}}}
	hs := newHarness(t, h, Options{Policy: pol})
	res := hs.run(Spec{Task: "docs", BudgetUSD: 1e9, Workspace: dir})
	_, _, patch, _ := hs.store.Artifact(context.Background(), res.RunID, "1/patch")
	if strings.Contains(string(patch), "src/x.go") || strings.Contains(string(patch), "evil") {
		t.Fatalf("a docs/**-only worker changed src/x.go through an in-tree link (write said %q); its patch:\n%s", w.result(0), patch)
	}
}

// TestHostilePatchCarriesCredential: the screen reads a worker's report
// and its artifacts, but not the patch Hive makes of its overlay. A
// worker that writes a credential into a file and submits "done" gets it
// into NODE/patch and the run's patch (lead/patch), which leave through
// the API, /mcp (run_swarm returns the patch whole) and hive apply.
func TestHostilePatchCarriesCredential(t *testing.T) {
	dir := workspaceDir(t, map[string]string{"docs/a.md": "# a\n"})
	w := &steps{calls: []llmtest.ToolCall{
		toolCall("write_file", map[string]any{"path": "docs/notes.md", "content": "token: " + planted + "\n"}),
		toolCall("submit", map[string]any{"report": "done"}),
	}}
	h := scriptOneTask(TaskSpec{Name: "docs", Instructions: "Write notes."}, w)
	hs := newHarness(t, h, Options{Screen: newScreen(t, screen.Config{})})
	res := hs.run(Spec{Task: "notes", BudgetUSD: 1e9, Workspace: dir})
	for _, id := range []string{"1/patch", RunPatch} {
		_, _, content, err := hs.store.Artifact(context.Background(), res.RunID, id)
		if err == nil && strings.Contains(string(content), planted) {
			t.Errorf("artifact %s holds the credential the screen blocks everywhere else:\n%s", id, content)
		}
	}
}

// TestHostileResumeSkipsPolicy: a resumed run is admitted again under
// today's spend caps, and nothing else of today's policy: a run started
// before the operator took a model out of policy.models and lowered
// max_budget_usd resumes (by hive resume, the API, or by itself when Hive
// next starts) on the forbidden model with the old budget.
func TestHostileResumeSkipsPolicy(t *testing.T) {
	ctx := context.Background()
	slow := make(chan struct{})
	var once sync.Once
	release := func() { once.Do(func() { close(slow) }) }
	hs := newHarness(t, func(c *llmtest.Call) llmtest.Reply {
		if strings.Contains(c.LastUserText(), "wait") {
			<-slow
		}
		return finish("done")
	}, Options{})
	t.Cleanup(release)
	id, err := hs.engine.Start(ctx, Spec{Task: "a: wait", Lead: "lead", Tiers: []string{"cheap"}, BudgetUSD: 5 * price.Dollar})
	if err != nil {
		t.Fatal(err)
	}
	if err := hs.engine.Cancel(ctx, id); err != nil {
		t.Fatal(err)
	}
	if res, _ := hs.engine.Wait(ctx, id); res.Status != StatusCancelled {
		t.Fatalf("%s", res.Status)
	}
	release()
	// The operator tightens the policy: lead is no longer allowed, and a
	// run may spend at most $1.
	hs.engine.opts.Policy = &RunPolicy{Models: []string{"cheap"}, MaxBudget: price.Dollar}
	if _, err := hs.engine.Start(ctx, Spec{Task: "b", Lead: "lead", Tiers: []string{"cheap"}, BudgetUSD: 5 * price.Dollar}); err == nil {
		t.Fatal("a new run under the new policy was not refused")
	}
	_, err = hs.engine.Resume(ctx, id)
	if err == nil {
		res, _ := hs.engine.Wait(ctx, id)
		t.Fatalf("the $5 run on lead resumed under a policy that allows neither: %s %q", res.Status, res.Answer)
	}
}

type echoIn struct {
	Text string `json:"text"`
}

// TestHostileToolArgsJSONEscape: MCP tool arguments are screened as the
// raw JSON the model wrote, not as the values they decode to. A key
// written with one JSON escape ("\u0067hp_…" for "ghp_…") does not match
// the detector, and the server receives the key itself.
func TestHostileToolArgsJSONEscape(t *testing.T) {
	var mu sync.Mutex
	var got []string
	srv := sdk.NewServer(&sdk.Implementation{Name: "echo", Version: "1"}, nil)
	sdk.AddTool(srv, &sdk.Tool{Name: "post", Description: "Posts text."},
		func(_ context.Context, _ *sdk.CallToolRequest, in echoIn) (*sdk.CallToolResult, any, error) {
			mu.Lock()
			got = append(got, in.Text)
			mu.Unlock()
			return &sdk.CallToolResult{Content: []sdk.Content{&sdk.TextContent{Text: "posted"}}}, nil, nil
		})
	ts := httptest.NewServer(sdk.NewStreamableHTTPHandler(func(*http.Request) *sdk.Server { return srv }, nil))
	t.Cleanup(func() {
		for ss := range srv.Sessions() {
			ss.Close()
		}
		ts.Close()
	})
	w := &steps{calls: []llmtest.ToolCall{
		{Name: "echo__post", Input: `{"text":"\u0067` + planted[1:] + `"}`},
		toolCall("submit", map[string]any{"report": "posted"}),
	}}
	h := scriptOneTask(TaskSpec{Name: "post", Instructions: "Post a note."}, w)
	hs := newHarness(t, h, Options{Screen: newScreen(t, screen.Config{})})
	hs.run(Spec{Task: "post", BudgetUSD: 1e9, Tiers: []string{"cheap"}, MCP: map[string]*mcp.ServerConfig{"echo": {URL: ts.URL, Allow: []string{"post"}}}})
	mu.Lock()
	defer mu.Unlock()
	for _, g := range got {
		if g == planted {
			t.Fatalf("the MCP server received the credential the screen blocks (the worker was told %q)", w.result(0))
		}
	}
}
