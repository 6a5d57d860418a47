package server

import (
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/hive-swarm/hive/internal/mcpserver"
	"github.com/hive-swarm/hive/internal/price"
	"github.com/hive-swarm/hive/internal/screen"
	"github.com/hive-swarm/hive/internal/swarm"
)

const (
	ciToken  = "ci-token-0123456789abcdef"
	opsToken = "ops-token-0123456789abcdef"
)

// Named tokens are principals of their own: a token's runs count against
// its own daily cap (over the API, the chat endpoint and /mcp alike),
// another token neither lists, reads, cancels nor approves them, a token
// decides approvals only when allowed to and is recorded as who did, and
// the same Idempotency-Key from two tokens starts two runs.
func TestTokens(t *testing.T) {
	scr, err := screen.New(screen.Config{Rules: []screen.RuleConfig{{Name: "prod", Pattern: "(?i)production", On: []string{"task"}, Action: "hold"}}})
	if err != nil {
		t.Fatal(err)
	}
	sc := &script{n: 1}
	sc.slow.Store(true)
	pol := &swarm.RunPolicy{Principals: map[string]swarm.PrincipalPolicy{"ci": {DailyBudget: 3 * price.Dollar}}}
	e := newTestEnvSetup(t, sc.handle, swarm.Options{Screen: scr, Policy: pol}, func(s *Server) {
		s.Tokens = []Token{{Name: "ci", Value: ciToken}, {Name: "ops", Value: opsToken, Approve: true}}
		s.Metrics = http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { w.Write([]byte("hive_calls_total 1\n")) })
	})
	post := func(token, task string, out any) *http.Response {
		return e.do("POST", "/v1/runs", token, map[string]any{"task": task, "budget_usd": json.Number("2.5")}, out)
	}
	var first struct{ ID string }
	if resp := post(ciToken, "SLOW one", &first); resp.StatusCode != http.StatusCreated {
		t.Fatalf("ci's first run: %d", resp.StatusCode)
	}
	t.Cleanup(func() { e.engine.Cancel(context.Background(), first.ID) })
	var refused errorJSON
	if resp := post(ciToken, "SLOW two", &refused); resp.StatusCode != http.StatusBadRequest || !strings.Contains(refused.Error.Message, "serve.tokens.ci.daily_budget_usd") {
		t.Fatalf("ci's second run past its $3 a day: %d %+v", resp.StatusCode, refused)
	}
	// The chat endpoint (the default budget, $1) and /mcp count against
	// the same cap.
	var chatErr struct{ Error struct{ Message string } }
	if resp := e.do("POST", "/v1/chat/completions", ciToken, map[string]any{"model": DefaultSwarm, "messages": []map[string]string{{"role": "user", "content": "SLOW chat"}}}, &chatErr); resp.StatusCode != http.StatusBadRequest || !strings.Contains(chatErr.Error.Message, "serve.tokens.ci.daily_budget_usd") {
		t.Fatalf("ci's chat past its cap: %d %+v", resp.StatusCode, chatErr)
	}
	cs, _, err := mcpClient(t, e.srv.URL, ciToken)
	if err != nil {
		t.Fatal(err)
	}
	res, err := cs.CallTool(context.Background(), &mcp.CallToolParams{Name: "run_swarm", Arguments: map[string]any{"task": "SLOW mcp", "budget_usd": 1}})
	if err != nil || !res.IsError || !strings.Contains(resultText(res), "serve.tokens.ci.daily_budget_usd") {
		t.Fatalf("ci's run_swarm past its cap: %v %q", err, resultText(res))
	}
	// Other principals are not held to ci's cap.
	var opsRun, mainRun struct{ ID string }
	if resp := post(opsToken, "SLOW ops", &opsRun); resp.StatusCode != http.StatusCreated {
		t.Fatalf("ops's run: %d", resp.StatusCode)
	}
	t.Cleanup(func() { e.engine.Cancel(context.Background(), opsRun.ID) })
	if resp := post(testToken, "SLOW main", &mainRun); resp.StatusCode != http.StatusCreated {
		t.Fatalf("the main token's run: %d", resp.StatusCode)
	}
	t.Cleanup(func() { e.engine.Cancel(context.Background(), mainRun.ID) })

	// ops cannot see ci's run; the main token sees all three.
	list := func(token string) []string {
		var out struct{ Runs []swarm.RunView }
		e.do("GET", "/v1/runs", token, nil, &out)
		var ids []string
		for _, r := range out.Runs {
			ids = append(ids, r.ID)
		}
		return ids
	}
	if got := list(opsToken); len(got) != 1 || got[0] != opsRun.ID {
		t.Fatalf("ops lists %v, want only %s", got, opsRun.ID)
	}
	if got := list(testToken); len(got) != 3 {
		t.Fatalf("the main token lists %v", got)
	}
	for _, req := range [][2]string{{"GET", "/v1/runs/" + first.ID}, {"GET", "/v1/runs/" + first.ID + "/events"}, {"POST", "/v1/runs/" + first.ID + "/cancel"}, {"GET", "/v1/runs/" + first.ID[:8]}} {
		if resp := e.do(req[0], req[1], opsToken, nil, nil); resp.StatusCode != http.StatusNotFound {
			t.Errorf("ops: %s %s = %d, want 404", req[0], req[1], resp.StatusCode)
		}
	}
	// ci's first run ends, having spent nothing: its cap has room again.
	e.engine.Cancel(context.Background(), first.ID)
	e.waitStatus(first.ID, swarm.StatusCancelled)

	// Approvals: ci may not decide, ops may decide its own only, and is
	// recorded as the token.
	var held, opsHeld struct{ ID string }
	if resp := e.do("POST", "/v1/runs", ciToken, map[string]any{"task": "count the production hosts", "budget_usd": json.Number("1")}, &held); resp.StatusCode != http.StatusCreated {
		t.Fatalf("ci's held run: %d", resp.StatusCode)
	}
	if resp := e.do("POST", "/v1/runs", opsToken, map[string]any{"task": "count the production hosts", "budget_usd": json.Number("1")}, &opsHeld); resp.StatusCode != http.StatusCreated {
		t.Fatalf("ops's held run: %d", resp.StatusCode)
	}
	waitPending := func(token, id string) {
		var l struct{ Approvals []swarm.ApprovalView }
		for deadline := time.Now().Add(20 * time.Second); len(l.Approvals) == 0 && time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
			e.do("GET", "/v1/runs/"+id+"/approvals", token, nil, &l)
		}
		if len(l.Approvals) != 1 {
			t.Fatalf("run %s: approvals %+v", id, l.Approvals)
		}
	}
	waitPending(ciToken, held.ID)
	waitPending(opsToken, opsHeld.ID)
	if resp := e.do("POST", "/v1/runs/"+held.ID+"/approvals/task", ciToken, map[string]any{"approve": true}, &refused); resp.StatusCode != http.StatusForbidden || !strings.Contains(refused.Error.Message, "approve = true") {
		t.Fatalf("ci approving: %d %+v", resp.StatusCode, refused)
	}
	if resp := e.do("POST", "/v1/runs/"+held.ID+"/approvals/task", opsToken, map[string]any{"approve": true}, nil); resp.StatusCode != http.StatusNotFound {
		t.Fatalf("ops approving ci's run: %d", resp.StatusCode)
	}
	var got swarm.ApprovalView
	if resp := e.do("POST", "/v1/runs/"+opsHeld.ID+"/approvals/task", opsToken, map[string]any{"approve": true, "by": "ada"}, &got); resp.StatusCode != 200 || got.By != "token ops (as ada)" {
		t.Fatalf("ops approving its own: %d %+v", resp.StatusCode, got)
	}
	e.engine.Cancel(context.Background(), held.ID)

	// One Idempotency-Key from two tokens: two runs.
	key := func(token string) string {
		req, _ := http.NewRequest("POST", e.srv.URL+"/v1/runs", strings.NewReader(`{"task":"SLOW keyed","budget_usd":0.5}`))
		req.Header.Set("Authorization", "Bearer "+token)
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set(IdempotencyHeader, "same-key")
		resp, err := e.srv.Client().Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var out struct{ ID string }
		json.NewDecoder(resp.Body).Decode(&out)
		t.Cleanup(func() { e.engine.Cancel(context.Background(), out.ID) })
		return out.ID
	}
	if a, b := key(opsToken), key(testToken); a == "" || a == b {
		t.Fatalf("one key from two tokens: runs %q and %q", a, b)
	}
	// /metrics is server-wide: the main token's only.
	if resp := e.do("GET", "/metrics", opsToken, nil, nil); resp.StatusCode != http.StatusForbidden {
		t.Fatalf("ops reading /metrics: %d", resp.StatusCode)
	}
	if resp := e.do("GET", "/metrics", testToken, nil, nil); resp.StatusCode != http.StatusOK {
		t.Fatalf("the main token reading /metrics: %d", resp.StatusCode)
	}
	// /mcp: ops's MCP client does not find ci's MCP run.
	res, err = cs.CallTool(context.Background(), &mcp.CallToolParams{Name: "run_swarm", Arguments: map[string]any{"task": "Count.", "budget_usd": 0.5}})
	var out mcpserver.RunResult
	data, _ := json.Marshal(res.StructuredContent)
	json.Unmarshal(data, &out)
	if err != nil || res.IsError || out.RunID == "" {
		t.Fatalf("ci's run_swarm: %v %q", err, resultText(res))
	}
	if jr, _ := e.store.Run(context.Background(), out.RunID); jr.Principal != "ci" {
		t.Fatalf("ci's MCP run has principal %q", jr.Principal)
	}
	ops, _, err := mcpClient(t, e.srv.URL, opsToken)
	if err != nil {
		t.Fatal(err)
	}
	res, err = ops.CallTool(context.Background(), &mcp.CallToolParams{Name: "run_status", Arguments: map[string]any{"run_id": out.RunID}})
	if err != nil || !res.IsError || !strings.Contains(resultText(res), "no run") {
		t.Fatalf("ops reading ci's MCP run: %v %q", err, resultText(res))
	}
}
