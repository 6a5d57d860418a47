package telemetry

import (
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/hive-swarm/hive/internal/llm"
)

// Metrics are the Prometheus metrics of a process's model calls and
// workers, in a registry of their own (with the Go runtime's and the
// process's). Models are labelled by Hive's names for them (hive.toml's
// tables, or provider:id), which the process bounds
// (provider.MaxModels). A nil *Metrics counts nothing.
//
//	hive_model_calls_total{model,outcome}      calls sent; outcome ok, budget_exhausted, hedge_lost, or the error's kind (rate_limited, overloaded, transient, cancelled, …)
//	hive_model_tokens_total{model,kind}        tokens billed; kind input (uncached), output, cache_read, cache_write
//	hive_model_cost_dollars_total{model}       dollars billed, at the price Hive knows
//	hive_model_call_duration_seconds{model}    time to an answer, waits in Hive's own rate limiter left out (batched calls too)
//	hive_model_rate_limited_total{model}       429 answers, those of attempts sent again included
//	hive_workers_in_flight                     workers holding a slot (max_workers) now
type Metrics struct {
	reg         *prometheus.Registry
	calls       *prometheus.CounterVec
	tokens      *prometheus.CounterVec
	dollars     *prometheus.CounterVec
	latency     *prometheus.HistogramVec
	rateLimited *prometheus.CounterVec
	workers     prometheus.Gauge
}

// NewMetrics returns the metrics, registered in a new registry.
func NewMetrics() *Metrics {
	m := &Metrics{
		reg: prometheus.NewRegistry(),
		calls: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "hive_model_calls_total",
			Help: "Model calls, by model and outcome (ok, budget_exhausted, hedge_lost, or the kind of error)."}, []string{"model", "outcome"}),
		tokens: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "hive_model_tokens_total",
			Help: "Tokens billed, by model and kind (input: uncached input; output; cache_read; cache_write)."}, []string{"model", "kind"}),
		dollars: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "hive_model_cost_dollars_total",
			Help: "Dollars billed for model calls, by model."}, []string{"model"}),
		latency: prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "hive_model_call_duration_seconds",
			Help:    "Time from a model call's start to its answer, waits in Hive's rate limiter left out, by model.",
			Buckets: []float64{0.1, 0.25, 0.5, 1, 2.5, 5, 10, 20, 40, 80, 160, 320}}, []string{"model"}),
		rateLimited: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "hive_model_rate_limited_total",
			Help: "Rate-limited (429) answers, by model."}, []string{"model"}),
		workers: prometheus.NewGauge(prometheus.GaugeOpts{Name: "hive_workers_in_flight",
			Help: "Workers holding one of their run's worker slots now."}),
	}
	m.reg.MustRegister(m.calls, m.tokens, m.dollars, m.latency, m.rateLimited, m.workers,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m
}

// Handler serves the metrics in Prometheus's text format.
func (m *Metrics) Handler() http.Handler {
	return promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{})
}

// call counts one model call of model that took d.
func (m *Metrics) call(model string, r CallResult, d time.Duration) {
	if m == nil {
		return
	}
	if r.RateLimited > 0 {
		m.rateLimited.WithLabelValues(model).Add(float64(r.RateLimited))
	}
	if r.Refused {
		m.calls.WithLabelValues(model, "budget_exhausted").Inc()
		return
	}
	answered := model
	if h := r.Hedge; h != nil {
		lost := h.Model
		if h.Won {
			answered, lost = h.Model, model
		}
		m.calls.WithLabelValues(lost, "hedge_lost").Inc()
		m.bill(lost, h.Usage, h.Cost.Dollars())
	}
	m.calls.WithLabelValues(answered, outcome(r.Err)).Inc()
	m.bill(answered, r.Usage, r.Cost.Dollars())
	if r.Err == nil && !r.Batch { // a batch answers when the provider gets to it
		m.latency.WithLabelValues(answered).Observe(max(d-r.Waited, 0).Seconds())
	}
}

// bill counts the tokens and dollars of a call of model.
func (m *Metrics) bill(model string, u llm.Usage, dollars float64) {
	for _, k := range []struct {
		kind string
		n    int64
	}{{"input", u.InputTokens}, {"output", u.OutputTokens}, {"cache_read", u.CacheReadTokens}, {"cache_write", u.CacheWriteTokens}} {
		if k.n > 0 {
			m.tokens.WithLabelValues(model, k.kind).Add(float64(k.n))
		}
	}
	if dollars > 0 {
		m.dollars.WithLabelValues(model).Add(dollars)
	}
}

// WorkerStarted counts a worker that took a slot; WorkerDone one that
// gave it back.
func (t *Telemetry) WorkerStarted() {
	if t != nil && t.metrics != nil {
		t.metrics.workers.Inc()
	}
}

// WorkerDone: see WorkerStarted.
func (t *Telemetry) WorkerDone() {
	if t != nil && t.metrics != nil {
		t.metrics.workers.Dec()
	}
}
