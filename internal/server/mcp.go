package server

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"time"

	"github.com/modelcontextprotocol/go-sdk/auth"

	"github.com/hive-swarm/hive/internal/config"
	"github.com/hive-swarm/hive/internal/mcpserver"
	"github.com/hive-swarm/hive/internal/swarm"
)

// /mcp serves Hive's MCP tools (package mcpserver) over streamable HTTP,
// for MCP clients: run_swarm, run_status, cancel_run.

// MCPPlanner returns the [mcpserver.Planner] of Hive's MCP tools over
// cfg: a run_swarm request is merged over the swarm it names and checked
// as POST /v1/runs merges and checks a body, so that the two cannot
// drift apart.
func MCPPlanner(cfg *config.Config) mcpserver.Planner { return mcpPlanner{cfg} }

type mcpPlanner struct{ cfg *config.Config }

func (p mcpPlanner) Plan(req mcpserver.Request) (swarm.Spec, error) {
	d, rr, ok := swarmDefaults(p.cfg, req.Swarm)
	if !ok {
		return swarm.Spec{}, fmt.Errorf("no swarm %q: use %q or a [swarms.NAME] of hive.toml", req.Swarm, DefaultSwarm)
	}
	rr.Task, rr.Lead, rr.Tiers, rr.MaxWorkers = req.Task, req.Lead, req.Tiers, req.MaxWorkers
	if req.Workspace != "" {
		rr.Workspace = req.Workspace
	}
	if req.BudgetUSD != "" {
		n := json.Number(req.BudgetUSD)
		rr.BudgetUSD = &n
	}
	return specFrom(p.cfg, d, rr)
}

// swarmDefaults returns the defaults of the swarm called name, hive.toml's
// defaults table under what its swarms.NAME table sets (none for
// [DefaultSwarm]), and the request its table makes (its workspace);
// false when there is no such swarm. It is the merge [Server.swarmSpec]
// makes for a chat completion's model.
func swarmDefaults(cfg *config.Config, name string) (config.Defaults, RunRequest, bool) {
	d := cfg.Defaults
	if name == DefaultSwarm {
		return d, RunRequest{}, true
	}
	sw := cfg.Swarms[name]
	if sw == nil {
		return d, RunRequest{}, false
	}
	if sw.Lead != "" {
		d.Lead = sw.Lead
	}
	if len(sw.Tiers) > 0 {
		d.Tiers = sw.Tiers
	}
	if sw.BudgetUSD != nil {
		d.BudgetUSD = *sw.BudgetUSD
	}
	if sw.BudgetTokens != 0 {
		d.BudgetTokens = sw.BudgetTokens
	}
	if sw.MaxWorkers != 0 {
		d.MaxWorkers = sw.MaxWorkers
	}
	if sw.MaxDepth != 0 {
		d.MaxDepth = sw.MaxDepth
	}
	return d, RunRequest{Workspace: sw.Workspace, Urgency: sw.Urgency, BatchTiers: sw.BatchTiers}, true
}

// mcpHandler serves /mcp. protect has checked the token and the
// same-origin rules; /mcp takes the token only as a bearer token, never
// as the page's cookie, so that no page, of this origin or another, can
// call the tools with a browser's credentials. A call may wait for its
// run much longer than the server's timeouts: its response is held to the
// rules of the event streams instead (each write within WriteTimeout;
// counted among the token's streams).
func (s *Server) mcpHandler() http.Handler {
	// The SDK's bearer middleware hands the tools who the caller is
	// (the token's name, as the TokenInfo's UserID): a token's runs are
	// its own there too.
	h := auth.RequireBearerToken(func(_ context.Context, tok string, _ *http.Request) (*auth.TokenInfo, error) {
		who, ok := s.tokenCaller(tok)
		if !ok {
			return nil, auth.ErrInvalidToken
		}
		return &auth.TokenInfo{UserID: who.Name, Expiration: time.Now().Add(time.Hour)}, nil
	}, nil)(mcpserver.New(s.engine, s.cfg, MCPPlanner(s.cfg), s.log).Handler())
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Authorization") == "" {
			writeError(w, http.StatusForbidden, "forbidden", "/mcp takes the token as Authorization: Bearer TOKEN, not the page's cookie")
			return
		}
		if r.Method != http.MethodPost {
			h.ServeHTTP(w, r) // the SDK's answer (405: each request is a session)
			return
		}
		if !s.streams(r).take(s.Limits.StreamsPerToken) {
			tooMany(w, "event streams", s.Limits.StreamsPerToken)
			return
		}
		defer s.streams(r).put()
		// Read the body within the read deadline, then lift it: a
		// deadline that passes while the call runs would end the request.
		body, err := io.ReadAll(r.Body)
		if err != nil {
			var tooLarge *http.MaxBytesError
			if errors.As(err, &tooLarge) {
				writeError(w, http.StatusRequestEntityTooLarge, "too_large", "the request body is over 1 MiB")
			} else {
				writeError(w, http.StatusBadRequest, "bad_request", "read the body: "+err.Error())
			}
			return
		}
		r.Body = io.NopCloser(bytes.NewReader(body))
		rc := http.NewResponseController(w)
		rc.SetReadDeadline(time.Time{})
		rc.SetWriteDeadline(time.Time{})
		h.ServeHTTP(&deadlineWriter{ResponseWriter: w, rc: rc, timeout: s.Limits.WriteTimeout}, r)
	})
}

// deadlineWriter gives each write of a response WriteTimeout to complete
// and lifts the deadline while the response is idle, as [stream] does.
type deadlineWriter struct {
	http.ResponseWriter
	rc      *http.ResponseController
	timeout time.Duration
}

func (d *deadlineWriter) deadline() {
	if d.timeout > 0 {
		d.rc.SetWriteDeadline(time.Now().Add(d.timeout))
	}
}

func (d *deadlineWriter) Write(p []byte) (int, error) {
	d.deadline()
	return d.ResponseWriter.Write(p)
}

func (d *deadlineWriter) WriteHeader(code int) {
	d.deadline()
	d.ResponseWriter.WriteHeader(code)
}

// FlushError sends what is buffered, then lifts the deadline.
func (d *deadlineWriter) FlushError() error {
	d.deadline()
	if err := d.rc.Flush(); err != nil {
		return err
	}
	return d.rc.SetWriteDeadline(time.Time{})
}

// Flush is FlushError for those that look for an [http.Flusher].
func (d *deadlineWriter) Flush() { d.FlushError() }

// Unwrap lets an [http.ResponseController] reach the connection.
func (d *deadlineWriter) Unwrap() http.ResponseWriter { return d.ResponseWriter }
