package server

import (
	"errors"
	"fmt"
	"net/http"

	"github.com/hive-swarm/hive/internal/journal"
	"github.com/hive-swarm/hive/internal/swarm"
)

// listApprovals answers GET /v1/runs/{id}/approvals: what the run waits
// for a person to decide (?all=true: what was decided too).
func (s *Server) listApprovals(w http.ResponseWriter, r *http.Request) {
	jr, ok := s.run(w, r)
	if !ok {
		return
	}
	as, err := s.store.Approvals(r.Context(), jr.ID, r.URL.Query().Get("all") == "true")
	if err != nil {
		s.internal(w, "list approvals", err)
		return
	}
	out := make([]swarm.ApprovalView, 0, len(as))
	for _, a := range as {
		out = append(out, swarm.ViewApproval(a))
	}
	writeJSON(w, http.StatusOK, map[string]any{"approvals": out})
}

// decideApproval answers POST /v1/runs/{id}/approvals/{approval...} with
// {"approve": true|false, "note": "…", "by": "…"}: the first decision
// stands (409 after it).
func (s *Server) decideApproval(w http.ResponseWriter, r *http.Request) {
	jr, ok := s.run(w, r)
	if !ok {
		return
	}
	var req struct {
		Approve *bool  `json:"approve"`
		Note    string `json:"note"`
		By      string `json:"by"`
	}
	if _, ok := decodeBody(w, r, &req, true); !ok {
		return
	}
	if req.Approve == nil {
		writeError(w, http.StatusBadRequest, "bad_request", `give "approve": true or false`)
		return
	}
	if len(req.Note) > 4096 || len(req.By) > 200 {
		writeError(w, http.StatusBadRequest, "bad_request", "note is at most 4096 bytes, by at most 200")
		return
	}
	by := req.By
	if by == "" {
		by = "api"
	}
	if who := callerOf(r); !who.main {
		if !who.Approve {
			writeError(w, http.StatusForbidden, "forbidden", fmt.Sprintf("token %s may not decide approvals (approve = true in [serve.tokens.%s] lets it)", who.Name, who.Name))
			return
		}
		// Who decided is the token; what it says of itself comes after.
		by = "token " + who.Name
		if req.By != "" {
			by += " (as " + req.By + ")"
		}
	}
	id := r.PathValue("approval")
	err := s.engine.Decide(r.Context(), jr.ID, id, *req.Approve, req.Note, by)
	switch {
	case errors.Is(err, swarm.ErrNotPending):
		a, _ := s.store.Approval(r.Context(), jr.ID, id)
		writeError(w, http.StatusConflict, "conflict", fmt.Sprintf("%s was already decided: %s by %s", id, a.Status, a.By))
		return
	case errors.Is(err, journal.ErrNotFound):
		writeError(w, http.StatusNotFound, "not_found", fmt.Sprintf("run %s has no approval %q", jr.ID, id))
		return
	case err != nil:
		s.internal(w, "decide", err)
		return
	}
	a, err := s.store.Approval(r.Context(), jr.ID, id)
	if err != nil {
		s.internal(w, "decide", err)
		return
	}
	writeJSON(w, http.StatusOK, swarm.ViewApproval(a))
}
