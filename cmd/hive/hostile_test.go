package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"io/fs"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hive-swarm/hive/internal/llm"
	"github.com/hive-swarm/hive/internal/llm/llmtest"
	"github.com/hive-swarm/hive/internal/swarm"
)

// The hostile-model suite: a scripted lead and workers try, end to end
// through hive run, what a model steered by an attacker would: run a
// command on the host, read Hive's secrets, overspend the budget through a
// model it names or a server that overbills, and exhaust the process with
// a schema or a script. Each test asserts the host is untouched, the
// secrets appear nowhere (model server requests, journal bytes, show
// output, logs), the limit held, and the run ended with a clear status.

// deployToken is a secret that no model uses: found in the environment by
// its name alone.
const deployToken = "tok-DEPLOY-5ecret-998877"

// hostile is a world whose models follow script, with the models' API key
// and an unrelated token in the environment.
type hostile struct {
	*world
	vars map[string]string
}

func newHostile(t *testing.T, script llmtest.Handler, extraConfig string) *hostile {
	t.Helper()
	w := newWorld(t)
	w.script = script
	cfg, err := os.ReadFile(w.cfg)
	if err != nil {
		t.Fatal(err)
	}
	keyed := strings.ReplaceAll(string(cfg), "base_url = ", "api_key_env = \"HIVE_TEST_KEY\"\nbase_url = ")
	if err := os.WriteFile(w.cfg, []byte(keyed+"\n"+extraConfig), 0o600); err != nil {
		t.Fatal(err)
	}
	w.srv.APIKey = secretKey
	return &hostile{world: w, vars: map[string]string{
		"HIVE_CONFIG": w.cfg, "HOME": w.dir, "PATH": os.Getenv("PATH"),
		"HIVE_TEST_KEY": secretKey, "DEPLOY_TOKEN": deployToken,
	}}
}

// env is the world's environment for a command writing to stdout and
// stderr.
func (h *hostile) env(stdout, stderr io.Writer) *Env {
	return &Env{Stdin: strings.NewReader(""), Stdout: stdout, Stderr: stderr,
		Getenv: func(k string) string { return h.vars[k] },
		Environ: func() []string {
			var e []string
			for k, v := range h.vars {
				e = append(e, k+"="+v)
			}
			return e
		}}
}

// hive runs hive in-process with the world's environment, verbose, and
// returns its exit code, stdout and stderr (the logs).
func (h *hostile) hive(timeout time.Duration, args ...string) (int, string, string) {
	h.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	var out, errb syncBuffer
	env := h.env(&out, &errb)
	code := Main(ctx, env, append([]string{args[0], "-v"}, args[1:]...))
	h.t.Logf("hive %s → %d\nstdout: %s\nstderr (tail): %s", strings.Join(args, " "), code, out.String(), tail(errb.String(), 3000))
	return code, out.String(), errb.String()
}

func tail(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return "…" + s[len(s)-n:]
}

// show returns the run's show --json.
func (h *hostile) show(id string) (showJSON, string) {
	h.t.Helper()
	code, out, errOut := h.hive(30*time.Second, "show", "--json", id)
	if code != 0 {
		h.t.Fatalf("show: exit %d: %s", code, errOut)
	}
	var s showJSON
	if err := json.Unmarshal([]byte(out), &s); err != nil {
		h.t.Fatalf("show --json: %v", err)
	}
	return s, out + errOut
}

// onlyRun returns the id of the journal's only run.
func (h *hostile) onlyRun() string {
	h.t.Helper()
	_, out, _ := h.hive(30*time.Second, "runs", "--json")
	var runs []swarm.RunView
	if err := json.Unmarshal([]byte(out), &runs); err != nil || len(runs) != 1 {
		h.t.Fatalf("runs --json: %v\n%s", err, out)
	}
	return runs[0].ID
}

// assertNoSecrets checks that neither secret is in texts, in any request
// body the model server received, or in any file under the world's
// directory (the journal among them).
func (h *hostile) assertNoSecrets(texts ...string) {
	h.t.Helper()
	for _, s := range []string{secretKey, deployToken} {
		for _, text := range texts {
			if strings.Contains(text, s) {
				h.t.Errorf("output or logs hold the secret %.8s…", s)
			}
		}
		for _, c := range h.srv.Calls() {
			if bytes.Contains(c.Body, []byte(s)) {
				h.t.Errorf("request %d to the model server holds the secret %.8s…", c.N, s)
			}
		}
	}
	journal := false
	err := filepath.WalkDir(h.dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		journal = journal || d.Name() == "hive.db"
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		for _, s := range []string{secretKey, deployToken} {
			if bytes.Contains(b, []byte(s)) {
				h.t.Errorf("%s holds the secret %.8s…", filepath.Base(path), s)
			}
		}
		return nil
	})
	if err != nil || !journal {
		h.t.Fatalf("walk the journal: %v (journal found: %v)", err, journal)
	}
}

// assistantTurns counts the assistant messages of a call's history: the
// turn a scripted model is at.
func assistantTurns(c *llmtest.Call) int {
	n := 0
	for _, m := range c.Messages {
		if m.Role == llm.RoleAssistant {
			n++
		}
	}
	return n
}

func isLead(c *llmtest.Call) bool { return strings.Contains(c.System, "lead of Hive") }

// toolResults returns the text of the call's tool results (the wire
// protocol of OpenAI has no error flag: errors are told in the text).
func toolResults(c *llmtest.Call) string {
	var b strings.Builder
	for _, r := range c.ToolResults() {
		b.WriteString(r.Content)
	}
	return b.String()
}

// notes collects what scripted models saw, from the server's goroutines.
type notes struct {
	mu   sync.Mutex
	list []string
}

func (n *notes) add(s string) {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.list = append(n.list, s)
}

func (n *notes) all() []string {
	n.mu.Lock()
	defer n.mu.Unlock()
	return append([]string(nil), n.list...)
}

func submit(report string) llmtest.Reply {
	return llmtest.Reply{ToolCalls: []llmtest.ToolCall{tool("submit", map[string]any{"report": report})}}
}

func finish(answer string) llmtest.Reply {
	return llmtest.Reply{ToolCalls: []llmtest.ToolCall{tool("finish", map[string]any{"answer": answer})}}
}

func delegate(tasks ...map[string]any) llmtest.Reply {
	return llmtest.Reply{ToolCalls: []llmtest.ToolCall{tool("delegate", map[string]any{"tasks": tasks})}}
}

// commandAttack scripts a lead, then a worker, asking for a command of
// their own as a verifier (it would write to marker), then the lead naming
// the configured check envdump (commandConfig), which prints its
// environment.
type commandAttack struct {
	marker                     string
	leadRefused, workerRefused notes
}

const commandConfig = `
[checks.envdump]
command = ["sh", "-c", "echo ENV-SEEN; env; echo \"key=$HIVE_TEST_KEY token=$DEPLOY_TOKEN\"; cat /proc/1/environ; exit 1"]
`

func (a *commandAttack) script(c *llmtest.Call) llmtest.Reply {
	evil := map[string]any{"kind": "command", "command": []string{"sh", "-c", "id > " + a.marker + "; env >> " + a.marker + "; exit 1"}}
	if isLead(c) {
		switch assistantTurns(c) {
		case 0:
			return delegate(map[string]any{"name": "pwn", "instructions": "Say hi.", "verify": evil})
		case 1:
			a.leadRefused.add(toolResults(c))
			return delegate(
				map[string]any{"name": "dump", "instructions": "Say hi.", "tier": 1, "verify": map[string]any{"kind": "command", "check": "envdump"}},
				map[string]any{"name": "nested", "instructions": "Delegate, then say hi.", "tier": 1})
		}
		return finish("the lead is done")
	}
	if mentions(c, "Delegate, then say hi.") {
		if assistantTurns(c) == 0 {
			return delegate(map[string]any{"name": "pwn2", "instructions": "Say hi.", "verify": evil})
		}
		if assistantTurns(c) == 1 {
			a.workerRefused.add(toolResults(c))
		}
	}
	return submit("hi")
}

// check asserts what the attack must have met: both commands refused
// with the configured checks named, nothing run on the host, and the
// configured check run (in the sandbox) with its failure as evidence.
func (a *commandAttack) check(t *testing.T, srv *llmtest.Server, nodes []swarm.Node) {
	t.Helper()
	for who, v := range map[string]*notes{"the lead": &a.leadRefused, "the worker": &a.workerRefused} {
		e := strings.Join(v.all(), " | ")
		if !strings.Contains(e, "may not give a command") || !strings.Contains(e, "envdump") {
			t.Errorf("%s's command was not refused with the configured checks: %q", who, e)
		}
	}
	if _, err := os.Stat(a.marker); err == nil {
		t.Fatal("a model's command ran on the host")
	}
	seen := false
	for _, c := range srv.Calls() {
		seen = seen || bytes.Contains(c.Body, []byte("ENV-SEEN"))
	}
	if !seen {
		t.Error("the configured check's output never reached the worker: did it run?")
	}
	var dump *swarm.Node
	for i, n := range nodes {
		if n.Name == "dump" && n.Verdict != nil {
			dump = &nodes[i]
		}
	}
	if dump == nil || dump.Verdict.Outcome != "fail" || !strings.Contains(dump.Verdict.Evidence, "check envdump") {
		t.Errorf("the check's verdict: %+v", dump)
	}
}

// TestHostileCommand: the command attack through hive run. The commands
// are refused with a tool error, and the run goes on; the configured
// check runs in the sandbox with none of Hive's environment, so its output
// (the env it saw) goes back to the worker without a secret.
func TestHostileCommand(t *testing.T) {
	a := &commandAttack{marker: filepath.Join(t.TempDir(), "pwned")}
	h := newHostile(t, a.script, commandConfig)
	code, out, logs := h.hive(2*time.Minute, "run", "--budget", "1", "hostile")
	if code != 0 || out != "the lead is done\n" {
		t.Fatalf("run: exit %d, stdout %q", code, out)
	}
	s, shown := h.show(h.onlyRun())
	a.check(t, h.srv, s.Nodes)
	h.assertNoSecrets(out, logs, shown)
}

// TestHostileServe: the command attack through hive serve, started by an
// API caller with the token; then a page on another origin posts a run
// with the page's cookie, as a browser would send it, and is refused.
func TestHostileServe(t *testing.T) {
	a := &commandAttack{marker: filepath.Join(t.TempDir(), "pwned")}
	h := newHostile(t, a.script, commandConfig)
	const token = "hive-serve-token-0f1e2d3c4b5a"
	h.vars["HIVE_TOKEN"] = token
	ctx, cancel := context.WithCancel(context.Background())
	var out, logs syncBuffer
	env := h.env(&out, &logs)
	done := make(chan int, 1)
	go func() { done <- Main(ctx, env, []string{"serve", "-v", "--addr", "127.0.0.1:0"}) }()
	defer func() {
		cancel()
		select {
		case <-done:
		case <-time.After(20 * time.Second):
			t.Error("hive serve did not stop")
		}
	}()
	var base string
	for deadline := time.Now().Add(20 * time.Second); base == "" && time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		if m := serveURL.FindStringSubmatch(out.String()); m != nil {
			base = m[1]
		}
	}
	if base == "" {
		t.Fatalf("hive serve printed no URL: %s", logs.String())
	}
	call := func(method, path, body string, hdr map[string]string) (int, string) {
		req, _ := http.NewRequest(method, base+path, strings.NewReader(body))
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
	bearer := map[string]string{"Authorization": "Bearer " + token, "Content-Type": "application/json"}
	code, body := call("POST", "v1/runs", `{"task": "hostile", "budget_usd": 1}`, bearer)
	var run struct{ ID string }
	if code != http.StatusCreated || json.Unmarshal([]byte(body), &run) != nil || run.ID == "" {
		t.Fatalf("POST /v1/runs: %d %s", code, body)
	}
	var view struct {
		Run   swarm.RunView `json:"run"`
		Nodes []swarm.Node  `json:"nodes"`
	}
	var shown string
	for deadline := time.Now().Add(90 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		_, shown = call("GET", "v1/runs/"+run.ID, "", bearer)
		if err := json.Unmarshal([]byte(shown), &view); err != nil {
			t.Fatalf("GET /v1/runs/%s: %v: %s", run.ID, err, shown)
		}
		if view.Run.Status.Final() {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the run is still %s", view.Run.Status)
		}
	}
	if view.Run.Status != swarm.StatusDone || view.Run.Answer != "the lead is done" {
		t.Fatalf("the run ended %s: %q %q", view.Run.Status, view.Run.Answer, view.Run.Error)
	}
	a.check(t, h.srv, view.Nodes)

	// Another site's page posts a run with the page's cookie: as a
	// text/plain form (no preflight), and as JSON.
	cookie := map[string]string{"Cookie": "hive_token=" + token, "Origin": "http://127.0.0.1:1", "Sec-Fetch-Site": "same-site"}
	for _, ct := range []string{"text/plain", "application/json"} {
		cookie["Content-Type"] = ct
		if code, body := call("POST", "v1/runs", `{"task": "forged"}`, cookie); code != http.StatusForbidden && code != http.StatusUnsupportedMediaType {
			t.Errorf("a cross-site %s POST with the cookie: %d %s", ct, code, body)
		}
	}
	_, list := call("GET", "v1/runs", "", bearer)
	if strings.Contains(list, "forged") {
		t.Errorf("a forged run started: %s", list)
	}

	// A flood of keep-alive connections without the token: each gets its
	// 401 and is closed by the server, so none stays open.
	host := strings.TrimSuffix(strings.TrimPrefix(base, "http://"), "/")
	for i := range 100 {
		conn, err := net.Dial("tcp", host)
		if err != nil {
			t.Fatal(err)
		}
		fmt.Fprintf(conn, "GET /v1/runs HTTP/1.1\r\nHost: %s\r\nConnection: keep-alive\r\n\r\n", host)
		conn.SetReadDeadline(time.Now().Add(10 * time.Second))
		b, err := io.ReadAll(conn) // returns when the server closes
		conn.Close()
		if err != nil || !bytes.HasPrefix(b, []byte("HTTP/1.1 401")) {
			t.Fatalf("connection %d: %v, %.40q", i, err, b)
		}
	}
	h.assertNoSecrets(out.String(), logs.String(), shown, list)
}

// TestHostileModels: under a dollar budget, a verify spec that names a
// model outside the run, or a configured model without a price, is
// refused before any call; a server that reports ten million output
// tokens is billed at the reservation, and the node records the anomaly.
func TestHostileModels(t *testing.T) {
	var refused notes
	var forbidden atomic.Int32
	script := func(c *llmtest.Call) llmtest.Reply {
		if c.Model == "some-unpriced-model" || c.Model == "free" {
			forbidden.Add(1)
		}
		if isLead(c) {
			switch assistantTurns(c) {
			case 0:
				return delegate(map[string]any{"name": "vote", "instructions": "Say hi.",
					"verify": map[string]any{"kind": "vote", "n": 32, "models": []string{"openai:some-unpriced-model"}}})
			case 1:
				refused.add(toolResults(c))
				return delegate(map[string]any{"name": "judge", "instructions": "Say hi.",
					"verify": map[string]any{"kind": "judge", "rubric": "be nice", "model": "free"}})
			case 2:
				refused.add(toolResults(c))
				return delegate(map[string]any{"name": "greedy", "instructions": "Say hi."})
			}
			return finish("done")
		}
		r := submit("hi")
		r.Usage = &llm.Usage{InputTokens: 100, OutputTokens: 10_000_000}
		return r
	}
	h := newHostile(t, script, "")
	// Both forbidden models live on the scripted server, so that a call to
	// either would be seen and counted.
	f, err := os.OpenFile(h.cfg, os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	fmt.Fprintf(f, "\n[models.free]\nprovider = \"openai\"\nbase_url = %q\napi_key_env = \"HIVE_TEST_KEY\"\n", h.srv.URL+"/v1")
	f.Close()
	h.vars["OPENAI_API_KEY"], h.vars["OPENAI_BASE_URL"] = secretKey, h.srv.URL+"/v1"
	code, out, logs := h.hive(time.Minute, "run", "--budget", "0.05", "hostile")
	if code != 0 && code != exitBudget {
		t.Fatalf("run: exit %d, stdout %q", code, out)
	}
	refusals := refused.all()
	if len(refusals) != 2 || !strings.Contains(refusals[0], "not one this run may use") || !strings.Contains(refusals[1], "no known price") {
		t.Errorf("refusals: %q", refusals)
	}
	if n := forbidden.Load(); n != 0 {
		t.Errorf("%d calls reached a model the run may not use", n)
	}
	s, shown := h.show(h.onlyRun())
	if s.Run.CostUSD > 0.05 {
		t.Errorf("the run cost $%.4f of a $0.05 budget", s.Run.CostUSD)
	}
	anomalies := 0
	for _, n := range s.Nodes {
		for _, a := range n.Anomalies {
			if strings.Contains(a, "10000000 output tokens") && strings.Contains(a, "billed at the reservation") {
				anomalies++
			}
		}
	}
	if anomalies == 0 {
		t.Errorf("no node records the overbilling: %s", shown)
	}
	h.assertNoSecrets(out, logs, shown)
}

// TestHostileSchema: an 18-level anyOf over $ref (1.2 KB), which took
// 15.7 s and 1 GiB in Hive's own process, and a 9 KB pattern, which took
// minutes and 1 GiB, are applied in the sandbox and give up within their
// limits with an unsure verdict that says why.
func TestHostileSchema(t *testing.T) {
	var defs []string
	for i := range 18 {
		defs = append(defs, fmt.Sprintf(`"d%d": {"anyOf": [{"$ref": "#/$defs/d%d"}, {"$ref": "#/$defs/d%d"}]}`, i, i+1, i+1))
	}
	defs = append(defs, `"d18": {"type": "string", "minLength": 3}`)
	bomb := json.RawMessage(`{"$ref": "#/$defs/d0", "$defs": {` + strings.Join(defs, ", ") + `}}`)
	// A 9 KB pattern compiles to about a million instructions, and then
	// runs over the report's string.
	regex := json.RawMessage(`{"type": "string", "pattern": "` + strings.Repeat(".{0,1000}", 1000) + `x"}`)
	script := func(c *llmtest.Call) llmtest.Reply {
		if isLead(c) {
			if assistantTurns(c) == 0 {
				return delegate(map[string]any{"name": "bomb", "instructions": "Answer 1.", "tier": 1, "output_schema": bomb},
					map[string]any{"name": "regex", "instructions": "Answer a long string.", "tier": 1, "output_schema": regex})
			}
			return finish("done")
		}
		if mentions(c, "Answer a long string.") {
			return submit(`"` + strings.Repeat("a", 2000) + `"`)
		}
		return submit("1")
	}
	h := newHostile(t, script, "")
	start := time.Now()
	code, out, logs := h.hive(2*time.Minute, "run", "hostile")
	took := time.Since(start)
	if code != 0 {
		t.Fatalf("run: exit %d, stdout %q", code, out)
	}
	s, shown := h.show(h.onlyRun())
	for _, name := range []string{"bomb", "regex"} {
		var v string
		for _, n := range s.Nodes {
			if n.Name == name && n.Verdict != nil {
				v = n.Verdict.Outcome + ": " + n.Verdict.Evidence
			}
		}
		if !strings.HasPrefix(v, "unsure") || !strings.Contains(v, "too costly") {
			t.Errorf("%s: verdict %q", name, v)
		}
	}
	t.Logf("the run took %v", took)
	if took > time.Minute {
		t.Errorf("the run took %v", took)
	}
	h.assertNoSecrets(out, logs, shown)
}

// TestHostileScript: a worker's run_code tries a catastrophic regex in
// JavaScript, reads its environment in Python, and holds 800 MiB in eight
// children under a 128 MiB limit without a cgroup; the first ends at the
// sandbox's CPU limit, the second sees no secret, the third ends at the
// memory limit, and no process of the run is left.
func TestHostileScript(t *testing.T) {
	var seen notes
	script := func(c *llmtest.Call) llmtest.Reply {
		if isLead(c) {
			if assistantTurns(c) == 0 {
				return delegate(map[string]any{"name": "js", "instructions": "Run it."})
			}
			return finish("done")
		}
		switch assistantTurns(c) {
		case 0:
			return llmtest.Reply{ToolCalls: []llmtest.ToolCall{tool("run_code", map[string]any{"language": "javascript",
				"code": `console.log("start"); /^(a+)+(?=b)/.test("a".repeat(34) + "!"); console.log("end")`})}}
		case 1:
			seen.add(toolResults(c))
			return llmtest.Reply{ToolCalls: []llmtest.ToolCall{tool("run_code", map[string]any{"language": "python",
				"code": "import os\nprint(sorted(os.environ.items()))\nprint(open('/proc/1/environ').read())"})}}
		case 2:
			// Eight children of 100 MiB of shared memory each.
			seen.add(toolResults(c))
			return llmtest.Reply{ToolCalls: []llmtest.ToolCall{tool("run_code", map[string]any{"language": "python",
				"code": "import mmap, os, time\nfor i in range(8):\n    if os.fork() == 0:\n        m = mmap.mmap(-1, 100 << 20)\n        for off in range(0, 100 << 20, 4096):\n            m[off] = 1\n        time.sleep(30)\n        os._exit(0)\ntime.sleep(30)\n"})}}
		}
		seen.add(toolResults(c))
		return submit("ok")
	}
	// hive.toml's [sandbox] bounds run_code: 2 s of CPU, not the default
	// 10; 128 MiB, not 1 GiB; memory sampled, not in a cgroup.
	h := newHostile(t, script, "[sandbox]\ncpu = \"2s\"\nwall = \"30s\"\nmemory = \"128M\"\ncgroups = \"off\"\n")
	start := time.Now()
	code, out, logs := h.hive(2*time.Minute, "run", "hostile")
	if code != 0 {
		t.Fatalf("run: exit %d", code)
	}
	t.Logf("the run took %v", time.Since(start))
	results := seen.all()
	if len(results) != 3 {
		t.Fatalf("tool results: %q", results)
	}
	if !strings.HasPrefix(results[2], "stopped: memory_limit") {
		t.Errorf("eight children of 100 MiB under 128 MiB: %q", results[2])
	}
	if !strings.HasPrefix(results[0], "stopped: cpu_limit, 2s of CPU (") ||
		!strings.Contains(results[0], "start") || strings.Contains(results[0], "end") {
		t.Errorf("the regex bomb did not stop at the configured CPU limit: %q", results[0])
	}
	if !strings.Contains(results[1], "PATH") {
		t.Errorf("the environment was not printed: %q", results[1])
	}
	if n := descendants(); n > 0 {
		t.Errorf("%d processes of the run are left", n)
	}
	_, shown := h.show(h.onlyRun())
	h.assertNoSecrets(out, logs, shown)
}

// descendants counts the processes whose parent is this one (sandboxes
// are its children).
func descendants() int {
	self := fmt.Sprint(os.Getpid())
	entries, _ := os.ReadDir("/proc")
	n := 0
	for _, e := range entries {
		b, err := os.ReadFile(filepath.Join("/proc", e.Name(), "stat"))
		if err != nil {
			continue
		}
		// pid (comm) state ppid …
		s := string(b)
		if i := strings.LastIndexByte(s, ')'); i > 0 {
			if f := strings.Fields(s[i+1:]); len(f) > 1 && f[1] == self {
				n++
			}
		}
	}
	return n
}
