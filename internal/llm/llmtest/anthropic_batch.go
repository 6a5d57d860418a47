package llmtest

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"regexp"
	"strings"
	"time"
)

// Anthropic's Message Batches API
// (https://docs.anthropic.com/en/api/creating-message-batches and the
// pages next to it):
//
//	POST /v1/messages/batches              {"requests":[{"custom_id","params"}]} → message_batch
//	GET  /v1/messages/batches/{id}         → message_batch
//	GET  /v1/messages/batches/{id}/results → JSONL of {"custom_id","result":{"type":…}}
//	POST /v1/messages/batches/{id}/cancel  → message_batch, processing_status "canceling"
//
// A message_batch has processing_status in_progress, canceling or ended,
// request_counts {processing, succeeded, errored, canceled, expired},
// RFC 3339 times, and results_url once ended. A result's type is
// succeeded (with the message), errored (with the error body a direct call
// would have got), canceled or expired.
//
// Simplified: a cancelled batch ends at once (its cancel answer says
// canceling, the next poll ended); cancelling an ended batch answers it
// unchanged; results of a batch that has not ended are a 400; batches
// cannot be listed or deleted.

const anthropicBatches = "/v1/messages/batches"

// anthropicCustomID is the pattern the API holds custom ids to.
var anthropicCustomID = regexp.MustCompile(`^[a-zA-Z0-9_-]{1,64}$`)

func (p anthropicProto) serveBatch(s *Server, w http.ResponseWriter, r *http.Request) bool {
	rest, ok := strings.CutPrefix(r.URL.Path, anthropicBatches)
	if !ok || (rest != "" && rest[0] != '/') {
		return false
	}
	if s.APIKey != "" && !p.authorized(r, s.APIKey) {
		p.writeError(w, http.StatusUnauthorized, "authentication_error", wrongKey)
		return true
	}
	if r.Header.Get("Anthropic-Version") == "" {
		p.writeError(w, http.StatusBadRequest, "invalid_request_error", "anthropic-version: header is required")
		return true
	}
	id, action, _ := strings.Cut(strings.TrimPrefix(rest, "/"), "/")
	switch {
	case id == "" && r.Method == http.MethodPost:
		p.createBatch(s, w, r)
		return true
	case id == "":
		p.writeError(w, http.StatusNotFound, "not_found_error", "no route for "+r.Method+" "+r.URL.Path)
		return true
	}
	b := s.batch(id)
	if b == nil {
		p.writeError(w, http.StatusNotFound, "not_found_error", "message batch "+id+" not found")
		return true
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	switch {
	case action == "" && r.Method == http.MethodGet:
		s.settleLocked(b)
		p.writeBatchLocked(s, w, b, "")
	case action == "results" && r.Method == http.MethodGet:
		s.settleLocked(b)
		if b.ended.IsZero() {
			p.writeError(w, http.StatusBadRequest, "invalid_request_error", "message batch "+id+" has not ended: results are not available yet")
			return true
		}
		p.writeResultsLocked(w, b)
	case action == "cancel" && r.Method == http.MethodPost:
		wasEnded := !b.ended.IsZero() || time.Since(b.created) >= b.rules.Delay
		s.cancelLocked(b)
		status := ""
		if !wasEnded {
			status = "canceling"
		}
		p.writeBatchLocked(s, w, b, status)
	default:
		p.writeError(w, http.StatusNotFound, "not_found_error", "no route for "+r.Method+" "+r.URL.Path)
	}
	return true
}

func (p anthropicProto) createBatch(s *Server, w http.ResponseWriter, r *http.Request) {
	var body struct {
		Requests []struct {
			CustomID string          `json:"custom_id"`
			Params   json.RawMessage `json:"params"`
		} `json:"requests"`
	}
	if err := json.NewDecoder(r.Body).Decode(&body); err != nil {
		p.writeError(w, http.StatusBadRequest, "invalid_request_error", "invalid JSON body: "+err.Error())
		return
	}
	if len(body.Requests) == 0 {
		p.writeError(w, http.StatusBadRequest, "invalid_request_error", "requests: Field required")
		return
	}
	seen := map[string]bool{}
	items := make([]*batchItem, 0, len(body.Requests))
	for i, req := range body.Requests {
		switch {
		case !anthropicCustomID.MatchString(req.CustomID):
			p.writeError(w, http.StatusBadRequest, "invalid_request_error",
				fmt.Sprintf("requests.%d.custom_id: String should match pattern '^[a-zA-Z0-9_-]{1,64}$'", i))
			return
		case seen[req.CustomID]:
			p.writeError(w, http.StatusBadRequest, "invalid_request_error",
				fmt.Sprintf("requests.%d.custom_id: duplicate custom_id %q", i, req.CustomID))
			return
		case !bytes.HasPrefix(bytes.TrimSpace(req.Params), []byte("{")):
			p.writeError(w, http.StatusBadRequest, "invalid_request_error", fmt.Sprintf("requests.%d.params: Field required", i))
			return
		}
		seen[req.CustomID] = true
		items = append(items, &batchItem{customID: req.CustomID, body: req.Params})
	}
	b := s.newBatch("msgbatch_", r.Header, items)
	b.mu.Lock()
	defer b.mu.Unlock()
	p.writeBatchLocked(s, w, b, "")
}

// writeBatchLocked writes b as a message_batch, its processing_status
// status when not empty.
func (anthropicProto) writeBatchLocked(s *Server, w http.ResponseWriter, b *batch, status string) {
	n := countsLocked(b)
	if status == "" {
		status = "in_progress"
		if !b.ended.IsZero() {
			status = "ended"
		}
	}
	var results any
	if !b.ended.IsZero() {
		results = s.URL + anthropicBatches + "/" + b.id + "/results"
	}
	body, _ := json.Marshal(map[string]any{
		"id":                  b.id,
		"type":                "message_batch",
		"processing_status":   status,
		"request_counts":      n,
		"created_at":          timeJSON(b.created),
		"expires_at":          timeJSON(b.created.Add(24 * time.Hour)),
		"ended_at":            timeJSON(b.ended),
		"cancel_initiated_at": timeJSON(b.cancelled),
		"archived_at":         nil,
		"results_url":         results,
	})
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Request-Id", anthropicRequestID())
	w.Write(body)
}

// writeResultsLocked writes the results of an ended batch as JSONL.
func (anthropicProto) writeResultsLocked(w http.ResponseWriter, b *batch) {
	w.Header().Set("Content-Type", "application/binary")
	w.Header().Set("Request-Id", anthropicRequestID())
	enc := json.NewEncoder(w)
	for _, it := range b.items {
		result := map[string]any{"type": it.outcome}
		switch it.outcome {
		case itemSucceeded:
			result["message"] = json.RawMessage(it.answer)
		case itemErrored:
			result["error"] = anthropicErrorBody(it)
		}
		enc.Encode(map[string]any{"custom_id": it.customID, "result": result})
	}
}

// anthropicErrorBody is the error of an errored item: the body its direct
// call was answered with, or an api_error when that was not an error
// object (an HTML page, JSON cut short).
func anthropicErrorBody(it *batchItem) json.RawMessage {
	var e struct {
		Type string `json:"type"`
	}
	if json.Unmarshal(it.answer, &e) == nil && e.Type == "error" {
		return it.answer
	}
	b, _ := json.Marshal(map[string]any{"type": "error", "error": map[string]string{
		"type": "api_error", "message": fmt.Sprintf("the request failed with HTTP %d and no error object", it.status),
	}})
	return b
}
