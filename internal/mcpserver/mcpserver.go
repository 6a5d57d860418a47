// Package mcpserver serves Hive over the Model Context Protocol, so that
// any MCP client (Claude Code, Claude Desktop, Cursor, an agent on an MCP
// SDK) can hand a job to a swarm. It offers three tools:
//
//   - run_swarm starts a run of a configured swarm on a task and, unless
//     told not to wait, answers with the run's answer, status, cost,
//     tokens and id, sending progress notifications while the tree grows;
//   - run_status reads a run back: its status, spend and tree;
//   - cancel_run stops a run.
//
// hive mcp serves them over stdio ([Server.Serve]), hive serve over
// streamable HTTP at /mcp ([Server.Handler]) behind its token.
//
// A tool's arguments are chosen by the client's model, so they are
// checked as strictly as the HTTP API checks a request body, and more:
// a run is planned by the same code as POST /v1/runs (a [Planner]); the
// swarm must be "hive" or a swarms.NAME table of hive.toml; the models it
// names must be ones hive.toml names; the budget may lower the swarm's
// configured budget, never raise it; the task is bounded ([Server.MaxTask]).
// A refusal is a tool error (isError) that says what to change, so that
// the calling model can correct itself; only a malformed request is a
// protocol error.
//
// A run lives as long as the call that waits for it: when the caller
// cancels the call or hangs up (stdin closed, HTTP request ended), the
// run is cancelled, since nobody is left to read its answer. When Hive
// itself stops ([Server.Serve]'s context ends) the run is left
// unfinished, to resume like any run of a stopped process. A run started
// with wait false outlives its call.
//
// Nothing a call starts outlives it: its goroutines end before it
// returns, and Serve returns only after its session's calls have.
package mcpserver

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"slices"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/hive-swarm/hive/internal/config"
	"github.com/hive-swarm/hive/internal/swarm"
)

// DefaultSwarm names the swarm of hive.toml's defaults table, as the model
// "hive" does for POST /v1/chat/completions.
const DefaultSwarm = "hive"

// DefaultMaxTask is the default of [Server.MaxTask].
const DefaultMaxTask = 256 << 10

// Request is what run_swarm asks for, for a [Planner] to plan. Empty
// fields keep what the swarm is configured with.
type Request struct {
	Task  string
	Swarm string // DefaultSwarm or the NAME of a swarms.NAME table
	Lead  string
	Tiers []string
	// BudgetUSD is a decimal number of dollars ("0.5"); "0" is no dollar
	// budget.
	BudgetUSD  string
	MaxWorkers int
	// Workspace is an absolute directory under hive.toml's [workspace]
	// roots; empty keeps the swarm's.
	Workspace string
}

// A Planner turns a request into the spec of a run, merged over the
// swarm's configuration and checked as the HTTP API checks a request
// (package server's MCPPlanner). An error says what is wrong with the
// request.
type Planner interface {
	Plan(req Request) (swarm.Spec, error)
}

// Server serves Hive's tools to MCP clients. Its exported fields are
// optional; set them before serving.
type Server struct {
	engine *swarm.Engine
	cfg    *config.Config
	plan   Planner
	log    *slog.Logger
	mcp    *mcp.Server
	models []string // the model names hive.toml names, sorted
	// runSwarmArgs are run_swarm's argument names, sorted.
	runSwarmArgs []string

	// roots are the directories under which a caller may name a run's
	// workspace (cfg's [workspace] roots); none may be named when empty.
	roots []string

	// MaxTask bounds a task's bytes. Default [DefaultMaxTask].
	MaxTask int
	// ProgressInterval is the least time between two progress
	// notifications of a call. Default 250 ms.
	ProgressInterval time.Duration
	// Heartbeat is how long a call that waits goes without a progress
	// notification before it sends one that says the run is still
	// working, so that a client which resets its timeout on progress
	// waits on. Default 15 s.
	Heartbeat time.Duration
}

// New returns a server that starts runs on engine, planned by plan over
// cfg (the configuration engine's models come from).
func New(engine *swarm.Engine, cfg *config.Config, plan Planner, log *slog.Logger) *Server {
	s := &Server{engine: engine, cfg: cfg, plan: plan, log: log, models: configuredModels(cfg), roots: cfg.Workspace.Roots,
		MaxTask: DefaultMaxTask, ProgressInterval: 250 * time.Millisecond, Heartbeat: 15 * time.Second}
	s.mcp = mcp.NewServer(&mcp.Implementation{Name: "hive", Title: "Hive", Version: "1"}, &mcp.ServerOptions{
		Logger:       log,
		Instructions: instructions,
	})
	s.addTools()
	return s
}

const instructions = `Hive runs swarms of language models: a lead model splits a job, many cheaper worker models do the parts in parallel, and every result is verified, priced and journaled. Use run_swarm to hand Hive a whole job that benefits from being split (reviewing many files, extracting fields from many documents, comparing many options); it waits for the answer by default and reports progress. run_status shows a run's tree and spend; cancel_run stops a run.`

// configuredModels lists the model names cfg names: its models.NAME
// tables and the leads and tiers of its defaults and swarms.
func configuredModels(cfg *config.Config) []string {
	names := cfg.ModelNames()
	names = append(names, cfg.Defaults.Lead)
	names = append(names, cfg.Defaults.Tiers...)
	for _, sw := range cfg.Swarms {
		if sw != nil {
			names = append(names, sw.Lead)
			names = append(names, sw.Tiers...)
		}
	}
	names = slices.DeleteFunc(names, func(n string) bool { return n == "" })
	slices.Sort(names)
	return slices.Compact(names)
}

// swarmNames lists the swarms a caller may name.
func (s *Server) swarmNames() []string {
	names := []string{DefaultSwarm}
	for name, sw := range s.cfg.Swarms {
		if sw != nil && name != DefaultSwarm {
			names = append(names, name)
		}
	}
	slices.Sort(names[1:])
	return names
}

// stopKey and hangupKey key contexts that a call's context carries (the
// SDK hands every call the values of the context its session was
// connected with): stopKey's ends when Hive stops, hangupKey's when the
// caller has gone.
type (
	stopKey   struct{}
	hangupKey struct{}
)

// Serve serves one session over t (hive mcp: stdio) until the client
// hangs up (a clean end of input returns nil) or ctx ends. When ctx ends,
// the runs its calls wait for are left unfinished, resumable, rather than
// cancelled. Serve returns after the session's calls have.
func (s *Server) Serve(ctx context.Context, t mcp.Transport) error {
	ss, err := s.mcp.Connect(context.WithValue(ctx, stopKey{}, ctx), t, nil)
	if err != nil {
		return fmt.Errorf("start the MCP session: %w", err)
	}
	ended := make(chan error, 1)
	go func() { ended <- ss.Wait() }()
	select {
	case err = <-ended:
	case <-ctx.Done():
		// The calls in flight see ctx end and return; Close waits for
		// them, then closes the transport.
		ss.Close()
		err = <-ended
	}
	if err == nil || errors.Is(err, io.EOF) || ctx.Err() != nil {
		return nil
	}
	return fmt.Errorf("MCP session: %w", err)
}

// Handler serves the tools over streamable HTTP (hive serve mounts it at
// /mcp, behind its token). Every request is a session of its own (the
// SDK's stateless mode), so nothing of a caller stays on the server
// between requests, and a call ends with the HTTP request that carries
// it: a request that ends before the run it waits for cancels the run.
func (s *Server) Handler() http.Handler {
	h := mcp.NewStreamableHTTPHandler(func(*http.Request) *mcp.Server { return s.mcp }, &mcp.StreamableHTTPOptions{
		Stateless:                    true,
		PropagateRequestCancellation: true,
		Logger:                       s.log,
	})
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), hangupKey{}, r.Context())))
	})
}
