//go:build unix

package mcp

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/hive-swarm/hive/internal/secret"
)

// servers is where the third-party MCP servers the tests run are installed
// (scripts/test.sh runs npm ci there).
const servers = "testdata/servers"

// TestEverythingServer runs the MCP project's reference server
// (@modelcontextprotocol/server-everything, Node, over stdio): its tools
// answer through the manager, the allow list holds, and its get-env tool,
// which prints its whole environment, shows what a server gets of Hive's.
func TestEverythingServer(t *testing.T) {
	// scripts/test.sh installs both; a missing server is a failure, not a pass.
	if _, err := exec.LookPath("node"); err != nil {
		t.Fatal("no node: the MCP reference server cannot run (scripts/test.sh installs nodejs)")
	}
	entry, err := filepath.Abs(filepath.Join(servers, "node_modules/@modelcontextprotocol/server-everything/dist/index.js"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(entry); err != nil {
		t.Fatal("the MCP reference server is not installed: npm ci --prefix internal/mcp/" + servers + " (scripts/test.sh does it)")
	}
	const key = "sk-everything-0123456789"
	t.Setenv("HIVE_MCP_TEST_TOKEN", key)
	t.Setenv("HIVE_MCP_TEST_LEAK", "not-for-servers-0123456789")
	check := goroutines(t)

	red := secret.New(secret.Env(os.Environ()))
	m := newManager(t, "everything", ServerConfig{
		Command: "node",
		Args:    []string{entry, "stdio"},
		Env:     []string{"HIVE_MCP_TEST_TOKEN"},
		Allow:   []string{"echo", "get-sum", "get-env", "get-tiny-image", "get-structured-content"},
	}, Options{Redact: red.String})
	start(t, m)

	want := "everything__echo everything__get-env everything__get-structured-content everything__get-sum everything__get-tiny-image"
	if got := strings.Join(toolNames(m), " "); got != want {
		t.Fatalf("tools %s\nwant %s", got, want)
	}
	if r := call(t, m, "everything__echo", `{"message": "hello, bees"}`); r.Text != "Echo: hello, bees" || r.IsError {
		t.Errorf("echo: %+v", r)
	}
	if r := call(t, m, "everything__get-sum", `{"a": 2, "b": 40}`); !strings.Contains(r.Text, "42") || r.IsError {
		t.Errorf("get-sum: %+v", r)
	}
	if r := call(t, m, "everything__get-sum", `{"a": "two", "b": 40}`); !r.IsError {
		t.Errorf("get-sum of a string: %+v, want a tool error", r)
	} else {
		t.Logf("get-sum of a string: %s", r.Text)
	}
	if r := call(t, m, "everything__get-tiny-image", ``); !strings.Contains(r.Text, "[image: image/png, ") || r.IsError {
		t.Errorf("get-tiny-image: %+v", r)
	}
	r := call(t, m, "everything__get-structured-content", `{"location": "Chicago"}`)
	if !strings.Contains(string(r.Structured), `"temperature"`) || r.IsError {
		t.Errorf("get-structured-content: %+v, structured %s", r, r.Structured)
	}

	r = call(t, m, "everything__get-env", `{}`)
	t.Logf("get-env: %s", r.Text)
	if !strings.Contains(r.Text, `"HIVE_MCP_TEST_TOKEN": "[redacted HIVE_MCP_TEST_TOKEN]"`) || strings.Contains(r.Text, key) {
		t.Errorf("get-env does not show the named variable, redacted")
	}
	if strings.Contains(r.Text, "HIVE_MCP_TEST_LEAK") || strings.Contains(r.Text, "not-for-servers") {
		t.Errorf("get-env shows a variable the table does not name")
	}

	// Offered by the server, not allowed: not a tool, and never sent.
	callErr(t, m, "everything__get-annotated-message", `{"messageType": "success"}`, ErrUnknownTool)
	callErr(t, m, "everything__toggle-simulated-logging", `{}`, ErrUnknownTool)

	p := pid(t, m, "everything")
	m.Close()
	waitGone(t, p)
	check()
}
