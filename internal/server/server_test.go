package server

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hive-swarm/hive/internal/config"
	"github.com/hive-swarm/hive/internal/journal"
	"github.com/hive-swarm/hive/internal/llm/llmtest"
	"github.com/hive-swarm/hive/internal/provider"
	"github.com/hive-swarm/hive/internal/swarm"
)

const testToken = "0123456789abcdef0123456789abcdef"

// testEnv is a server over a real engine on a temporary SQLite journal,
// whose models ("lead", "cheap", "strong") are served by one llmtest
// OpenAI-compatible server.
type testEnv struct {
	t      *testing.T
	llm    *llmtest.Server
	store  *journal.Store
	engine *swarm.Engine
	server *Server
	srv    *httptest.Server
	cfg    *config.Config
}

func testConfig(baseURL string) *config.Config {
	f := func(v float64) *float64 { return &v }
	c := config.Default()
	for name, p := range map[string][2]float64{"lead": {1, 2}, "cheap": {0.1, 0.2}, "strong": {1, 2}} {
		c.Models[name] = &config.Model{Name: name, Provider: "openai", ID: name, BaseURL: baseURL, Price: &config.Price{Input: f(p[0]), Output: f(p[1])}}
	}
	c.Defaults.Lead, c.Defaults.Tiers = "lead", []string{"cheap", "strong"}
	c.Swarms = map[string]*config.Swarm{"fast": {Tiers: []string{"cheap"}, BudgetUSD: f(0.5)}}
	return c
}

type tWriter struct{ t testing.TB }

func (w tWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimSpace(string(p)))
	return len(p), nil
}

func testLogger(t testing.TB) *slog.Logger {
	return slog.New(slog.NewTextHandler(tWriter{t}, &slog.HandlerOptions{Level: slog.LevelWarn}))
}

func newTestEnv(t testing.TB, h llmtest.Handler) *testEnv {
	return newTestEnvWith(t, h, swarm.Options{}, nil)
}

// newTestEnvOpts is newTestEnv with the engine's options.
func newTestEnvOpts(t testing.TB, h llmtest.Handler, opts swarm.Options) *testEnv {
	return newTestEnvWith(t, h, opts, nil)
}

// newTestEnvWith is newTestEnv with the engine's options and the
// server's metrics.
func newTestEnvWith(t testing.TB, h llmtest.Handler, opts swarm.Options, metrics http.Handler) *testEnv {
	return newTestEnvSetup(t, h, opts, func(s *Server) { s.Metrics = metrics })
}

// newTestEnvSetup is newTestEnv with the engine's options and a setup of
// the server before it serves.
func newTestEnvSetup(t testing.TB, h llmtest.Handler, opts swarm.Options, setup func(*Server)) *testEnv {
	tt, _ := t.(*testing.T)
	ctx := context.Background()
	llmSrv := llmtest.NewOpenAI(h)
	t.Cleanup(llmSrv.Close)
	store, err := journal.Open(ctx, filepath.Join(t.TempDir(), "hive.db"), testLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	cfg := testConfig(llmSrv.URL + "/v1")
	reg := provider.NewRegistry(cfg, func(string) string { return "" }, testLogger(t))
	engine, err := swarm.New(ctx, store, reg, testLogger(t), opts)
	if err != nil {
		t.Fatal(err)
	}
	s := New(engine, store, cfg, testLogger(t), testToken)
	setup(s)
	srv := httptest.NewServer(s.Handler())
	t.Cleanup(func() {
		srv.Close()
		engine.Close(context.Background())
		store.Close()
	})
	return &testEnv{t: tt, llm: llmSrv, store: store, engine: engine, server: s, srv: srv, cfg: cfg}
}

// script is the models' behaviour: the lead delegates n tasks, each
// worker submits a report and a "code" artifact, and the lead finishes
// with the reports joined. With slow set, the lead of a task that
// mentions SLOW answers only after a minute.
type script struct {
	n      int
	slow   atomic.Bool
	worker time.Duration // a worker call's latency
}

func isLead(c *llmtest.Call) bool { return strings.Contains(c.System, "lead of Hive") }

func toolCall(name string, args any) llmtest.ToolCall {
	b, _ := json.Marshal(args)
	return llmtest.ToolCall{Name: name, Input: string(b)}
}

func mentions(c *llmtest.Call, s string) bool {
	for _, m := range c.Messages {
		if strings.Contains(m.Text(), s) {
			return true
		}
	}
	return false
}

func (sc *script) handle(c *llmtest.Call) llmtest.Reply {
	if !isLead(c) {
		name := "?"
		if _, after, ok := strings.Cut(c.LastUserText(), "Task \""); ok {
			name, _, _ = strings.Cut(after, "\"")
		}
		return llmtest.Reply{Latency: sc.worker, ToolCalls: []llmtest.ToolCall{toolCall("submit", map[string]any{
			"report": "report of " + name, "artifacts": map[string]string{"code": "print('" + name + "')"}})}}
	}
	if sc.slow.Load() && mentions(c, "SLOW") {
		return llmtest.Reply{Latency: time.Minute}
	}
	if len(c.ToolResults()) == 0 {
		tasks := []map[string]string{}
		for i := range sc.n {
			tasks = append(tasks, map[string]string{"name": fmt.Sprintf("t-%d", i), "instructions": fmt.Sprintf("Say %d.", i)})
		}
		return llmtest.Reply{ToolCalls: []llmtest.ToolCall{toolCall("delegate", map[string]any{"tasks": tasks})}}
	}
	var reports []struct {
		Report string `json:"report"`
	}
	rs := c.ToolResults()
	s := rs[len(rs)-1].Content
	if i := strings.Index(s, "\nstill running"); i >= 0 {
		s = s[:i]
	}
	json.Unmarshal([]byte(s), &reports)
	parts := []string{}
	for _, r := range reports {
		parts = append(parts, r.Report)
	}
	return llmtest.Reply{ToolCalls: []llmtest.ToolCall{toolCall("finish", map[string]any{"answer": fmt.Sprintf("%d reports: %s", len(parts), strings.Join(parts, "; "))})}}
}

// do sends a request with the token (unless token is "") and decodes a
// JSON answer into out (unless nil); it returns the response.
func (e *testEnv) do(method, path, token string, body any, out any) *http.Response {
	e.t.Helper()
	var rd io.Reader
	switch b := body.(type) {
	case nil:
	case string:
		rd = strings.NewReader(b)
	default:
		data, _ := json.Marshal(b)
		rd = bytes.NewReader(data)
	}
	req, err := http.NewRequest(method, e.srv.URL+path, rd)
	if err != nil {
		e.t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	if rd != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := e.srv.Client().Do(req)
	if err != nil {
		e.t.Fatal(err)
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(resp.Body)
	if out != nil {
		if err := json.Unmarshal(data, out); err != nil {
			e.t.Fatalf("%s %s: %d, body %q: %v", method, path, resp.StatusCode, data, err)
		}
	}
	return resp
}

type errorJSON struct {
	Error struct{ Code, Message string } `json:"error"`
}

// startRun posts a run and returns its id.
func (e *testEnv) startRun(task string) string {
	e.t.Helper()
	var out struct{ ID string }
	if resp := e.do("POST", "/v1/runs", testToken, map[string]any{"task": task, "budget_usd": json.Number("2.5")}, &out); resp.StatusCode != http.StatusCreated {
		e.t.Fatalf("POST /v1/runs: %d", resp.StatusCode)
	}
	if out.ID == "" {
		e.t.Fatal("POST /v1/runs returned no id")
	}
	return out.ID
}

type runJSON struct {
	Run   swarm.RunView `json:"run"`
	Nodes []swarm.Node  `json:"nodes"`
}

// waitStatus polls a run until its status is want.
func (e *testEnv) waitStatus(id string, want swarm.Status) runJSON {
	e.t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	var got runJSON
	for time.Now().Before(deadline) {
		e.do("GET", "/v1/runs/"+id, testToken, nil, &got)
		if got.Run.Status == want {
			return got
		}
		time.Sleep(20 * time.Millisecond)
	}
	e.t.Fatalf("run %s is %s after 30s, want %s (error %q)", id, got.Run.Status, want, got.Run.Error)
	return got
}

func TestAuthEverywhere(t *testing.T) {
	e := newTestEnv(t, (&script{n: 1}).handle)
	routes := []struct{ method, path string }{
		{"POST", "/v1/runs"}, {"GET", "/v1/runs"}, {"GET", "/v1/runs/r1"},
		{"GET", "/v1/runs/r1/nodes/3.1"}, {"GET", "/v1/runs/r1/artifacts/3/report"},
		{"POST", "/v1/runs/r1/cancel"}, {"POST", "/v1/runs/r1/resume"}, {"GET", "/v1/runs/r1/events"},
		{"POST", "/v1/chat/completions"}, {"GET", "/v1/models"}, {"GET", "/v1/models/hive"},
		{"GET", "/v1/nope"}, {"DELETE", "/v1/runs"},
	}
	for _, rt := range routes {
		for _, tok := range []string{"", "wrong", testToken + "x"} {
			var body errorJSON
			resp := e.do(rt.method, rt.path, tok, `{"task":"x"}`, &body)
			if resp.StatusCode != http.StatusUnauthorized || body.Error.Code != "unauthorized" {
				t.Errorf("%s %s with token %q: %d %q, want 401 unauthorized", rt.method, rt.path, tok, resp.StatusCode, body.Error.Code)
			}
			if resp.Header.Get("Access-Control-Allow-Origin") != "" {
				t.Errorf("%s %s sent a CORS header", rt.method, rt.path)
			}
		}
	}
	// A wrong cookie is no better.
	req, _ := http.NewRequest("GET", e.srv.URL+"/v1/runs", nil)
	req.AddCookie(&http.Cookie{Name: CookieName, Value: "wrong"})
	if resp, err := http.DefaultClient.Do(req); err != nil || resp.StatusCode != 401 {
		t.Fatalf("wrong cookie: %v %v", resp.StatusCode, err)
	}

	// The page without the token: a plain 401 page.
	for _, p := range []string{"/", "/static/app.js", "/?token=wrong"} {
		resp, err := http.Get(e.srv.URL + p)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 401 || !strings.Contains(string(body), "hive serve printed") || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/html") {
			t.Errorf("GET %s: %d %q, want the 401 page", p, resp.StatusCode, body)
		}
	}

	// /healthz needs nothing.
	resp, err := http.Get(e.srv.URL + "/healthz")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || string(body) != "ok" {
		t.Fatalf("healthz: %d %q", resp.StatusCode, body)
	}

	// The link sets the cookie and redirects to a URL without the token.
	noFollow := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err = noFollow.Get(e.srv.URL + "/?token=" + testToken)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != "/" {
		t.Fatalf("GET /?token=: %d to %q, want 303 to /", resp.StatusCode, resp.Header.Get("Location"))
	}
	cookies := resp.Cookies()
	if len(cookies) != 1 || cookies[0].Name != CookieName || cookies[0].Value != testToken ||
		!cookies[0].HttpOnly || cookies[0].SameSite != http.SameSiteStrictMode || cookies[0].Path != "/" {
		t.Fatalf("cookie: %+v", cookies)
	}
	for _, p := range []string{"/", "/v1/runs"} {
		req, _ := http.NewRequest("GET", e.srv.URL+p, nil)
		req.AddCookie(cookies[0])
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != 200 {
			t.Fatalf("GET %s with the cookie: %d", p, resp.StatusCode)
		}
		if p == "/" {
			for k, want := range map[string]string{
				"X-Content-Type-Options": "nosniff", "Referrer-Policy": "no-referrer",
				"Content-Security-Policy": "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; frame-ancestors 'none'",
			} {
				if got := resp.Header.Get(k); got != want {
					t.Errorf("page header %s = %q, want %q", k, got, want)
				}
			}
		}
	}
}

func TestErrors(t *testing.T) {
	e := newTestEnv(t, (&script{n: 1}).handle)
	big := `{"task":"` + strings.Repeat("a", MaxBody+10) + `"}`
	cases := []struct {
		name, method, path string
		body               any
		status             int
		code               string
	}{
		{"too large", "POST", "/v1/runs", big, 413, "too_large"},
		{"unknown field", "POST", "/v1/runs", `{"task":"x","colour":"red"}`, 400, "bad_request"},
		{"not json", "POST", "/v1/runs", `{`, 400, "bad_request"},
		{"empty task", "POST", "/v1/runs", `{"task":"  "}`, 400, "bad_request"},
		{"bad budget", "POST", "/v1/runs", `{"task":"x","budget_usd":-1}`, 400, "bad_request"},
		{"unknown model", "POST", "/v1/runs", `{"task":"x","lead":"nope"}`, 400, "bad_request"},
		{"relative workspace", "POST", "/v1/runs", `{"task":"x","workspace":"repo"}`, 400, "bad_request"},
		{"no such workspace", "POST", "/v1/runs", `{"task":"x","workspace":"/nonexistent/hive-repo"}`, 400, "bad_request"},
		{"no such run", "GET", "/v1/runs/rnope", nil, 404, "not_found"},
		{"no such endpoint", "GET", "/v1/nope", nil, 404, "not_found"},
		{"wrong method", "DELETE", "/v1/runs", nil, 405, "method_not_allowed"},
		{"wrong method on a run", "PUT", "/v1/runs/r1/cancel", nil, 405, "method_not_allowed"},
		{"bad Last-Event-ID", "GET", "/v1/runs/rnope/events?after=x", nil, 404, "not_found"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var body errorJSON
			resp := e.do(c.method, c.path, testToken, c.body, &body)
			if resp.StatusCode != c.status || body.Error.Code != c.code {
				t.Fatalf("%d %q (%s), want %d %q", resp.StatusCode, body.Error.Code, body.Error.Message, c.status, c.code)
			}
		})
	}
	// A body too large without a Content-Length (chunked) is cut too.
	req, _ := http.NewRequest("POST", e.srv.URL+"/v1/runs", io.MultiReader(strings.NewReader(big)))
	req.Header.Set("Authorization", "Bearer "+testToken)
	req.Header.Set("Content-Type", "application/json")
	req.ContentLength = -1
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 413 {
		t.Fatalf("chunked body over 1 MiB: %d, want 413", resp.StatusCode)
	}
}

func TestRunLifecycle(t *testing.T) {
	e := newTestEnv(t, (&script{n: 3}).handle)
	id := e.startRun("count to three")
	got := e.waitStatus(id, swarm.StatusDone)
	if want := "3 reports: report of t-0; report of t-1; report of t-2"; got.Run.Answer != want {
		t.Fatalf("answer %q, want %q", got.Run.Answer, want)
	}
	if got.Run.BudgetUSD != 2.5 || got.Run.CostUSD <= 0 || got.Run.Task != "count to three" {
		t.Fatalf("run view: %+v", got.Run)
	}
	if len(got.Nodes) != 4 {
		t.Fatalf("%d nodes, want 4 (a lead and three workers)", len(got.Nodes))
	}

	var list struct{ Runs []swarm.RunView }
	e.do("GET", "/v1/runs", testToken, nil, &list)
	if len(list.Runs) != 1 || list.Runs[0].ID != id {
		t.Fatalf("runs: %+v", list.Runs)
	}

	var worker *swarm.Node
	for i := range got.Nodes {
		if got.Nodes[i].Role == swarm.RoleWorker {
			worker = &got.Nodes[i]
			break
		}
	}
	if worker == nil {
		t.Fatal("no worker node")
	}
	var node struct {
		Node      swarm.Node
		Messages  []swarm.MessageView
		Artifacts []ArtifactRef
	}
	if resp := e.do("GET", "/v1/runs/"+id+"/nodes/"+worker.ID, testToken, nil, &node); resp.StatusCode != 200 {
		t.Fatalf("node: %d", resp.StatusCode)
	}
	if node.Node.ID != worker.ID || len(node.Messages) < 2 {
		t.Fatalf("node %s: %d messages", node.Node.ID, len(node.Messages))
	}
	if len(node.Artifacts) != 1 || node.Artifacts[0].ID != worker.ID+"/code" || node.Artifacts[0].Name != "code" {
		t.Fatalf("artifacts: %+v", node.Artifacts)
	}
	var art struct{ ID, Name, Node, Content string }
	if resp := e.do("GET", "/v1/runs/"+id+"/artifacts/"+node.Artifacts[0].ID, testToken, nil, &art); resp.StatusCode != 200 {
		t.Fatalf("artifact: %d", resp.StatusCode)
	}
	if art.Node != worker.ID || !strings.HasPrefix(art.Content, "print('t-") || node.Artifacts[0].Size != len(art.Content) {
		t.Fatalf("artifact: %+v, listed size %d", art, node.Artifacts[0].Size)
	}
	// Missing nodes and artifacts are 404s; a prefix of the run id works.
	for _, p := range []string{"/nodes/99.9", "/artifacts/99/nope"} {
		var body errorJSON
		if resp := e.do("GET", "/v1/runs/"+id+p, testToken, nil, &body); resp.StatusCode != 404 || body.Error.Code != "not_found" {
			t.Errorf("%s: %d %q", p, resp.StatusCode, body.Error.Code)
		}
	}
	var byPrefix runJSON
	e.do("GET", "/v1/runs/"+id[:len(id)-2], testToken, nil, &byPrefix)
	if byPrefix.Run.ID != id {
		t.Fatalf("prefix lookup gave %q", byPrefix.Run.ID)
	}
	// A finished run cannot be cancelled or resumed.
	for _, op := range []string{"cancel", "resume"} {
		var body errorJSON
		if resp := e.do("POST", "/v1/runs/"+id+"/"+op, testToken, nil, &body); resp.StatusCode != 409 || body.Error.Code != "conflict" {
			t.Errorf("%s a finished run: %d %q", op, resp.StatusCode, body.Error.Code)
		}
	}
}

func TestCancelResume(t *testing.T) {
	sc := &script{n: 2}
	sc.slow.Store(true)
	e := newTestEnv(t, sc.handle)
	id := e.startRun("a SLOW job")
	deadline := time.Now().Add(10 * time.Second)
	for e.llm.Requests() == 0 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	var st struct{ ID, Status string }
	if resp := e.do("POST", "/v1/runs/"+id+"/cancel", testToken, nil, &st); resp.StatusCode != 200 || st.Status != "cancelled" || st.ID != id {
		t.Fatalf("cancel: %d %+v", resp.StatusCode, st)
	}
	var body errorJSON
	if resp := e.do("POST", "/v1/runs/"+id+"/cancel", testToken, nil, &body); resp.StatusCode != 409 {
		t.Fatalf("second cancel: %d, want 409", resp.StatusCode)
	}
	sc.slow.Store(false)
	if resp := e.do("POST", "/v1/runs/"+id+"/resume", testToken, nil, &st); resp.StatusCode != 200 || st.ID != id {
		t.Fatalf("resume: %d %+v", resp.StatusCode, st)
	}
	got := e.waitStatus(id, swarm.StatusDone)
	if !strings.HasPrefix(got.Run.Answer, "2 reports") {
		t.Fatalf("answer after resume: %q", got.Run.Answer)
	}
}

// sseEvent is one event as a client reads it.
type sseEvent struct {
	id    int64
	typ   string
	data  swarm.Event
	local time.Time // when it arrived
}

// readSSE reads events from an event stream until it ends, stop returns
// true, or ctx ends.
func readSSE(ctx context.Context, url, token string, lastID int64, stop func(sseEvent) bool) ([]sseEvent, int, error) {
	req, err := http.NewRequestWithContext(ctx, "GET", url, nil)
	if err != nil {
		return nil, 0, err
	}
	req.Header.Set("Authorization", "Bearer "+token)
	if lastID > 0 {
		req.Header.Set("Last-Event-ID", strconv.FormatInt(lastID, 10))
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, 0, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 {
		return nil, resp.StatusCode, nil
	}
	if ct := resp.Header.Get("Content-Type"); ct != "text/event-stream" {
		return nil, resp.StatusCode, fmt.Errorf("content type %q", ct)
	}
	var out []sseEvent
	var cur sseEvent
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		line := sc.Text()
		switch {
		case line == "":
			if cur.typ == "" {
				continue
			}
			cur.local = time.Now()
			out = append(out, cur)
			if stop != nil && stop(cur) {
				return out, 200, nil
			}
			cur = sseEvent{}
		case strings.HasPrefix(line, "id: "):
			cur.id, _ = strconv.ParseInt(line[4:], 10, 64)
		case strings.HasPrefix(line, "event: "):
			cur.typ = line[7:]
		case strings.HasPrefix(line, "data: "):
			if err := json.Unmarshal([]byte(line[6:]), &cur.data); err != nil {
				return out, 200, err
			}
		}
	}
	if ctx.Err() != nil {
		return out, 200, ctx.Err()
	}
	return out, 200, sc.Err()
}

func TestEventsReplay(t *testing.T) {
	sc := &script{n: 5, worker: 30 * time.Millisecond}
	e := newTestEnv(t, sc.handle)
	id := e.startRun("five tasks")
	url := e.srv.URL + "/v1/runs/" + id + "/events"
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	first, status, err := readSSE(ctx, url, testToken, 0, func(ev sseEvent) bool { return ev.id >= 3 })
	if err != nil || status != 200 || len(first) == 0 {
		t.Fatalf("first connection: %d events, status %d, %v", len(first), status, err)
	}
	last := first[len(first)-1].id
	rest, status, err := readSSE(ctx, url, testToken, last, nil)
	if err != nil || status != 200 {
		t.Fatalf("reconnection: status %d, %v", status, err)
	}
	all := append(first, rest...)
	for i, ev := range all {
		if ev.id != int64(i+1) || ev.data.Seq != ev.id || ev.typ != string(ev.data.Type) || ev.data.RunID != id {
			t.Fatalf("event %d: id %d seq %d type %s/%s run %s", i, ev.id, ev.data.Seq, ev.typ, ev.data.Type, ev.data.RunID)
		}
	}
	end := all[len(all)-1]
	if end.typ != string(swarm.EventRunFinished) || end.data.Status != swarm.StatusDone {
		t.Fatalf("last event %s %s, want run_finished done", end.typ, end.data.Status)
	}
	// Events are journaled asynchronously: the live stream may run ahead.
	if err := e.store.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	seqs, err := e.store.LastSeq(ctx, id)
	if err != nil || seqs != end.id {
		t.Fatalf("journal holds %d events, stream gave %d (%v)", seqs, end.id, err)
	}

	// ?after= works like Last-Event-ID, and a client past the end gets 204.
	tail, _, err := readSSE(ctx, url+"?after="+strconv.FormatInt(end.id-1, 10), testToken, 0, nil)
	if err != nil || len(tail) != 1 || tail[0].id != end.id {
		t.Fatalf("after=%d: %d events, %v", end.id-1, len(tail), err)
	}
	if _, status, _ := readSSE(ctx, url, testToken, end.id, nil); status != http.StatusNoContent {
		t.Fatalf("reconnecting after the end: %d, want 204", status)
	}
}

func TestEventsPing(t *testing.T) {
	sc := &script{n: 1}
	sc.slow.Store(true)
	e := newTestEnv(t, sc.handle)
	e.server.PingInterval = 20 * time.Millisecond
	id := e.startRun("a SLOW job")
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, "GET", e.srv.URL+"/v1/runs/"+id+"/events", nil)
	req.Header.Set("Authorization", "Bearer "+testToken)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	sc2 := bufio.NewScanner(resp.Body)
	for sc2.Scan() {
		if sc2.Text() == ": ping" {
			return
		}
	}
	t.Fatal("no ping on an idle stream")
}
