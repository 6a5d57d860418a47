package server

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/hive-swarm/hive/internal/config"
	"github.com/hive-swarm/hive/internal/journal"
	"github.com/hive-swarm/hive/internal/mcpserver"
	"github.com/hive-swarm/hive/internal/price"
	"github.com/hive-swarm/hive/internal/swarm"
)

// RunRequest is the body of POST /v1/runs. Empty fields take the
// configuration's defaults.
type RunRequest struct {
	Task      string       `json:"task"`
	Lead      string       `json:"lead,omitempty"`
	Tiers     []string     `json:"tiers,omitempty"`
	BudgetUSD *json.Number `json:"budget_usd,omitempty"` // a decimal, kept exact; 0 for no dollar budget
	// BudgetTokens bounds the run's tokens; 0 takes the default.
	BudgetTokens int64 `json:"budget_tokens,omitempty"`
	MaxWorkers   int   `json:"max_workers,omitempty"`
	MaxDepth     int   `json:"max_depth,omitempty"`
	// Workspace is a directory of the server's machine, an absolute path,
	// that the workers read and propose changes to (as hive run
	// --workspace); hive apply RUN writes the run's patch into it.
	Workspace string `json:"workspace,omitempty"`
	// Urgency "batch" sends the workers' calls (of the tiers BatchTiers
	// names, or all) through the providers' batch APIs, at half price.
	Urgency    string `json:"urgency,omitempty"`
	BatchTiers []int  `json:"batch_tiers,omitempty"`
}

// ArtifactRef names an artifact in a node's view.
type ArtifactRef struct {
	ID   string `json:"id"`
	Name string `json:"name"`
	Size int    `json:"size"`
}

// specFrom builds a run's spec from a request over the defaults d: the
// same merge as hive run does with its flags. The run's models may name
// any model of cfg, and its verify specs cfg's checks.
func specFrom(cfg *config.Config, d config.Defaults, req RunRequest) (swarm.Spec, error) {
	spec := swarm.Spec{Task: req.Task, Lead: d.Lead, Tiers: d.Tiers, MaxWorkers: d.MaxWorkers, MaxDepth: d.MaxDepth,
		Models: cfg.ModelNames(), Checks: swarm.ChecksFrom(cfg.Checks), MCP: cfg.MCP,
		Workspace: req.Workspace, WorkspaceHide: cfg.Workspace.Hide, WorkspaceShow: cfg.Workspace.Show,
		Urgency: req.Urgency, BatchTiers: req.BatchTiers}
	if req.Lead != "" {
		spec.Lead = req.Lead
	}
	if len(req.Tiers) > 0 {
		spec.Tiers = req.Tiers
	}
	spec.MaxTokens = d.BudgetTokens
	if req.BudgetTokens != 0 {
		spec.MaxTokens = req.BudgetTokens
	}
	if req.MaxWorkers != 0 {
		spec.MaxWorkers = req.MaxWorkers
	}
	if req.MaxDepth != 0 {
		spec.MaxDepth = req.MaxDepth
	}
	budget := strconv.FormatFloat(d.BudgetUSD, 'f', -1, 64)
	spec.BudgetDefault = req.BudgetUSD == nil
	if req.BudgetUSD != nil {
		budget = req.BudgetUSD.String()
	}
	var err error
	if spec.BudgetUSD, err = price.ParseUSD(budget); err != nil {
		return spec, fmt.Errorf("budget_usd %s: %v", budget, err)
	}
	switch {
	case strings.TrimSpace(spec.Task) == "":
		return spec, errors.New("the task is empty")
	case spec.Lead == "":
		return spec, errors.New("no lead model: give lead, or set lead under [defaults] in hive.toml")
	case len(spec.Tiers) == 0:
		return spec, errors.New("no worker models: give tiers, or set tiers under [defaults] in hive.toml")
	case spec.MaxWorkers < 0 || spec.MaxDepth < 0 || spec.MaxTokens < 0:
		return spec, errors.New("max_workers, max_depth and budget_tokens take positive numbers")
	case spec.Workspace != "" && !filepath.IsAbs(spec.Workspace):
		return spec, fmt.Errorf("workspace %q is not an absolute path: give the directory's whole path on the server's machine", spec.Workspace)
	}
	return spec, nil
}

// start starts a run, answering on failure; "" when it did not start.
func (s *Server) start(ctx context.Context, w http.ResponseWriter, spec swarm.Spec) string {
	id, err := s.engine.Start(ctx, spec)
	if err == nil {
		return id
	}
	// What was asked for (an unknown model, a budget that cannot hold) is
	// the request's fault; anything else, the journal's or the executor's.
	// Either way, a retry may not start a run behind this one's back.
	noRetry(w)
	var se *swarm.SpecError
	if errors.As(err, &se) {
		writeError(w, http.StatusBadRequest, "bad_request", err.Error())
	} else {
		s.internal(w, "start the run", err)
	}
	return ""
}

// createRun starts a run. A retry with the same Idempotency-Key (or an
// OpenAI SDK's retry of the same body) gets the run of its first try,
// with 200 instead of 201.
func (s *Server) createRun(w http.ResponseWriter, r *http.Request) {
	var req RunRequest
	body, ok := decodeBody(w, r, &req, true)
	if !ok {
		return
	}
	spec, err := specFrom(s.cfg, s.cfg.Defaults, req)
	if err != nil {
		writeError(w, http.StatusBadRequest, "bad_request", err.Error())
		return
	}
	who := callerOf(r)
	spec.Principal = who.Name
	if !who.main && req.Workspace != "" {
		// A token of its own names only directories under [workspace]
		// roots, as an MCP client does: not the operator's home, nor
		// another token's project.
		dir, err := mcpserver.CheckWorkspace(s.cfg.Workspace.Roots, req.Workspace)
		if err != nil {
			writeError(w, http.StatusBadRequest, "bad_request", err.Error())
			return
		}
		spec.Workspace = dir
	}
	id, _, retried := s.startOnce(w, r, "runs", body, false,
		func() string { return s.start(r.Context(), w, spec) },
		func() { writeError(w, http.StatusUnprocessableEntity, "idempotency_key_reused", errKeyReused.Error()) })
	if id == "" {
		return
	}
	status := http.StatusCreated
	if retried {
		status = http.StatusOK
	}
	w.Header().Set("Location", "/v1/runs/"+id)
	writeJSON(w, status, map[string]string{"id": id})
}

func (s *Server) listRuns(w http.ResponseWriter, r *http.Request) {
	runs, err := s.store.Runs(r.Context(), 0)
	if err != nil {
		s.internal(w, "list runs", err)
		return
	}
	who := callerOf(r)
	out := make([]swarm.RunView, 0, len(runs))
	for _, jr := range runs {
		if who.sees(jr) {
			out = append(out, swarm.ViewRun(jr))
		}
	}
	writeJSON(w, http.StatusOK, map[string]any{"runs": out})
}

// run resolves the {id} of r, answering on failure.
func (s *Server) run(w http.ResponseWriter, r *http.Request) (journal.Run, bool) {
	id := r.PathValue("id")
	jr, err := s.store.Run(r.Context(), id)
	if who := callerOf(r); !who.main && (errors.Is(err, journal.ErrAmbiguous) || err == nil && (jr.ID != id || !who.sees(jr))) {
		// Another token's run is none of this one's business, not even
		// that it exists: a named token finds its runs by whole ids
		// only, as a prefix could tell it of the others'.
		jr, err = journal.Run{}, fmt.Errorf("run %s: %w", id, journal.ErrNotFound)
	}
	if err != nil {
		s.lookupError(w, id, err)
		return jr, false
	}
	return jr, true
}

func (s *Server) getRun(w http.ResponseWriter, r *http.Request) {
	jr, ok := s.run(w, r)
	if !ok {
		return
	}
	nodes, err := s.engine.Nodes(r.Context(), jr.ID)
	if err != nil {
		s.internal(w, "read nodes", err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"run": swarm.ViewRun(jr), "nodes": nodes})
}

func (s *Server) getNode(w http.ResponseWriter, r *http.Request) {
	jr, ok := s.run(w, r)
	if !ok {
		return
	}
	nodeID := r.PathValue("node")
	nodes, err := s.engine.Nodes(r.Context(), jr.ID)
	if err != nil {
		s.internal(w, "read nodes", err)
		return
	}
	var node *swarm.Node
	for i := range nodes {
		if nodes[i].ID == nodeID {
			node = &nodes[i]
			break
		}
	}
	if node == nil {
		writeError(w, http.StatusNotFound, "not_found", fmt.Sprintf("run %s has no node %s", jr.ID, nodeID))
		return
	}
	msgs, err := s.engine.Conversation(r.Context(), jr.ID, nodeID)
	if errors.Is(err, swarm.ErrNoConversation) {
		msgs, err = []swarm.MessageView{}, nil
	}
	if err != nil {
		s.internal(w, "read conversation", err)
		return
	}
	arts, err := s.artifacts(r.Context(), jr.ID, nodeID)
	if err != nil {
		s.internal(w, "read artifacts", err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"node": node, "messages": msgs, "artifacts": arts})
}

// artifacts lists the artifacts a node stored, from the run's artifact
// events (whose ids are the node's id, "/", the name).
func (s *Server) artifacts(ctx context.Context, runID, nodeID string) ([]ArtifactRef, error) {
	out := []ArtifactRef{}
	seen := map[string]bool{}
	prefix := nodeID + "/"
	var after int64
	for {
		rows, err := s.store.Events(ctx, runID, after, 1000)
		if err != nil {
			return nil, err
		}
		for _, row := range rows {
			after = row.Seq
			var ev swarm.Event
			if json.Unmarshal(row.Data, &ev) != nil || ev.Type != swarm.EventArtifact ||
				!strings.HasPrefix(ev.Text, prefix) || seen[ev.Text] {
				continue
			}
			seen[ev.Text] = true
			name, _, content, err := s.store.Artifact(ctx, runID, ev.Text)
			if errors.Is(err, journal.ErrNotFound) {
				continue
			}
			if err != nil {
				return nil, err
			}
			out = append(out, ArtifactRef{ID: ev.Text, Name: name, Size: len(content)})
		}
		if len(rows) < 1000 {
			return out, nil
		}
	}
}

func (s *Server) getArtifact(w http.ResponseWriter, r *http.Request) {
	jr, ok := s.run(w, r)
	if !ok {
		return
	}
	id := r.PathValue("artifact")
	name, node, content, err := s.store.Artifact(r.Context(), jr.ID, id)
	if errors.Is(err, journal.ErrNotFound) {
		writeError(w, http.StatusNotFound, "not_found", fmt.Sprintf("run %s has no artifact %s", jr.ID, id))
		return
	}
	if err != nil {
		s.internal(w, "read artifact", err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]string{"id": id, "name": name, "node": node, "content": string(content)})
}

func (s *Server) cancelRun(w http.ResponseWriter, r *http.Request) {
	jr, ok := s.run(w, r)
	if !ok {
		return
	}
	if swarm.Status(jr.Status).Final() {
		writeError(w, http.StatusConflict, "conflict", fmt.Sprintf("run %s is already %s", jr.ID, jr.Status))
		return
	}
	if err := s.engine.Cancel(r.Context(), jr.ID); err != nil {
		s.internal(w, "cancel the run", err)
		return
	}
	s.status(w, r, jr.ID)
}

func (s *Server) resumeRun(w http.ResponseWriter, r *http.Request) {
	jr, ok := s.run(w, r)
	if !ok {
		return
	}
	switch st := swarm.Status(jr.Status); st {
	case swarm.StatusDone, swarm.StatusFailed, swarm.StatusEscalated:
		writeError(w, http.StatusConflict, "conflict", fmt.Sprintf("run %s already ended (%s); nothing to resume", jr.ID, st))
		return
	}
	if _, err := s.engine.Resume(r.Context(), jr.ID); err != nil {
		if strings.Contains(err.Error(), "already ended") {
			writeError(w, http.StatusConflict, "conflict", err.Error())
		} else {
			s.internal(w, "resume the run", err)
		}
		return
	}
	s.status(w, r, jr.ID)
}

// status answers with a run's id and current status.
func (s *Server) status(w http.ResponseWriter, r *http.Request, id string) {
	jr, err := s.store.Run(r.Context(), id)
	if err != nil {
		s.lookupError(w, id, err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]string{"id": jr.ID, "status": jr.Status})
}
