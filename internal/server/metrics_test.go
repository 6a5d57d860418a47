package server

import (
	"io"
	"math"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/hive-swarm/hive/internal/llm"
	"github.com/hive-swarm/hive/internal/llm/llmtest"
	"github.com/hive-swarm/hive/internal/swarm"
	"github.com/hive-swarm/hive/internal/telemetry"
)

// scrape GETs /metrics with token and parses the answer.
func (e *testEnv) scrape(token string) (int, map[string]*dto.MetricFamily) {
	e.t.Helper()
	req, _ := http.NewRequest("GET", e.srv.URL+"/metrics", nil)
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := e.srv.Client().Do(req)
	if err != nil {
		e.t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		io.Copy(io.Discard, resp.Body)
		return resp.StatusCode, nil
	}
	if ct := resp.Header.Get("Content-Type"); !strings.HasPrefix(ct, "text/plain") {
		e.t.Errorf("Content-Type %q", ct)
	}
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(resp.Body)
	if err != nil {
		e.t.Fatal(err)
	}
	return resp.StatusCode, fams
}

// value returns the value of the series of family name whose labels are
// labels (name=value pairs): a counter's or gauge's value, a histogram's
// count; NaN when there is none.
func value(fams map[string]*dto.MetricFamily, name string, labels ...string) float64 {
	f := fams[name]
	if f == nil {
		return math.NaN()
	}
next:
	for _, m := range f.GetMetric() {
		have := map[string]string{}
		for _, l := range m.GetLabel() {
			have[l.GetName()] = l.GetValue()
		}
		for i := 0; i+1 < len(labels); i += 2 {
			if have[labels[i]] != labels[i+1] {
				continue next
			}
		}
		switch {
		case m.Counter != nil:
			return m.GetCounter().GetValue()
		case m.Gauge != nil:
			return m.GetGauge().GetValue()
		case m.Histogram != nil:
			return float64(m.GetHistogram().GetSampleCount())
		}
	}
	return math.NaN()
}

// TestMetrics runs a swarm through the API, with a worker call answered
// 429 once, and scrapes /metrics: 401 without the token; with it, the
// workers in flight while they work, and after the run the calls,
// tokens, dollars, latencies and 429s that the model server saw.
func TestMetrics(t *testing.T) {
	release := make(chan struct{})
	var mu sync.Mutex
	usage := map[string]llm.Usage{} // by model
	throttled := false
	h := func(c *llmtest.Call) llmtest.Reply {
		sc := &script{n: 2}
		if !isLead(c) {
			mu.Lock()
			first := !throttled
			throttled = true
			mu.Unlock()
			if first {
				return llmtest.Reply{Status: 429, ErrorMessage: "slow down"}
			}
			<-release // both workers hold their slots until the test has looked
		}
		rep := sc.handle(c)
		u := llm.Usage{InputTokens: int64(20 + c.N), OutputTokens: int64(c.N)}
		rep.Usage = &u
		mu.Lock()
		usage[c.Model] = usage[c.Model].Add(u)
		mu.Unlock()
		return rep
	}
	m := telemetry.NewMetrics()
	e := newTestEnvWith(t, h, swarm.Options{Telemetry: telemetry.New(nil, telemetry.Options{Metrics: m})}, m.Handler())

	if status, _ := e.scrape(""); status != http.StatusUnauthorized {
		t.Errorf("without the token: %d", status)
	}
	if status, _ := e.scrape("wrong" + testToken); status != http.StatusUnauthorized {
		t.Errorf("with a wrong token: %d", status)
	}
	if resp := e.do("POST", "/metrics", testToken, nil, nil); resp.StatusCode != http.StatusMethodNotAllowed {
		t.Errorf("POST /metrics: %d", resp.StatusCode)
	}

	id := e.startRun("count things")
	deadline := time.Now().Add(30 * time.Second)
	for {
		_, fams := e.scrape(testToken)
		if value(fams, "hive_workers_in_flight") == 2 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("workers in flight: %v, want 2", value(fams, "hive_workers_in_flight"))
		}
		time.Sleep(10 * time.Millisecond)
	}
	close(release)
	e.waitStatus(id, swarm.StatusDone)

	status, fams := e.scrape(testToken)
	if status != http.StatusOK {
		t.Fatalf("with the token: %d", status)
	}
	prices := map[string][2]float64{"lead": {1, 2}, "cheap": {0.1, 0.2}}
	type series struct {
		name   string
		labels []string
		value  float64
	}
	want := []series{
		{"hive_workers_in_flight", nil, 0},
		{"hive_model_calls_total", []string{"model", "lead", "outcome", "ok"}, 2},
		{"hive_model_calls_total", []string{"model", "cheap", "outcome", "ok"}, 2},
		{"hive_model_rate_limited_total", []string{"model", "cheap"}, 1},
		{"hive_model_call_duration_seconds", []string{"model", "lead"}, 2},
		{"hive_model_call_duration_seconds", []string{"model", "cheap"}, 2},
	}
	for model, u := range usage {
		dollars := (float64(u.InputTokens)*prices[model][0] + float64(u.OutputTokens)*prices[model][1]) / 1e6
		want = append(want,
			series{"hive_model_tokens_total", []string{"model", model, "kind", "input"}, float64(u.InputTokens)},
			series{"hive_model_tokens_total", []string{"model", model, "kind", "output"}, float64(u.OutputTokens)},
			series{"hive_model_cost_dollars_total", []string{"model", model}, dollars})
	}
	for _, w := range want {
		if got := value(fams, w.name, w.labels...); math.Abs(got-w.value) > 1e-12 || math.IsNaN(got) {
			t.Errorf("%s%v = %v, want %v", w.name, w.labels, got, w.value)
		}
	}
	if len(usage) != 2 {
		t.Errorf("models called: %v", usage)
	}
	// The Go runtime's and the process's, for the usual dashboards.
	for _, name := range []string{"go_goroutines", "process_resident_memory_bytes"} {
		if fams[name] == nil {
			t.Errorf("no %s", name)
		}
	}
	// Nothing secret in the labels or the text.
	for name, f := range fams {
		for _, m := range f.GetMetric() {
			for _, l := range m.GetLabel() {
				if strings.Contains(l.GetValue(), testToken) {
					t.Errorf("%s: a label holds the token", name)
				}
			}
		}
	}
}
