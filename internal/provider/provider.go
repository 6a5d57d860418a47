// Package provider turns configured models into callable ones: each
// [config.Model] becomes an [llm.Model] over its vendor's SDK, admitted
// through the process-wide limiter of package limit, with its price.
//
// A [Registry] is what the engine, the CLI and the server hold: one entry a
// model name, opened on first use, so every caller in the process shares a
// model's concurrency, rate limits and retry-after pauses.
package provider

import (
	"fmt"
	"log/slog"
	"net/http"
	"sync"

	"github.com/hive-swarm/hive/internal/config"
	"github.com/hive-swarm/hive/internal/hedge"
	"github.com/hive-swarm/hive/internal/limit"
	"github.com/hive-swarm/hive/internal/llm"
	"github.com/hive-swarm/hive/internal/llm/anthropic"
	"github.com/hive-swarm/hive/internal/llm/openai"
	"github.com/hive-swarm/hive/internal/price"
)

// A Model is an opened model: the client, its limiter and its price.
type Model struct {
	Name   string // the name callers use ("haiku", "openai:gpt-4o-mini")
	ID     string // the provider's model id
	Config *config.Model
	// Client calls the provider directly; use Admitted for calls that go
	// through the limiter.
	Client  llm.Model
	Limiter *limit.Limiter
	// Price is the model's price; PriceKnown is false when neither the
	// table nor the config has one (its cost must be shown as unknown).
	Price      price.Price
	PriceKnown bool
	// Plain marks a model that answers in plain text and calls no tools
	// (recorded replays, base completion models): a worker on it sends no
	// tools and takes its answer as the report.
	Plain bool
	// Latency times the calls of a configured model (its Client is
	// wrapped to feed it); Hedge, when set, says when a slow call gets a
	// second copy.
	Latency *hedge.Tracker
	Hedge   *hedge.Policy
	// Batch sends requests through the provider's batch API; nil when
	// the provider has none.
	Batch llm.Batcher
}

// Admitted returns the model admitted through its limiter at priority p.
func (m *Model) Admitted(p limit.Priority) llm.Model { return m.Limiter.Wrap(m.Client, p) }

// BatchCost returns the cost of u through the batch API, and false when
// the price is unknown.
func (m *Model) BatchCost(u llm.Usage) (price.Amount, bool) {
	if !m.PriceKnown {
		return 0, false
	}
	return m.Price.BatchCost(u), true
}

// Cost returns the cost of u, and false when the price is unknown.
func (m *Model) Cost(u llm.Usage) (price.Amount, bool) {
	if !m.PriceKnown {
		return 0, false
	}
	return m.Price.Cost(u), true
}

// Registry opens models by name and keeps them for the process.
type Registry struct {
	cfg    *config.Config
	getenv func(string) string
	log    *slog.Logger
	limits *limit.Set
	// HTTPClient, when set, is used by every client (tests).
	HTTPClient *http.Client
	// Extra holds models that are not built from config (recorded replays,
	// test doubles); they take precedence over configured names.
	extra map[string]*Model

	mu     sync.Mutex
	models map[string]*Model // guarded by mu
}

// NewRegistry returns a registry over cfg, reading keys with getenv.
func NewRegistry(cfg *config.Config, getenv func(string) string, log *slog.Logger) *Registry {
	return &Registry{cfg: cfg, getenv: getenv, log: log, limits: limit.NewSet(log), models: map[string]*Model{}, HTTPClient: newHTTPClient()}
}

// newHTTPClient returns the client every model of a registry shares: a
// swarm keeps hundreds of calls in flight to one host, and the default
// transport keeps only two idle connections a host, so it would dial a
// new connection for most calls.
func newHTTPClient() *http.Client {
	t := http.DefaultTransport.(*http.Transport).Clone()
	t.MaxIdleConns = 0 // no limit in all
	t.MaxIdleConnsPerHost = 1024
	return &http.Client{Transport: t}
}

// Add registers a model built elsewhere (a replay of recorded answers, for
// instance) under name, admitted through its own limiter.
func (r *Registry) Add(name string, client llm.Model, p price.Price, known bool, lc limit.Config) *Model {
	m := &Model{Name: name, ID: name, Client: client, Limiter: r.limits.Get(name, lc), Price: p, PriceKnown: known}
	r.mu.Lock()
	r.models[name] = m
	r.mu.Unlock()
	return m
}

// MaxModels bounds the models a registry opens. Names of the form
// provider:id open a model for any id, each with a client and a limiter
// kept for the life of the process: without a bound, a client of hive
// serve could grow it with every request.
const MaxModels = 1024

// Get opens the model called name.
func (r *Registry) Get(name string) (*Model, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if m, ok := r.models[name]; ok {
		return m, nil
	}
	mc, err := r.cfg.Model(name, r.getenv)
	if err != nil {
		return nil, err
	}
	if len(r.models) >= MaxModels {
		return nil, fmt.Errorf("model %s: this process already uses %d models, the most it opens; name models in hive.toml rather than making up provider:id names", name, MaxModels)
	}
	key, err := mc.APIKey(r.getenv)
	if err != nil {
		return nil, err
	}
	var client llm.Model
	switch mc.Provider {
	case config.ProviderAnthropic:
		client = anthropic.New(anthropic.Config{Model: mc.ID, BaseURL: mc.BaseURL, APIKey: key, HTTPClient: r.HTTPClient, MaxTokens: mc.MaxTokens})
	case config.ProviderOpenAI:
		client = openai.New(openai.Config{Model: mc.ID, BaseURL: mc.BaseURL, APIKey: key, HTTPClient: r.HTTPClient, MaxTokens: mc.MaxTokens, Dialect: mc.Dialect})
	default:
		return nil, fmt.Errorf("model %s: unknown provider %q", name, mc.Provider)
	}
	p, known, err := PriceOf(mc)
	if err != nil {
		return nil, err
	}
	lat := new(hedge.Tracker)
	lc := LimitConfig(mc.Limits)
	lc.CacheReadsFree = mc.Provider == config.ProviderAnthropic
	m := &Model{Name: name, ID: mc.ID, Config: mc, Client: hedge.Timed(client, lat), Latency: lat, Limiter: r.limits.Get(name, lc), Price: p, PriceKnown: known}
	if b, ok := client.(llm.Batcher); ok && mc.HasBatchAPI() {
		m.Batch = b
	}
	if m.Hedge, err = HedgePolicy(mc); err != nil {
		return nil, err
	}
	r.models[name] = m
	return m, nil
}

// HedgePolicy returns the hedge policy of mc's [models.NAME.hedge]
// table, nil when it has none.
func HedgePolicy(mc *config.Model) (*hedge.Policy, error) {
	h := mc.Hedge
	if h == nil {
		return nil, nil
	}
	pol, err := hedge.Parse(h.After)
	if err != nil {
		return nil, fmt.Errorf("model %s: %w", mc.Name, err)
	}
	pol.To, pol.MinSamples, pol.MaxShare = h.To, h.MinSamples, h.MaxShare
	return &pol, nil
}

// LimitConfig converts configured limits to the limiter's. A configured
// concurrency is trusted from the start (the limiter still cuts it on 429s
// and grows it back); without one the limiter starts low and probes.
func LimitConfig(l config.Limits) limit.Config {
	return limit.Config{MaxConcurrency: l.Concurrency, InitialConcurrency: l.Concurrency, RPM: l.RPM, TPM: l.TPM, MaxAttempts: l.MaxAttempts}
}
