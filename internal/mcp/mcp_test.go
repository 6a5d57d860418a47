package mcp

import (
	"context"
	"encoding/json"
	"errors"
	"regexp"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hive-swarm/hive/internal/secret"
)

// modelToolName is what every model API Hive speaks accepts as a tool's
// name (OpenAI's, and Gemini's first character).
var modelToolName = regexp.MustCompile(`^[a-zA-Z_][a-zA-Z0-9_-]{0,63}$`)

// TestInMemory runs the manager against a Go SDK server in this process:
// the allow list, results of every kind, tool errors, arguments refused
// before they are sent, unknown tools.
func TestInMemory(t *testing.T) {
	check := goroutines(t)
	var calls atomic.Int64
	srv := newTestServer("tools", false, &calls)
	m := memManager(t, "box", srv, ServerConfig{Allow: []string{"echo", "add", "mixed", "fail", "hang", "nonesuch"}}, Options{})
	start(t, m)

	if got, want := toolNames(m), []string{"box__add", "box__echo", "box__fail", "box__hang", "box__mixed"}; !slices.Equal(got, want) {
		t.Fatalf("tools %v, want %v (the allow list's, in order)", got, want)
	}
	for _, tool := range m.Tools() {
		if !modelToolName.MatchString(tool.Name) || tool.Server != "box" || tool.Description == "" {
			t.Errorf("tool %+v", tool)
		}
		var schema map[string]any
		if err := json.Unmarshal(tool.Schema, &schema); err != nil || schema["type"] != "object" {
			t.Errorf("tool %s: schema %s", tool.Name, tool.Schema)
		}
	}

	if r := call(t, m, "box__echo", `{"text": "hi"}`); r.Text != "echo: hi" || r.IsError || r.Full != "" || r.Structured != nil {
		t.Errorf("echo: %+v", r)
	}
	r := call(t, m, "box__add", `{"a": 2, "b": 3.5}`)
	if r.IsError || string(r.Structured) != `{"sum":5.5}` || !strings.Contains(r.Text, "5.5") {
		t.Errorf("add: %+v, structured %s", r, r.Structured)
	}
	want := strings.Join([]string{
		"here it is",
		"[image: image/png, 100 bytes]",
		"[audio: audio/wav, 30 bytes]",
		"[resource: file:///notes.txt, text/plain, 9 bytes]\nthe notes",
		"[resource: file:///blob.bin, application/octet-stream, 7 bytes of binary data, not shown]",
		"[resource link: file:///big.csv, text/csv, 4096 bytes, name big.csv]",
	}, "\n")
	if r := call(t, m, "box__mixed", ``); r.Text != want {
		t.Errorf("mixed:\n%s\nwant\n%s", r.Text, want)
	}
	if r := call(t, m, "box__fail", `{}`); !r.IsError || r.Text != "the widget is broken" {
		t.Errorf("fail: %+v", r)
	}
	// Arguments of the wrong type are the server's to refuse; the model
	// is told, as a tool error.
	if r := call(t, m, "box__add", `{"a": "two"}`); !r.IsError || !strings.Contains(r.Text, "a") {
		t.Errorf("add with a string: %+v", r)
	}

	sent := calls.Load()
	for _, args := range []string{`[1, 2]`, `"text"`, `null`, `42`, `true`, `{"a": 1`, `{"a": 1} {}`} {
		err := callErr(t, m, "box__echo", args, ErrBadArguments)
		if !strings.Contains(err.Error(), "JSON object") {
			t.Errorf("%s: %v", args, err)
		}
	}
	callErr(t, m, "box__big", `{"bytes": 10}`, ErrUnknownTool) // offered, not allowed
	callErr(t, m, "box__nonesuch", `{}`, ErrUnknownTool)       // allowed, not offered
	callErr(t, m, "elsewhere__echo", `{}`, ErrUnknownTool)
	callErr(t, m, "echo", `{}`, ErrUnknownTool)
	if n := calls.Load(); n != sent {
		t.Errorf("%d calls reached the server; refused calls must not", n-sent)
	}

	m.Close()
	callErr(t, m, "box__echo", `{}`, ErrClosed)
	check()
}

// TestTimeout: a tool that does not answer in time fails with a timeout
// that says which; the server goes on answering.
func TestTimeout(t *testing.T) {
	check := goroutines(t)
	srv := newTestServer("tools", false, nil)
	// 500 ms, not less: the timeout bounds the in-memory server's start
	// too, which a machine busy with the whole suite can take 100 ms over.
	m := memManager(t, "box", srv, ServerConfig{Allow: []string{"*"}, Timeout: 500 * time.Millisecond}, Options{})
	start(t, m)
	begin := time.Now()
	err := callErr(t, m, "box__hang", `{}`, context.DeadlineExceeded)
	if d := time.Since(begin); d > 2*time.Second {
		t.Errorf("the timeout took %s", d)
	}
	cancelled(t)
	if !strings.Contains(err.Error(), "did not answer within 500ms") || !strings.Contains(err.Error(), "[mcp.box]") {
		t.Errorf("timeout: %v", err)
	}
	if r := call(t, m, "box__echo", `{"text": "still here"}`); r.Text != "echo: still here" {
		t.Errorf("echo after a timeout: %+v", r)
	}
	m.Close()
	check()
}

// TestCloseDuringCall: Close ends a call in flight, at once.
func TestCloseDuringCall(t *testing.T) {
	check := goroutines(t)
	srv := newTestServer("tools", false, nil)
	m := memManager(t, "box", srv, ServerConfig{Allow: []string{"*"}}, Options{})
	start(t, m)
	errc := make(chan error, 1)
	go func() {
		_, err := m.Call(context.Background(), "box__hang", nil)
		errc <- err
	}()
	time.Sleep(50 * time.Millisecond)
	m.Close()
	select {
	case err := <-errc:
		if !errors.Is(err, ErrClosed) {
			t.Errorf("a call in flight at Close: %v", err)
		}
	case <-time.After(3 * time.Second):
		t.Fatal("Close left a call hanging")
	}
	check()
}

// TestBigOutput: 10 MB of text is capped at max_output, with a marker
// that says how much more there was, and kept whole in Full.
func TestBigOutput(t *testing.T) {
	srv := newTestServer("tools", false, nil)
	m := memManager(t, "box", srv, ServerConfig{Allow: []string{"big"}, MaxOutput: 1000}, Options{})
	const n = 10 << 20
	r := call(t, m, "box__big", `{"bytes": 10485760}`)
	if len(r.Full) != n || strings.Trim(r.Full, "x") != "" {
		t.Fatalf("Full has %d bytes, want %d", len(r.Full), n)
	}
	if want := strings.Repeat("x", 1000) + "\n[truncated: 10484760 bytes more]"; r.Text != want {
		t.Errorf("Text is %q…%q (%d bytes)", r.Text[:10], r.Text[max(0, len(r.Text)-40):], len(r.Text))
	}
	if r := call(t, m, "box__big", `{"bytes": 1000}`); len(r.Text) != 1000 || r.Full != "" {
		t.Errorf("1000 bytes: Text %d bytes, Full %d", len(r.Text), len(r.Full))
	}
}

// TestRedact: a secret.Redactor scrubs results, errors and descriptions.
func TestRedact(t *testing.T) {
	const key = "sk-test-0123456789abcdef"
	red := secret.New(map[string]string{"HIVE_TEST_KEY": key})
	srv := newTestServer("tools", false, nil)
	m := memManager(t, "box", srv, ServerConfig{Allow: []string{"echo"}, MaxOutput: 20}, Options{Redact: red.String})
	r := call(t, m, "box__echo", `{"text": "`+strings.Repeat("k", 7)+key+`"}`)
	if strings.Contains(r.Text+r.Full, key[:10]) || !strings.Contains(r.Full, "[redacted HIVE_TEST_KEY]") {
		t.Errorf("echo of the key: %+v", r)
	}
	err := callErr(t, m, "box__"+key, `{}`, ErrUnknownTool)
	if strings.Contains(err.Error(), key) {
		t.Errorf("an error holds the key: %v", err)
	}
}

// TestNames: tool names outside what model APIs take are renamed the same
// way every run; names that still collide, and a schema that is not an
// object, are left out; a renamed tool reaches the right remote tool.
func TestNames(t *testing.T) {
	srv := newTestServer("names", false, nil)
	m := memManager(t, "names", srv, ServerConfig{Allow: []string{"*"}}, Options{})
	start(t, m)
	remote := map[string]string{}
	for _, tool := range m.Tools() {
		if !modelToolName.MatchString(tool.Name) {
			t.Errorf("tool name %q", tool.Name)
		}
		if s, _ := splitName(tool.Name); s != "names" {
			t.Errorf("tool %q: server %q", tool.Name, s)
		}
		remote[tool.Name] = tool.Remote
	}
	want := map[string]string{
		"names__plain": "plain",
		"names__a_b":   "a_b",
	}
	for _, r := range []string{"a.b", "a/b", "spaced name!", "ünï", strings.Repeat("long", 20)} {
		want[toolName("names", r)] = r
	}
	if len(remote) != len(want) {
		t.Errorf("tools %v, want %v", remote, want)
	}
	for name, r := range want {
		if remote[name] != r {
			t.Errorf("tool %s is %q, want %q", name, remote[name], r)
		}
		if res := call(t, m, name, `{}`); res.Text != r {
			t.Errorf("%s answered %q, want %q", name, res.Text, r)
		}
	}
	for _, r := range []string{"x.y", collider, "array-schema"} {
		for n, got := range remote {
			if got == r {
				t.Errorf("%q is offered as %s; it should be left out", r, n)
			}
		}
	}
	if toolName("names", "a.b") == toolName("names", "a/b") {
		t.Error("a.b and a/b have one name")
	}
}

// TestStartFailure: a server that cannot start says why; it is tried once
// more at its next use, then given up with the same reason.
func TestStartFailure(t *testing.T) {
	check := goroutines(t)
	m := newManager(t, "ghost", ServerConfig{Command: "hive-no-such-mcp-server", Allow: []string{"*"}}, Options{})
	err := m.Start(context.Background())
	if !errors.Is(err, ErrUnavailable) || !strings.Contains(err.Error(), "mcp server ghost could not be started") || !strings.Contains(err.Error(), "hive-no-such-mcp-server") {
		t.Fatalf("start: %v", err)
	}
	if len(m.Tools()) != 0 {
		t.Errorf("tools of a server that did not start: %v", m.Tools())
	}
	callErr(t, m, "ghost__x", `{}`, ErrUnavailable) // the second start
	err = callErr(t, m, "ghost__x", `{}`, ErrUnavailable)
	if !strings.Contains(err.Error(), "is down for the rest of the run") || !strings.Contains(err.Error(), "after its second start, it could not be started: exec: \"hive-no-such-mcp-server\"") {
		t.Errorf("given up: %v", err)
	}
	m.Close()
	check()
}

func TestObjectArgs(t *testing.T) {
	for in, want := range map[string]string{"": "{}", "  ": "{}", ` {"a":1} `: `{"a":1}`, `{}`: `{}`} {
		got, err := objectArgs(json.RawMessage(in))
		if err != nil || string(got) != want {
			t.Errorf("%q: %s, %v", in, got, err)
		}
	}
	for in, want := range map[string]string{`[]`: "an array", `"s"`: "a string", `null`: "null", `false`: "a boolean", `-1`: "a number", `{`: "not valid JSON"} {
		if _, err := objectArgs(json.RawMessage(in)); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%q: %v, want it to say %q", in, err, want)
		}
	}
}

func TestCapText(t *testing.T) {
	for _, c := range []struct {
		in   string
		max  int
		want string
	}{
		{"hello", 5, "hello"},
		{"hello", 4, "hell\n[truncated: 1 bytes more]"},
		{"héllo", 2, "h\n[truncated: 5 bytes more]"}, // never half of é
		{"", 0, ""},
	} {
		text, full := capText(c.in, c.max)
		wantFull := ""
		if c.want != c.in {
			wantFull = c.in
		}
		if text != c.want || full != wantFull {
			t.Errorf("capText(%q, %d) = %q, %q; want %q", c.in, c.max, text, full, c.want)
		}
	}
}
