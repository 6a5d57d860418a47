package mcp

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	sdk "github.com/modelcontextprotocol/go-sdk/mcp"
)

// TestHTTP reaches a Go SDK server over streamable HTTP, sending the
// headers its table names from the environment, which the server checks.
func TestHTTP(t *testing.T) {
	const token = "tok-0123456789abcdef"
	srv := newTestServer("tools", false, nil)
	var mcpHandler atomic.Pointer[sdk.StreamableHTTPHandler]
	restart := func() { // a new handler knows none of the sessions before
		mcpHandler.Store(sdk.NewStreamableHTTPHandler(func(*http.Request) *sdk.Server { return srv }, nil))
	}
	restart()
	var refused atomic.Int64
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Authorization") != "Bearer "+token || r.Header.Get("X-Hive-Team") != "bees" {
			refused.Add(1)
			http.Error(w, "who are you?", http.StatusUnauthorized)
			return
		}
		mcpHandler.Load().ServeHTTP(w, r)
	}))
	defer ts.Close()
	// The server's side of sessions its client left (a restarted handler's)
	// are closed, for the goroutine count.
	closeSessions := func() {
		for ss := range srv.Sessions() {
			ss.Close()
		}
	}

	env := map[string]string{"HIVE_TEST_TOKEN": token, "HIVE_TEST_TEAM": "bees"}
	getenv := func(k string) string { return env[k] }
	cfg := ServerConfig{
		URL:        ts.URL,
		BearerEnv:  "HIVE_TEST_TOKEN",
		HeadersEnv: map[string]string{"X-Hive-Team": "HIVE_TEST_TEAM"},
		Allow:      []string{"echo", "hang"},
		Timeout:    300 * time.Millisecond,
	}

	check := goroutines(t)
	m := newManager(t, "web", cfg, Options{Getenv: getenv})
	start(t, m)
	if got := toolNames(m); strings.Join(got, " ") != "web__echo web__hang" {
		t.Errorf("tools %v", got)
	}
	if r := call(t, m, "web__echo", `{"text": "over HTTP"}`); r.Text != "echo: over HTTP" {
		t.Errorf("echo: %+v", r)
	}
	callErr(t, m, "web__hang", `{}`, context.DeadlineExceeded)
	cancelled(t)
	if r := call(t, m, "web__echo", `{"text": "still"}`); r.Text != "echo: still" {
		t.Errorf("echo after a timeout: %+v", r)
	}
	if n := refused.Load(); n != 0 {
		t.Errorf("the server refused %d requests", n)
	}
	// The server restarts and forgets the session: the session ends, and
	// the next call starts another.
	restart()
	callErr(t, m, "web__echo", `{"text": "anyone?"}`, ErrUnavailable)
	if r := call(t, m, "web__echo", `{"text": "new session"}`); r.Text != "echo: new session" {
		t.Errorf("echo in a new session: %+v", r)
	}
	m.Close()
	closeSessions()
	check()

	// A token the server refuses; a variable that is not set.
	env["HIVE_TEST_TOKEN"] = "wrong-0123456789"
	m = newManager(t, "web", cfg, Options{Getenv: getenv})
	if err := m.Start(context.Background()); !errors.Is(err, ErrUnavailable) || refused.Load() == 0 {
		t.Errorf("start with a wrong token: %v", err)
	} else {
		t.Log(err)
	}
	delete(env, "HIVE_TEST_TEAM")
	m = newManager(t, "web", cfg, Options{Getenv: getenv})
	err := m.Start(context.Background())
	if !errors.Is(err, ErrUnavailable) || !strings.Contains(err.Error(), "headers_env names HIVE_TEST_TEAM for header X-Hive-Team, and it is not set") {
		t.Errorf("start without a variable: %v", err)
	}
}

// TestHeaderTransport: the headers go to the server's own origin only, so
// a redirect elsewhere carries no secret.
func TestHeaderTransport(t *testing.T) {
	var got []string
	base := roundTripFunc(func(r *http.Request) (*http.Response, error) {
		got = append(got, r.URL.Host+" "+r.Header.Get("Authorization"))
		return &http.Response{StatusCode: 204, Body: http.NoBody, Request: r}, nil
	})
	tr := &headerTransport{base: base, scheme: "https", host: "mcp.example", header: http.Header{"Authorization": {"Bearer s3cret"}}}
	for _, u := range []string{"https://mcp.example/mcp", "https://elsewhere.example/mcp", "http://mcp.example/mcp"} {
		req, _ := http.NewRequest("POST", u, nil)
		if _, err := tr.RoundTrip(req); err != nil {
			t.Fatal(err)
		}
		if req.Header.Get("Authorization") != "" {
			t.Error("the caller's request was changed")
		}
	}
	if want := []string{"mcp.example Bearer s3cret", "elsewhere.example ", "mcp.example "}; strings.Join(got, "|") != strings.Join(want, "|") {
		t.Errorf("sent %q, want %q", got, want)
	}
}

type roundTripFunc func(*http.Request) (*http.Response, error)

func (f roundTripFunc) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }
