package swarm

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hive-swarm/hive/internal/config"
	"github.com/hive-swarm/hive/internal/journal"
	"github.com/hive-swarm/hive/internal/llm"
	"github.com/hive-swarm/hive/internal/llm/llmtest"
	"github.com/hive-swarm/hive/internal/provider"
)

// harness is an engine over a temporary journal, whose models are served
// by one local OpenAI-compatible llmtest server.
type harness struct {
	t testing.TB
	// configure, when set, changes the models' configuration.
	configure func(*config.Config)
	srv       *llmtest.Server
	store     *journal.Store
	reg       *provider.Registry
	engine    *Engine
	dbPath    string
}

// testConfig names three models on the server: "lead", "cheap", "strong",
// priced at $1/$2, $0.10/$0.20 and $1/$2 per million tokens.
func testConfig(baseURL string) *config.Config {
	f := func(v float64) *float64 { return &v }
	c := config.Default()
	for name, p := range map[string][2]float64{"lead": {1, 2}, "cheap": {0.1, 0.2}, "strong": {1, 2}} {
		c.Models[name] = &config.Model{Name: name, Provider: "openai", ID: name, BaseURL: baseURL, Price: &config.Price{Input: f(p[0]), Output: f(p[1])}}
	}
	return c
}

func newHarness(t *testing.T, h llmtest.Handler, opts Options) *harness {
	return newHarnessWith(t, h, opts, nil)
}

// newHarnessWith is newHarness with configure applied to the models'
// configuration.
func newHarnessWith(t *testing.T, h llmtest.Handler, opts Options, configure func(*config.Config)) *harness {
	t.Helper()
	return newHarnessOn(t, llmtest.NewOpenAI(h), opts, configure)
}

// newHarnessOn is newHarnessWith on a server of any protocol.
func newHarnessOn(t testing.TB, srv *llmtest.Server, opts Options, configure func(*config.Config)) *harness {
	t.Helper()
	t.Cleanup(srv.Close)
	hs := &harness{t: t, srv: srv, dbPath: filepath.Join(t.TempDir(), "hive.db"), configure: configure}
	hs.open(opts)
	return hs
}

func testLogger(t testing.TB) *slog.Logger {
	return slog.New(slog.NewTextHandler(tWriter{t}, &slog.HandlerOptions{Level: slog.LevelWarn}))
}

type tWriter struct{ t testing.TB }

func (w tWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimSpace(string(p)))
	return len(p), nil
}

func (hs *harness) open(opts Options) {
	t := hs.t
	ctx := context.Background()
	store, err := journal.Open(ctx, hs.dbPath, testLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	hs.store = store
	cfg := testConfig(hs.srv.URL + "/v1")
	if hs.configure != nil {
		hs.configure(cfg)
	}
	hs.reg = provider.NewRegistry(cfg, func(string) string { return "" }, testLogger(t))
	e, err := New(ctx, store, hs.reg, testLogger(t), opts)
	if err != nil {
		t.Fatal(err)
	}
	hs.engine = e
	t.Cleanup(hs.close)
}

func (hs *harness) close() {
	if hs.engine != nil {
		hs.engine.Close(context.Background())
		hs.engine = nil
	}
	if hs.store != nil {
		hs.store.Close()
		hs.store = nil
	}
}

func (hs *harness) run(spec Spec) Result {
	hs.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	if spec.Lead == "" {
		spec.Lead = "lead"
	}
	if spec.Tiers == nil {
		spec.Tiers = []string{"cheap", "strong"}
	}
	id, err := hs.engine.Start(ctx, spec)
	if err != nil {
		hs.t.Fatal(err)
	}
	res, err := hs.engine.Wait(ctx, id)
	if err != nil {
		hs.t.Fatal(err)
	}
	return res
}

// worker returns the worker node of a run of one worker.
func (hs *harness) worker(runID string) Node {
	hs.t.Helper()
	var w []Node
	for _, n := range hs.nodes(runID) {
		if n.Role == RoleWorker {
			w = append(w, n)
		}
	}
	if len(w) != 1 {
		hs.t.Fatalf("run %s has %d workers, want 1", runID, len(w))
	}
	return w[0]
}

func (hs *harness) nodes(runID string) []Node {
	hs.t.Helper()
	raw, err := hs.store.Nodes(context.Background(), runID)
	if err != nil {
		hs.t.Fatal(err)
	}
	out := make([]Node, len(raw))
	for i, r := range raw {
		if err := json.Unmarshal(r, &out[i]); err != nil {
			hs.t.Fatal(err)
		}
	}
	return out
}

// Scripting helpers.

func isLead(c *llmtest.Call) bool { return strings.Contains(c.System, "lead of Hive") }

// toolCall scripts one tool call with args marshalled to JSON.
func toolCall(name string, args any) llmtest.ToolCall {
	b, _ := json.Marshal(args)
	return llmtest.ToolCall{Name: name, Input: string(b)}
}

func tasks(n int, prefix string) []TaskSpec {
	out := make([]TaskSpec, n)
	for i := range out {
		out[i] = TaskSpec{Name: fmt.Sprintf("%s-%d", prefix, i), Instructions: fmt.Sprintf("Say the number %s-%d.", prefix, i)}
	}
	return out
}

// taskName returns the task name in a worker's first prompt.
func taskName(c *llmtest.Call) string {
	for _, m := range c.Messages {
		if m.Role == llm.RoleUser {
			s := m.Text()
			if i := strings.Index(s, "Task \""); i >= 0 {
				s = s[i+6:]
				if j := strings.Index(s, "\""); j >= 0 {
					return s[:j]
				}
			}
		}
	}
	return ""
}

// reports parses the JSON reports in the last tool result.
func reports(c *llmtest.Call) []taskResult {
	rs := c.ToolResults()
	if len(rs) == 0 {
		return nil
	}
	s := rs[len(rs)-1].Content
	if i := strings.Index(s, "\nstill running"); i >= 0 {
		s = s[:i]
	}
	var out []taskResult
	json.Unmarshal([]byte(s), &out)
	return out
}

func containsResult(parts []llm.Part, s string) bool {
	for _, p := range parts {
		if r, ok := p.(llm.ToolResult); ok && strings.Contains(r.Content, s) {
			return true
		}
	}
	return false
}

func testLoggerB(b *testing.B) *slog.Logger {
	return slog.New(slog.NewTextHandler(io.Discard, nil))
}
