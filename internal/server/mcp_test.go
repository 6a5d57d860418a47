package server

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/hive-swarm/hive/internal/config"
	"github.com/hive-swarm/hive/internal/mcpserver"
	"github.com/hive-swarm/hive/internal/swarm"
)

// bearer adds a bearer token to every request.
type bearer struct{ token string }

func (b bearer) RoundTrip(r *http.Request) (*http.Response, error) {
	r = r.Clone(r.Context())
	r.Header.Set("Authorization", "Bearer "+b.token)
	return http.DefaultTransport.RoundTrip(r)
}

// mcpClient connects the Go SDK's client to url's /mcp with token,
// collecting the progress notifications it gets.
func mcpClient(t *testing.T, url, token string) (*mcp.ClientSession, func() []*mcp.ProgressNotificationParams, error) {
	var mu sync.Mutex
	var notes []*mcp.ProgressNotificationParams
	c := mcp.NewClient(&mcp.Implementation{Name: "test", Version: "1"}, &mcp.ClientOptions{
		ProgressNotificationHandler: func(_ context.Context, req *mcp.ProgressNotificationClientRequest) {
			mu.Lock()
			notes = append(notes, req.Params)
			mu.Unlock()
		}})
	cs, err := c.Connect(context.Background(), &mcp.StreamableClientTransport{Endpoint: url + "/mcp",
		HTTPClient: &http.Client{Transport: bearer{token}}, MaxRetries: -1}, nil)
	if err != nil {
		return nil, nil, err
	}
	t.Cleanup(func() { cs.Close() })
	return cs, func() []*mcp.ProgressNotificationParams {
		mu.Lock()
		defer mu.Unlock()
		return append([]*mcp.ProgressNotificationParams(nil), notes...)
	}, nil
}

func resultText(res *mcp.CallToolResult) string {
	var b strings.Builder
	for _, c := range res.Content {
		if tc, ok := c.(*mcp.TextContent); ok {
			b.WriteString(tc.Text)
		}
	}
	return b.String()
}

// TestMCP: an MCP client with the token lists the tools, runs a swarm
// through /mcp with progress notifications, and reads the run back.
func TestMCP(t *testing.T) {
	e := newTestEnv(t, (&script{n: 2}).handle)
	cs, notes, err := mcpClient(t, e.srv.URL, testToken)
	if err != nil {
		t.Fatal(err)
	}
	tools, err := cs.ListTools(context.Background(), nil)
	if err != nil || len(tools.Tools) != 3 {
		t.Fatalf("tools: %v %v", tools, err)
	}
	p := &mcp.CallToolParams{Name: "run_swarm", Arguments: map[string]any{"task": "Count."}}
	p.SetProgressToken(7)
	res, err := cs.CallTool(context.Background(), p)
	if err != nil {
		t.Fatal(err)
	}
	var out mcpserver.RunResult
	data, _ := json.Marshal(res.StructuredContent)
	json.Unmarshal(data, &out)
	if res.IsError || out.Answer != "2 reports: report of t-0; report of t-1" || out.CostUSD <= 0 || out.RunID == "" {
		t.Fatalf("run_swarm: %q %+v", resultText(res), out)
	}
	// The client handles notifications apart from responses: the last
	// may come just after the answer.
	ns := notes()
	for deadline := time.Now().Add(5 * time.Second); (len(ns) == 0 || ns[len(ns)-1].Progress < 3) && time.Now().Before(deadline); ns = notes() {
		time.Sleep(10 * time.Millisecond)
	}
	if len(ns) < 2 {
		t.Fatalf("%d progress notifications", len(ns))
	}
	for i := 1; i < len(ns); i++ {
		if ns[i].Progress <= ns[i-1].Progress {
			t.Errorf("progress %v after %v", ns[i].Progress, ns[i-1].Progress)
		}
	}
	if last := ns[len(ns)-1]; last.Progress != last.Total || last.Total != 3 {
		t.Errorf("last notification %+v", last)
	}
	res, err = cs.CallTool(context.Background(), &mcp.CallToolParams{Name: "run_status", Arguments: map[string]any{"run_id": out.RunID}})
	if err != nil || res.IsError || !strings.Contains(resultText(res), "3 of 3 nodes finished") {
		t.Fatalf("run_status: %v %q", err, resultText(res))
	}
}

// TestMCPAuth: /mcp needs the token as a bearer token; neither a client
// without it nor a page with the cookie (of another origin, or this one)
// gets in, and nothing runs.
func TestMCPAuth(t *testing.T) {
	e := newTestEnv(t, (&script{n: 1}).handle)
	if _, _, err := mcpClient(t, e.srv.URL, "wrong-token"); err == nil {
		t.Fatal("a client with the wrong token connected")
	}
	body := `{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"run_swarm","arguments":{"task":"forged"}}}`
	post := func(hdr map[string]string) (int, string) {
		req, _ := http.NewRequest("POST", e.srv.URL+"/mcp", strings.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Accept", "application/json, text/event-stream")
		req.Header.Set("MCP-Protocol-Version", "2025-11-25")
		for k, v := range hdr {
			req.Header.Set(k, v)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	cookie := "hive_token=" + testToken
	for _, tc := range []struct {
		name string
		hdr  map[string]string
		code int
		want string
	}{
		{"no token", nil, 401, ""},
		{"wrong token", map[string]string{"Authorization": "Bearer nope"}, 401, ""},
		{"cookie from another site", map[string]string{"Cookie": cookie, "Origin": "https://evil.example", "Sec-Fetch-Site": "cross-site"}, 403, "cross-origin"},
		{"cookie from another port", map[string]string{"Cookie": cookie, "Origin": "http://127.0.0.1:1", "Sec-Fetch-Site": "same-site"}, 403, "cross-origin"},
		{"cookie from the page", map[string]string{"Cookie": cookie, "Sec-Fetch-Site": "same-origin"}, 403, "Authorization: Bearer"},
		{"cookie, no browser", map[string]string{"Cookie": cookie}, 403, "Authorization: Bearer"},
	} {
		code, got := post(tc.hdr)
		if code != tc.code || !strings.Contains(got, tc.want) {
			t.Errorf("%s: %d %q; want %d %q", tc.name, code, got, tc.code, tc.want)
		}
	}
	// The token as a bearer token: the same request runs.
	if code, got := post(map[string]string{"Authorization": "Bearer " + testToken}); code != 200 || !strings.Contains(got, `"run_id"`) {
		t.Fatalf("with the token: %d %q", code, got)
	}
	if n := e.runCount(); n != 1 {
		t.Errorf("%d runs, want the one with the token", n)
	}
}

// TestMCPCancel: a client that cancels its call over HTTP cancels the run.
func TestMCPCancel(t *testing.T) {
	sc := &script{n: 1}
	sc.slow.Store(true)
	e := newTestEnv(t, sc.handle)
	cs, _, err := mcpClient(t, e.srv.URL, testToken)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error, 1)
	go func() {
		_, err := cs.CallTool(ctx, &mcp.CallToolParams{Name: "run_swarm", Arguments: map[string]any{"task": "SLOW"}})
		errc <- err
	}()
	id := e.waitRunStarted()
	cancel()
	if err := <-errc; err == nil {
		t.Fatal("the cancelled call returned no error")
	}
	e.waitStatus(id, swarm.StatusCancelled)
}

// TestMCPOutlivesTimeouts: a call that waits for its run longer than the
// server's read and write timeouts still gets its answer.
func TestMCPOutlivesTimeouts(t *testing.T) {
	e := newTestEnv(t, (&script{n: 1, worker: 1500 * time.Millisecond}).handle)
	e.server.Limits.ReadTimeout, e.server.Limits.WriteTimeout = 500*time.Millisecond, 500*time.Millisecond
	srv := httptest.NewUnstartedServer(e.server.Handler())
	e.server.Configure(srv.Config)
	srv.Start()
	defer srv.Close()
	cs, _, err := mcpClient(t, srv.URL, testToken)
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	res, err := cs.CallTool(context.Background(), &mcp.CallToolParams{Name: "run_swarm", Arguments: map[string]any{"task": "Count."}})
	if err != nil || res.IsError || !strings.HasPrefix(resultText(res), "1 reports: report of t-0") {
		t.Fatalf("run_swarm: %v %v", err, res)
	}
	if d := time.Since(start); d < time.Second {
		t.Fatalf("the call took %v, under the timeouts it should outlive", d)
	}
}

// waitRunStarted waits for the first run and its lead's first call, and
// returns the run's id.
func (e *testEnv) waitRunStarted() string {
	e.t.Helper()
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		runs, err := e.store.Runs(context.Background(), 0)
		if err == nil && len(runs) > 0 && e.llm.Requests() > 0 {
			return runs[0].ID
		}
	}
	e.t.Fatal("no run started within 10s")
	return ""
}

// TestMCPPlanner: run_swarm is planned as POST /v1/runs plans a body,
// over the swarm it names: the swarm's models, budget and workspace, and
// what the caller gives instead.
func TestMCPPlanner(t *testing.T) {
	cfg := testConfig("http://127.0.0.1:1/v1")
	dir := t.TempDir()
	cfg.Swarms["fixer"] = &config.Swarm{Tiers: []string{"strong"}, Workspace: dir, MaxWorkers: 3}
	p := MCPPlanner(cfg)
	spec, err := p.Plan(mcpserver.Request{Task: "fix", Swarm: "fixer"})
	if err != nil || spec.Workspace != dir || spec.Lead != "lead" || strings.Join(spec.Tiers, ",") != "strong" || spec.MaxWorkers != 3 {
		t.Fatalf("fixer: %+v %v", spec, err)
	}
	spec, err = p.Plan(mcpserver.Request{Task: "fix", Swarm: "fast", Tiers: []string{"strong"}, BudgetUSD: "0.25", MaxWorkers: 2})
	if err != nil || spec.Workspace != "" || strings.Join(spec.Tiers, ",") != "strong" || spec.BudgetUSD.String() != "$0.25" || spec.MaxWorkers != 2 {
		t.Fatalf("fast with the caller's: %+v %v", spec, err)
	}
	if _, err := p.Plan(mcpserver.Request{Task: "fix", Swarm: "nope"}); err == nil || !strings.Contains(err.Error(), `no swarm "nope"`) {
		t.Fatalf("no such swarm: %v", err)
	}
	// A swarm's urgency reaches the spec, on the chat completions
	// endpoint too, and a wrong one is refused with its name.
	cfg.Swarms["overnight"] = &config.Swarm{Tiers: []string{"strong", "lead"}, Urgency: "batch", BatchTiers: []int{0}}
	spec, err = p.Plan(mcpserver.Request{Task: "label", Swarm: "overnight"})
	if err != nil || spec.Urgency != swarm.UrgencyBatch || len(spec.BatchTiers) != 1 || spec.BatchTiers[0] != 0 {
		t.Fatalf("overnight: %+v %v", spec, err)
	}
	s := &Server{cfg: cfg}
	if spec, ok, err := s.swarmSpec("overnight"); !ok || err != nil || spec.Urgency != swarm.UrgencyBatch {
		t.Fatalf("chat completions' overnight: %+v %v %v", spec, ok, err)
	}
}
