package telemetry

import (
	"errors"
	"net/http/httptest"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/hive-swarm/hive/internal/llm"
	"github.com/hive-swarm/hive/internal/price"
)

// TestMetricsCalls: each call is counted under the model that answered
// it, a hedge's losing copy under its own model, with the tokens and
// dollars each was billed; a refused call counts as such and bills
// nothing; a batched call is left out of the latencies.
func TestMetricsCalls(t *testing.T) {
	m := NewMetrics()
	tel := New(nil, Options{Metrics: m})
	call := func(model string, r CallResult) {
		_, s := tel.StartCall(t.Context(), Call{Model: model})
		s.EndCall(r)
	}
	call("a", CallResult{Usage: llm.Usage{InputTokens: 10, OutputTokens: 2, CacheReadTokens: 5}, Cost: price.Dollar, RateLimited: 3, Waited: time.Hour})
	// Hedged to b, whose copy answered first; a's copy is billed too.
	call("a", CallResult{Usage: llm.Usage{InputTokens: 7, OutputTokens: 1}, Cost: 2 * price.Dollar,
		Hedge: &Hedge{Model: "b", Won: true, Usage: llm.Usage{InputTokens: 7}, Cost: price.Dollar / 2}})
	call("a", CallResult{Refused: true})
	call("a", CallResult{Err: &llm.Error{Kind: llm.KindOverloaded}})
	call("a", CallResult{Err: errors.New("boom")})
	call("b", CallResult{Batch: true, Usage: llm.Usage{OutputTokens: 4}, Cost: price.Dollar})

	rec := httptest.NewRecorder()
	m.Handler().ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(rec.Body)
	if err != nil {
		t.Fatal(err)
	}
	get := func(name string, labels ...string) float64 {
		for _, mt := range fams[name].GetMetric() {
			have := map[string]string{}
			for _, l := range mt.GetLabel() {
				have[l.GetName()] = l.GetValue()
			}
			ok := true
			for i := 0; i < len(labels); i += 2 {
				ok = ok && have[labels[i]] == labels[i+1]
			}
			if ok {
				return value(mt)
			}
		}
		return -1
	}
	for _, w := range []struct {
		name   string
		labels []string
		want   float64
	}{
		{"hive_model_calls_total", []string{"model", "a", "outcome", "ok"}, 1},
		{"hive_model_calls_total", []string{"model", "a", "outcome", "hedge_lost"}, 1},
		{"hive_model_calls_total", []string{"model", "b", "outcome", "ok"}, 2},
		{"hive_model_calls_total", []string{"model", "a", "outcome", "budget_exhausted"}, 1},
		{"hive_model_calls_total", []string{"model", "a", "outcome", "overloaded"}, 1},
		{"hive_model_calls_total", []string{"model", "a", "outcome", "error"}, 1},
		{"hive_model_tokens_total", []string{"model", "a", "kind", "input"}, 17},
		{"hive_model_tokens_total", []string{"model", "a", "kind", "cache_read"}, 5},
		{"hive_model_tokens_total", []string{"model", "a", "kind", "output"}, 2},
		{"hive_model_tokens_total", []string{"model", "b", "kind", "input"}, 7},
		{"hive_model_tokens_total", []string{"model", "b", "kind", "output"}, 5},
		{"hive_model_cost_dollars_total", []string{"model", "a"}, 1.5},
		{"hive_model_cost_dollars_total", []string{"model", "b"}, 3},
		{"hive_model_rate_limited_total", []string{"model", "a"}, 3},
		{"hive_model_call_duration_seconds", []string{"model", "a"}, 1},
		{"hive_model_call_duration_seconds", []string{"model", "b"}, 1},
	} {
		if got := get(w.name, w.labels...); got != w.want {
			t.Errorf("%s%v = %v, want %v", w.name, w.labels, got, w.want)
		}
	}
	// The hour a waited in the limiter is not its latency.
	for _, mt := range fams["hive_model_call_duration_seconds"].GetMetric() {
		if s := mt.GetHistogram().GetSampleSum(); s > 60 {
			t.Errorf("latency sum %v s", s)
		}
	}
}

func value(m *dto.Metric) float64 {
	switch {
	case m.Counter != nil:
		return m.GetCounter().GetValue()
	case m.Gauge != nil:
		return m.GetGauge().GetValue()
	case m.Histogram != nil:
		return float64(m.GetHistogram().GetSampleCount())
	}
	return -1
}
