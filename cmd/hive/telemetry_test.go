package main

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/hive-swarm/hive/internal/telemetry/otlptest"
)

// TestRunExportsTrace: hive run with OTEL_EXPORTER_OTLP_ENDPOINT sends the
// run's trace to the collector before it exits: one trace, the run at its
// root, a chat span for every call the model server answered.
func TestRunExportsTrace(t *testing.T) {
	w := newWorld(t)
	rcv := otlptest.NewReceiver()
	defer rcv.Close()
	t.Setenv("OTEL_EXPORTER_OTLP_ENDPOINT", rcv.URL) // the exporter reads the process's environment
	w.env = map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": rcv.URL}
	code, out, _ := w.hive("run", "--json", "count")
	if code != 0 {
		t.Fatalf("exit %d", code)
	}
	lines := strings.Split(strings.TrimSpace(out), "\n")
	var res resultJSON
	if err := json.Unmarshal([]byte(lines[len(lines)-1]), &res); err != nil {
		t.Fatal(err)
	}
	runID := res.ID
	spans := rcv.Spans()
	var roots, chats int
	for _, s := range spans {
		if s.ParentID == "" {
			roots++
			if s.Name != "invoke_workflow hive" || s.Str("hive.run.id") != runID || s.Resource["service.name"] != "hive" {
				t.Errorf("root %s: %v (run %s)", s.Name, s.Attrs, runID)
			}
		}
		if strings.HasPrefix(s.Name, "chat ") {
			chats++
		}
		if s.TraceID != spans[0].TraceID {
			t.Errorf("%s in another trace", s.Name)
		}
	}
	if roots != 1 || chats != len(w.srv.Calls()) || runID == "" {
		t.Errorf("%d roots, %d chat spans for %d calls, run %q", roots, chats, len(w.srv.Calls()), runID)
	}
}

// TestServeMetrics: hive serve answers GET /metrics with the token, in
// Prometheus's text format, and 401 without it.
func TestServeMetrics(t *testing.T) {
	w := newWorld(t)
	base, token, stop := w.serve(w.getenv)
	defer stop()
	if code, _ := get(t, "GET", base+"metrics", "", ""); code != 401 {
		t.Errorf("without the token: %d", code)
	}
	code, body := get(t, "POST", base+"v1/runs", token, `{"task":"count"}`)
	if code != 201 {
		t.Fatalf("POST /v1/runs: %d %s", code, body)
	}
	want := `hive_model_calls_total{model="lead",outcome="ok"} 2`
	deadline := time.Now().Add(20 * time.Second)
	for {
		code, body = get(t, "GET", base+"metrics", token, "")
		if code == 200 && strings.Contains(body, want) && strings.Contains(body, "hive_workers_in_flight 0") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("GET /metrics: %d, no %q in:\n%s", code, want, body)
		}
		time.Sleep(50 * time.Millisecond)
	}
	if strings.Contains(body, token) {
		t.Error("the metrics hold the token")
	}
}
