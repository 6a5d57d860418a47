//go:build unix

package mcp

import (
	"context"
	"errors"
	"os"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/hive-swarm/hive/internal/secret"
)

// TestStdio runs this test binary as a stdio server: its environment is
// only what its table gives it, what it sends back is redacted, a large
// answer gets through the pipe and is capped, and Close leaves no process or goroutine.
func TestStdio(t *testing.T) {
	const key = "sk-fake-secret-0123456789"
	t.Setenv("HIVE_MCP_TEST_SECRET", key)
	t.Setenv("HIVE_MCP_TEST_LEAK", "not-for-servers-0123456789")
	check := goroutines(t)

	cfg := stdioConfig(t, "tools")
	cfg.Env = []string{"HIVE_MCP_TEST_SECRET"}
	red := secret.New(secret.Env(os.Environ(), "HIVE_MCP_TEST_LEAK"))
	m := newManager(t, "kid", cfg, Options{Redact: red.String})
	start(t, m)
	if r := call(t, m, "kid__echo", `{"text": "over stdio"}`); r.Text != "echo: over stdio" {
		t.Errorf("echo: %+v", r)
	}
	for name, want := range map[string]string{
		"HIVE_MCP_TEST_SECRET": "HIVE_MCP_TEST_SECRET=[redacted HIVE_MCP_TEST_SECRET]", // named: passed, and scrubbed
		"HIVE_MCP_TEST_LEAK":   "HIVE_MCP_TEST_LEAK is not set",                        // not named: not passed
		serverEnv:              serverEnv + "=tools",                                   // set
		"PATH":                 "PATH=" + os.Getenv("PATH"),
	} {
		if r := call(t, m, "kid__env", `{"name": "`+name+`"}`); r.Text != want {
			t.Errorf("env %s: %q, want %q", name, r.Text, want)
		}
	}
	r := call(t, m, "kid__big", `{"bytes": 2097152}`) // 10 MB is TestBigOutput's
	if len(r.Full) != 2<<20 || len(r.Text) > DefaultMaxOutput+100 || !strings.HasSuffix(r.Text, "[truncated: 2031616 bytes more]") {
		t.Errorf("big: Text %d bytes, Full %d", len(r.Text), len(r.Full))
	}

	p := pid(t, m, "kid")
	m.Close()
	waitGone(t, p)
	check()

	// Not named in env, the variable is not there, redactor or not.
	cfg.Env = nil
	m = newManager(t, "kid", cfg, Options{})
	if r := call(t, m, "kid__env", `{"name": "HIVE_MCP_TEST_SECRET"}`); r.Text != "HIVE_MCP_TEST_SECRET is not set" {
		t.Errorf("env of a server that names no variable: %q", r.Text)
	}
}

// TestStdioCrash: a server that exits during a call is started again at
// the next call, once; when it exits again its tools fail, saying how it
// ended and what it wrote to stderr.
func TestStdioCrash(t *testing.T) {
	check := goroutines(t)
	m := newManager(t, "kid", stdioConfig(t, "tools"), Options{})
	start(t, m)
	first := pid(t, m, "kid")

	err := callErr(t, m, "kid__crash", `{}`, ErrUnavailable)
	for _, want := range []string{"mcp server kid stopped during the call to kid__crash (Hive starts it again at the next call, once a run): it exited with status 3", "crash: the disk is on fire"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("first crash: %v\nwant it to say %q", err, want)
		}
	}
	if r := call(t, m, "kid__echo", `{"text": "again"}`); r.Text != "echo: again" {
		t.Errorf("echo after the restart: %+v", r)
	}
	if second := pid(t, m, "kid"); second == first {
		t.Errorf("the same process %d after a restart", first)
	}
	err = callErr(t, m, "kid__crash", `{}`, ErrUnavailable)
	if !strings.Contains(err.Error(), "started again once already") {
		t.Errorf("second crash: %v", err)
	}
	for range 2 {
		err = callErr(t, m, "kid__echo", `{"text": "third"}`, ErrUnavailable)
		for _, want := range []string{"mcp server kid is down for the rest of the run", "[mcp.kid] table): after its second start, it exited with status 3; the end of its stderr:\ncrash: the disk is on fire"} {
			if !strings.Contains(err.Error(), want) {
				t.Errorf("given up: %v\nwant it to say %q", err, want)
			}
		}
	}
	if len(m.Tools()) == 0 {
		t.Error("the tools listed at the start are gone")
	}
	m.Close()
	check()
}

// TestStdioHang: a tool deaf to cancellation times out; the server answers
// other calls; Close stops it anyway (EOF, SIGTERM) and in bounded time.
func TestStdioHang(t *testing.T) {
	check := goroutines(t)
	cfg := stdioConfig(t, "tools")
	// Long enough for the server to start on a machine busy with the whole
	// suite (it bounds the start too); the hanging call waits it out.
	cfg.Timeout = 2 * time.Second
	m := newManager(t, "kid", cfg, Options{})
	start(t, m)
	callErr(t, m, "kid__hang", `{}`, context.DeadlineExceeded)
	if r := call(t, m, "kid__echo", `{"text": "awake"}`); r.Text != "echo: awake" {
		t.Errorf("echo: %+v", r)
	}
	p := pid(t, m, "kid")
	begin := time.Now()
	m.Close()
	if d := time.Since(begin); d > 3*closeGrace+pipeGrace+time.Second {
		t.Errorf("Close took %s", d)
	}
	waitGone(t, p)
	check()
}

// TestStdioProcessGroup: what a server started is stopped with it, when
// it is closed and when it crashed.
func TestStdioProcessGroup(t *testing.T) {
	m := newManager(t, "kid", stdioConfig(t, "tools"), Options{})
	spawn := func() int {
		r := call(t, m, "kid__spawn", `{}`)
		child, err := strconv.Atoi(r.Text)
		if err != nil || gone(child) {
			t.Fatalf("spawn: %+v: no child running", r)
		}
		return child
	}
	child := spawn()
	callErr(t, m, "kid__crash", `{}`, ErrUnavailable)
	call(t, m, "kid__echo", `{"text": "restarted"}`)
	waitGone(t, child)

	child = spawn()
	m.Close()
	waitGone(t, child)
}

// pid returns the process id of a stdio server's current session.
func pid(t *testing.T, m *Manager, name string) int {
	t.Helper()
	s := m.servers[name]
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.sess == nil || s.sess.cmd == nil {
		t.Fatalf("server %s runs no process", name)
	}
	return s.sess.cmd.Process.Pid
}

// gone reports whether process pid has ended. A zombie has: in a
// container nobody may reap an orphan.
func gone(pid int) bool {
	if err := syscall.Kill(pid, 0); errors.Is(err, syscall.ESRCH) {
		return true
	}
	stat, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return errors.Is(err, os.ErrNotExist)
	}
	_, after, _ := strings.Cut(string(stat), ") ")
	return strings.HasPrefix(after, "Z")
}

func waitGone(t *testing.T, pid int) {
	t.Helper()
	deadline := time.Now().Add(3 * time.Second)
	for !gone(pid) {
		if time.Now().After(deadline) {
			t.Fatalf("process %d still runs", pid)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestStdioSilent: a server that never answers fails to start within its
// timeout, saying so, and is stopped.
func TestStdioSilent(t *testing.T) {
	check := goroutines(t)
	m := newManager(t, "mute", ServerConfig{Command: "sleep", Args: []string{"60"}, Allow: []string{"*"}, Timeout: 300 * time.Millisecond}, Options{})
	begin := time.Now()
	err := m.Start(context.Background())
	if !errors.Is(err, ErrUnavailable) || !strings.Contains(err.Error(), "did not finish starting within 300ms (the timeout of [mcp.mute])") {
		t.Errorf("start: %v", err)
	}
	t.Log(err)
	if d := time.Since(begin); d > 2*closeGrace+pipeGrace+time.Second {
		t.Errorf("the start took %s", d)
	}
	m.Close()
	check()
}
