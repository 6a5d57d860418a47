package main

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hive-swarm/hive/internal/server"
)

// syncBuffer is a bytes.Buffer safe for a command writing while a test
// reads.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

var serveURL = regexp.MustCompile(`(http://127\.0\.0\.1:\d+/)(\?token=([0-9a-f]+))?`)

// serve starts hive serve in-process and returns its base URL, the token
// it printed ("" when none) and a stop function returning the exit code.
func (w *world) serve(getenv func(string) string) (base, token string, stop func() int) {
	w.t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	var out, errb syncBuffer
	env := &Env{Stdin: strings.NewReader(""), Stdout: &out, Stderr: &errb, Getenv: getenv}
	done := make(chan int, 1)
	go func() { done <- Main(ctx, env, []string{"serve", "--addr", "127.0.0.1:0"}) }()
	stop = func() int {
		cancel()
		select {
		case code := <-done:
			w.t.Logf("hive serve → %d\n%s%s", code, out.String(), errb.String())
			return code
		case <-time.After(20 * time.Second):
			w.t.Fatal("hive serve did not stop within 20s")
			return -1
		}
	}
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) {
		if m := serveURL.FindStringSubmatch(out.String()); m != nil {
			return m[1], m[3], stop
		}
		select {
		case code := <-done:
			w.t.Fatalf("hive serve exited %d: %s%s", code, out.String(), errb.String())
		case <-time.After(20 * time.Millisecond):
		}
	}
	stop()
	w.t.Fatal("hive serve printed no URL within 20s")
	return
}

func get(t *testing.T, method, url, token, body string) (int, string) {
	t.Helper()
	req, _ := http.NewRequest(method, url, strings.NewReader(body))
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(data)
}

func TestServe(t *testing.T) {
	w := newWorld(t)
	base, token, stop := w.serve(w.getenv)
	if len(token) != 64 {
		t.Fatalf("first start printed token %q, want 64 hex digits", token)
	}
	path := filepath.Join(w.dir, ".config", "hive", "serve.token")
	if fi, err := os.Stat(path); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("token file: %v %v", fi, err)
	}
	if code, body := get(t, "GET", base+"healthz", "", ""); code != 200 || body != "ok" {
		t.Fatalf("healthz: %d %q", code, body)
	}
	if code, _ := get(t, "GET", base+"v1/runs", "", ""); code != 401 {
		t.Fatalf("no token: %d", code)
	}
	code, body := get(t, "POST", base+"v1/runs", token, `{"task":"count"}`)
	if code != 201 {
		t.Fatalf("POST /v1/runs: %d %s", code, body)
	}
	var created struct{ ID string }
	json.Unmarshal([]byte(body), &created)
	deadline := time.Now().Add(20 * time.Second)
	for {
		_, body := get(t, "GET", base+"v1/runs/"+created.ID, token, "")
		var v struct {
			Run struct{ Status, Answer string }
		}
		json.Unmarshal([]byte(body), &v)
		if v.Run.Status == "done" {
			if v.Run.Answer != "three reports" {
				t.Fatalf("answer %q", v.Run.Answer)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("run not done: %s", body)
		}
		time.Sleep(50 * time.Millisecond)
	}
	if code := stop(); code != 0 {
		t.Fatalf("exit %d", code)
	}

	// A second start reads the kept token and does not print it.
	base, printed, stop := w.serve(w.getenv)
	if printed != "" {
		t.Fatal("second start printed the token again")
	}
	if code, _ := get(t, "GET", base+"v1/runs", token, ""); code != 200 {
		t.Fatalf("kept token: %d", code)
	}
	stop()

	// The variable serve.token_env names wins.
	env := func(k string) string {
		if k == "HIVE_TOKEN" {
			return "from-the-environment"
		}
		return w.getenv(k)
	}
	base, _, stop = w.serve(env)
	if code, _ := get(t, "GET", base+"v1/runs", "from-the-environment", ""); code != 200 {
		t.Fatalf("HIVE_TOKEN: %d", code)
	}
	if code, _ := get(t, "GET", base+"v1/runs", token, ""); code != 401 {
		t.Fatalf("the file's token still works with HIVE_TOKEN set: %d", code)
	}
	stop()
}

func TestServeRefusesRemote(t *testing.T) {
	w := newWorld(t)
	for _, args := range [][]string{
		{"serve", "--addr", "0.0.0.0:0"},
		{"serve", "--addr", ":0"},
		{"serve", "--addr", "127.0.0.1:0", "--tls-cert", "x.pem"},
	} {
		code, _, stderr := w.hive(args...)
		if code != 2 {
			t.Errorf("%v: exit %d, want 2", args, code)
		}
		if args[2] != "127.0.0.1:0" && !strings.Contains(stderr, "--insecure-remote") {
			t.Errorf("%v: %q does not say how", args, stderr)
		}
	}
}

// TestServeLimits: the http.Server hive serve serves has the server's
// timeouts, a 401 closes its connection and a body must be JSON.
func TestServeLimits(t *testing.T) {
	got := make(chan *http.Server, 1)
	serving = func(hs *http.Server) { got <- hs }
	defer func() { serving = func(*http.Server) {} }()
	w := newWorld(t)
	base, token, stop := w.serve(w.getenv)
	defer stop()
	hs := <-got
	want := server.DefaultLimits()
	if hs.ReadHeaderTimeout != want.ReadHeaderTimeout || hs.ReadTimeout != want.ReadTimeout ||
		hs.WriteTimeout != want.WriteTimeout || hs.IdleTimeout != want.IdleTimeout {
		t.Errorf("timeouts: read header %v, read %v, write %v, idle %v; want %+v",
			hs.ReadHeaderTimeout, hs.ReadTimeout, hs.WriteTimeout, hs.IdleTimeout, want)
	}
	for _, d := range []time.Duration{hs.ReadHeaderTimeout, hs.ReadTimeout, hs.WriteTimeout, hs.IdleTimeout} {
		if d <= 0 {
			t.Errorf("a timeout is unset: %v", d)
		}
	}
	// A 401 closes its connection; a JSON body must say so.
	req, _ := http.NewRequest("GET", base+"v1/runs", nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 401 || !resp.Close {
		t.Errorf("no token: %d, Connection: close %v", resp.StatusCode, resp.Close)
	}
	req, _ = http.NewRequest("POST", base+"v1/runs", strings.NewReader(`{"task":"count"}`))
	req.Header.Set("Authorization", "Bearer "+token)
	req.Header.Set("Content-Type", "text/plain")
	resp, err = http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusUnsupportedMediaType {
		t.Errorf("text/plain body: %d, want 415", resp.StatusCode)
	}
}
