package mcp

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"os"
	"runtime"
	"strings"
	"testing"
	"time"

	sdk "github.com/modelcontextprotocol/go-sdk/mcp"
)

// tWriter sends the manager's log to the test's.
type tWriter struct{ t *testing.T }

func (w tWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

func testLog(t *testing.T) *slog.Logger {
	return slog.New(slog.NewTextHandler(tWriter{t}, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

// newManager returns a manager of one server called name, closed at the
// end of the test.
func newManager(t *testing.T, name string, cfg ServerConfig, opts Options) *Manager {
	t.Helper()
	m, err := New(map[string]*ServerConfig{name: &cfg}, testLog(t), opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Close() })
	return m
}

// memManager returns a manager of srv, reached over in-memory transports.
func memManager(t *testing.T, name string, srv *sdk.Server, cfg ServerConfig, opts Options) *Manager {
	t.Helper()
	cfg.Command = "in-memory" // never run
	m := newManager(t, name, cfg, opts)
	m.servers[name].transport = func() sdk.Transport {
		client, server := sdk.NewInMemoryTransports()
		if _, err := srv.Connect(context.Background(), server, nil); err != nil {
			t.Errorf("connect the server: %v", err)
		}
		return client
	}
	return m
}

// stdioConfig runs this test binary as a server of kind.
func stdioConfig(t *testing.T, kind string) ServerConfig {
	t.Helper()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	return ServerConfig{Command: exe, Allow: []string{"*"}, Set: map[string]string{
		serverEnv: kind,
		"GORACE":  "atexit_sleep_ms=0", // a race-detecting server would linger a second at exit
	}}
}

func start(t *testing.T, m *Manager) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	if err := m.Start(ctx); err != nil {
		t.Fatal(err)
	}
}

// call calls tool with args and fails the test on an error.
func call(t *testing.T, m *Manager, tool, args string) Result {
	t.Helper()
	r, err := m.Call(context.Background(), tool, json.RawMessage(args))
	if err != nil {
		t.Fatalf("%s %s: %v", tool, args, err)
	}
	return r
}

// callErr calls tool with args and returns its error, which must be kind.
func callErr(t *testing.T, m *Manager, tool, args string, kind error) error {
	t.Helper()
	r, err := m.Call(context.Background(), tool, json.RawMessage(args))
	if !errors.Is(err, kind) {
		t.Fatalf("%s %s: got %+v, %v; want an error that is %v", tool, args, r, err, kind)
	}
	t.Logf("%s: %v", tool, err)
	return err
}

func toolNames(m *Manager) []string {
	var names []string
	for _, tool := range m.Tools() {
		names = append(names, tool.Name)
	}
	return names
}

// goroutines returns a check that the goroutines running now are all
// that run (after a moment for those that are ending).
func goroutines(t *testing.T) func() {
	t.Helper()
	before := runtime.NumGoroutine()
	return func() {
		t.Helper()
		deadline := time.Now().Add(5 * time.Second)
		for runtime.NumGoroutine() > before {
			if time.Now().After(deadline) {
				buf := make([]byte, 1<<20)
				buf = buf[:runtime.Stack(buf, true)]
				t.Fatalf("%d goroutines, %d before:\n%s", runtime.NumGoroutine(), before, buf)
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
}
