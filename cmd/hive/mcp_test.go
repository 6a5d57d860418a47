package main

import (
	"context"
	"encoding/json"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/hive-swarm/hive/internal/mcpserver"
	"github.com/hive-swarm/hive/internal/swarm"
)

// mcpCommand is hive mcp as a real process: this test binary acting as
// hive (see TestMain), on w's configuration and journal.
func (w *world) mcpCommand() *exec.Cmd {
	cmd := exec.Command(os.Args[0], "mcp")
	cmd.Env = []string{"HIVE_TEST_AS_MAIN=1", "HIVE_CONFIG=" + w.cfg, "HOME=" + w.dir, "PATH=" + os.Getenv("PATH")}
	cmd.Stderr = tWriter{w.t}
	return cmd
}

type tWriter struct{ t *testing.T }

func (w tWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimSpace(string(p)))
	return len(p), nil
}

// mcpProc is hive mcp running as a process, and a Go SDK client session
// on its stdin and stdout.
type mcpProc struct {
	*mcp.ClientSession
	cmd   *exec.Cmd
	stdin io.Closer
	exit  chan error // what Wait returned
}

// mcpSession starts hive mcp and connects the Go SDK's client to it over
// its stdin and stdout.
func (w *world) mcpSession(onProgress func(*mcp.ProgressNotificationParams)) *mcpProc {
	w.t.Helper()
	p := &mcpProc{cmd: w.mcpCommand(), exit: make(chan error, 1)}
	stdin, err := p.cmd.StdinPipe()
	if err != nil {
		w.t.Fatal(err)
	}
	stdout, err := p.cmd.StdoutPipe()
	if err != nil {
		w.t.Fatal(err)
	}
	if err := p.cmd.Start(); err != nil {
		w.t.Fatal(err)
	}
	p.stdin = stdin
	go func() { p.exit <- p.cmd.Wait() }()
	w.t.Cleanup(func() {
		stdin.Close()
		select {
		case <-p.exit:
		case <-time.After(20 * time.Second):
			w.t.Error("hive mcp did not exit within 20s of its stdin closing")
			p.cmd.Process.Kill()
		}
	})
	opts := &mcp.ClientOptions{}
	if onProgress != nil {
		opts.ProgressNotificationHandler = func(_ context.Context, req *mcp.ProgressNotificationClientRequest) { onProgress(req.Params) }
	}
	p.ClientSession, err = mcp.NewClient(&mcp.Implementation{Name: "test", Version: "1"}, opts).
		Connect(context.Background(), &mcp.IOTransport{Reader: stdout, Writer: stdin}, nil)
	if err != nil {
		w.t.Fatalf("connect to hive mcp: %v", err)
	}
	return p
}

// hangUp closes hive mcp's stdin, as a client that goes away does, and
// returns how it exited and how long it took.
func (p *mcpProc) hangUp(t *testing.T) (error, time.Duration) {
	t.Helper()
	start := time.Now()
	p.stdin.Close()
	select {
	case err := <-p.exit:
		p.exit <- err // for the cleanup
		return err, time.Since(start)
	case <-time.After(20 * time.Second):
		t.Fatal("hive mcp did not exit within 20s of its stdin closing")
		return nil, 0
	}
}

// runStatus reads a run's status through hive runs --json.
func (w *world) runStatus(id string) swarm.Status {
	w.t.Helper()
	_, out, _ := w.hive("runs", "--json")
	var runs []swarm.RunView
	json.Unmarshal([]byte(out), &runs)
	for _, r := range runs {
		if r.ID == id {
			return r.Status
		}
	}
	w.t.Fatalf("no run %s in %s", id, out)
	return ""
}

func callText(res *mcp.CallToolResult) string {
	var b strings.Builder
	for _, c := range res.Content {
		if tc, ok := c.(*mcp.TextContent); ok {
			b.WriteString(tc.Text)
		}
	}
	return b.String()
}

// TestMCPStdio: hive mcp over its real stdin and stdout: run_swarm
// answers with the run's answer, cost and id and sends progress; a
// hostile argument is a tool error; the process exits cleanly when the
// client closes its stdin.
func TestMCPStdio(t *testing.T) {
	w := newWorld(t)
	var mu sync.Mutex
	var progress []float64
	cs := w.mcpSession(func(p *mcp.ProgressNotificationParams) {
		mu.Lock()
		progress = append(progress, p.Progress)
		mu.Unlock()
	})
	p := &mcp.CallToolParams{Name: "run_swarm", Arguments: map[string]any{"task": "Count to three."}}
	p.SetProgressToken("t")
	res, err := cs.CallTool(context.Background(), p)
	if err != nil {
		t.Fatal(err)
	}
	var out mcpserver.RunResult
	data, _ := json.Marshal(res.StructuredContent)
	json.Unmarshal(data, &out)
	if res.IsError || out.Answer != "three reports" || out.Status != "done" || out.CostUSD <= 0 || out.RunID == "" {
		t.Fatalf("run_swarm: %q %+v", callText(res), out)
	}
	if st := w.runStatus(out.RunID); st != swarm.StatusDone {
		t.Errorf("hive runs says %s", st)
	}
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		mu.Lock()
		ps := append([]float64(nil), progress...)
		mu.Unlock()
		if len(ps) > 0 && ps[len(ps)-1] == 4 || time.Now().After(deadline) {
			if len(ps) < 2 {
				t.Errorf("progress %v", ps)
			}
			for i := 1; i < len(ps); i++ {
				if ps[i] <= ps[i-1] {
					t.Errorf("progress %v does not rise", ps)
				}
			}
			break
		}
	}

	res, err = cs.CallTool(context.Background(), &mcp.CallToolParams{Name: "run_swarm",
		Arguments: map[string]any{"task": "x", "tiers": []string{"openai:gpt-5"}}})
	if err != nil || !res.IsError || !strings.Contains(callText(res), `unknown model "openai:gpt-5"`) {
		t.Fatalf("hostile tiers: %v %q", err, callText(res))
	}

	if err, d := cs.hangUp(t); err != nil {
		t.Fatalf("hive mcp did not exit cleanly: %v", err)
	} else {
		t.Logf("hive mcp exited %v after its stdin closed", d)
	}
}

// TestMCPStdioEnds: a cancelled call cancels its run; so does a client
// that hangs up while a call waits; hive mcp stopped by a signal leaves
// the run it waited for unfinished (interrupted, resumable).
func TestMCPStdioEnds(t *testing.T) {
	w := newWorld(t)
	w.slow.Store(true)
	slow := &mcp.CallToolParams{Name: "run_swarm", Arguments: map[string]any{"task": "A SLOW job."}}
	// runs lists the journal's runs, newest first.
	runs := func() []swarm.RunView {
		_, out, _ := w.hive("runs", "--json")
		var runs []swarm.RunView
		json.Unmarshal([]byte(out), &runs)
		return runs
	}
	// started waits for a run beyond the n there were, and its lead's
	// call, and returns the run's id.
	started := func(t *testing.T, n int) string {
		t.Helper()
		for deadline := time.Now().Add(20 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
			if rs := runs(); len(rs) > n && w.srv.Requests() > n {
				return rs[0].ID
			}
		}
		t.Fatal("no run started within 20s")
		return ""
	}
	waitStatus := func(t *testing.T, id string, want swarm.Status) {
		t.Helper()
		st := w.runStatus(id)
		for deadline := time.Now().Add(20 * time.Second); st != want && time.Now().Before(deadline); st = w.runStatus(id) {
			time.Sleep(50 * time.Millisecond)
		}
		if st != want {
			_, shown, _ := w.hive("show", id)
			t.Fatalf("run %s is %s, want %s:\n%s", id, st, want, shown)
		}
	}

	t.Run("cancelled call", func(t *testing.T) {
		cs := w.mcpSession(nil)
		ctx, cancel := context.WithCancel(context.Background())
		errc := make(chan error, 1)
		n := len(runs())
		go func() { _, err := cs.CallTool(ctx, slow); errc <- err }()
		id := started(t, n)
		cancel()
		<-errc
		waitStatus(t, id, swarm.StatusCancelled)
		if err, _ := cs.hangUp(t); err != nil {
			t.Errorf("exit: %v", err)
		}
	})

	t.Run("client hangs up", func(t *testing.T) {
		cs := w.mcpSession(nil)
		n := len(runs())
		go cs.CallTool(context.Background(), slow)
		id := started(t, n)
		err, d := cs.hangUp(t)
		if err != nil {
			t.Errorf("exit: %v", err)
		}
		t.Logf("hive mcp exited %v after its stdin closed", d)
		waitStatus(t, id, swarm.StatusCancelled)
	})

	t.Run("signal", func(t *testing.T) {
		cs := w.mcpSession(nil)
		n := len(runs())
		go cs.CallTool(context.Background(), slow)
		id := started(t, n)
		cs.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case err := <-cs.exit:
			cs.exit <- err
			if err != nil {
				t.Errorf("exit after SIGTERM: %v", err)
			}
		case <-time.After(20 * time.Second):
			t.Fatal("hive mcp did not exit within 20s of SIGTERM")
		}
		if st := w.runStatus(id); st != swarm.StatusInterrupted {
			t.Errorf("run %s is %s after hive mcp stopped, want interrupted", id, st)
		}
	})
}

// mcpSDK is where the official MCP TypeScript SDK is installed for
// TestMCPTypeScriptSDK.
const mcpSDK = "testdata/mcp-sdk"

// TestMCPTypeScriptSDK drives hive mcp (stdio) and hive serve's /mcp
// (streamable HTTP, with the token and without) with the official MCP
// TypeScript SDK's client.
func TestMCPTypeScriptSDK(t *testing.T) {
	// scripts/test.sh installs both; a missing one is a failure, not a pass.
	if _, err := exec.LookPath("node"); err != nil {
		t.Fatal("no node: the MCP TypeScript SDK cannot run (scripts/test.sh installs nodejs)")
	}
	if _, err := os.Stat(filepath.Join(mcpSDK, "node_modules", "@modelcontextprotocol", "sdk", "package.json")); err != nil {
		t.Fatal("the MCP TypeScript SDK is not installed: npm ci --prefix cmd/hive/" + mcpSDK + " (scripts/test.sh does it)")
	}
	w := newWorld(t)
	base, token, stop := w.serve(w.getenv)
	defer stop()

	command, _ := json.Marshal([]string{os.Args[0], "mcp"})
	env, _ := json.Marshal(map[string]string{"HIVE_TEST_AS_MAIN": "1", "HIVE_CONFIG": w.cfg, "HOME": w.dir, "PATH": os.Getenv("PATH")})
	cmd := exec.Command("node", "client.mjs")
	cmd.Dir = mcpSDK
	cmd.Env = append(os.Environ(), "HIVE_MCP_COMMAND="+string(command), "HIVE_MCP_ENV="+string(env),
		"HIVE_MCP_URL="+base+"mcp", "HIVE_TOKEN="+token)
	cmd.Stderr = tWriter{t}
	stdout, err := cmd.Output()
	if err != nil {
		t.Fatalf("node client.mjs: %v; printed %s", err, stdout)
	}
	t.Logf("node client.mjs: %s", stdout)
	type session struct {
		Server string
		Tools  []string
		Run    struct {
			IsError    bool
			Text       string
			Structured mcpserver.RunResult
		}
		Progress []struct{ Progress, Total float64 }
		Hostile  struct {
			IsError bool
			Text    string
		}
		Status struct {
			IsError bool
			Text    string
		}
	}
	var got struct {
		Stdio, HTTP session
		NoToken     struct {
			Connected     bool
			Code          int
			Name, Message string
		}
	}
	if err := json.Unmarshal(stdout, &got); err != nil {
		t.Fatalf("node client.mjs printed %q: %v", stdout, err)
	}
	for name, s := range map[string]session{"stdio": got.Stdio, "http": got.HTTP} {
		if s.Server != "hive" || strings.Join(s.Tools, ",") != "cancel_run,run_status,run_swarm" {
			t.Errorf("%s: server %q, tools %v", name, s.Server, s.Tools)
		}
		r := s.Run.Structured
		if s.Run.IsError || r.Answer != "three reports" || r.Status != "done" || r.CostUSD <= 0 || r.RunID == "" ||
			!strings.HasPrefix(s.Run.Text, "three reports") {
			t.Errorf("%s: run_swarm %+v", name, s.Run)
		}
		if len(s.Progress) < 1 {
			t.Errorf("%s: no progress", name)
		}
		for i := 1; i < len(s.Progress); i++ {
			if s.Progress[i].Progress <= s.Progress[i-1].Progress {
				t.Errorf("%s: progress %v does not rise", name, s.Progress)
			}
		}
		if !s.Hostile.IsError || !strings.Contains(s.Hostile.Text, `unknown model "anthropic:claude-opus-4-1"`) {
			t.Errorf("%s: hostile lead %+v", name, s.Hostile)
		}
		if s.Status.IsError || !strings.Contains(s.Status.Text, "4 of 4 nodes finished") {
			t.Errorf("%s: run_status %+v", name, s.Status)
		}
	}
	if got.NoToken.Connected || got.NoToken.Code != 401 {
		t.Errorf("without the token: %+v", got.NoToken)
	}
}

// TestMCPWorkspaceRootFlag: a root that is not a directory, or is "/",
// is a usage error before anything starts.
func TestMCPWorkspaceRootFlag(t *testing.T) {
	w := newWorld(t)
	for dir, want := range map[string]string{
		filepath.Join(w.dir, "missing"): "is not a directory",
		w.cfg:                           "is not a directory",
		"/":                             "any directory of this machine",
	} {
		code, _, errOut := w.hive("mcp", "--workspace-root", dir)
		if code != 2 || !strings.Contains(errOut, want) || strings.Contains(errOut, "goroutine") {
			t.Errorf("--workspace-root %s: exit %d, %q; want 2 and %q", dir, code, errOut, want)
		}
	}
}
