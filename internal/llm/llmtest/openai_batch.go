package llmtest

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"
)

// OpenAI's Batch API (https://platform.openai.com/docs/guides/batch and
// the API reference of files and batches), served by [NewOpenAI] only:
//
//	POST /v1/files               multipart purpose=batch, file=JSONL of {"custom_id","method":"POST","url","body"}
//	GET  /v1/files/{id}/content  the file's bytes
//	POST /v1/batches             {"input_file_id","endpoint","completion_window":"24h"} → batch
//	GET  /v1/batches/{id}        → batch
//	POST /v1/batches/{id}/cancel → batch, status "cancelling"
//
// A batch has status validating, in_progress, finalizing, completed,
// failed, expired, cancelling or cancelled, request_counts {total,
// completed, failed}, Unix times, and once done output_file_id and
// error_file_id: JSONL files of {"id","custom_id","response":{"status_code",
// "request_id","body"},"error"}. Requests answered 200 go to the output
// file, the others to the error file with their status and error body;
// requests that expired go to the error file with response null and error
// {"code":"batch_expired"}, as the guide documents, and (this server's
// choice, by analogy) those a cancellation stopped with
// {"code":"batch_cancelled"}. A batch with an expired request ends
// "expired", a cancelled one "cancelled", any other "completed".
//
// Simplified: the input file is checked when the batch is created (a 400
// for a bad line, where OpenAI fails the batch in validating); the only
// endpoint is /v1/chat/completions; a cancelled batch ends at once (its
// cancel answer says cancelling, the next poll cancelled); cancelling an
// ended batch answers it unchanged; nothing can be listed or deleted.

const oaChatPath = "/v1/chat/completions"

func (p *openAI) serveBatch(s *Server, w http.ResponseWriter, r *http.Request) bool {
	path := r.URL.Path
	files := path == "/v1/files" || strings.HasPrefix(path, "/v1/files/")
	batches := path == "/v1/batches" || strings.HasPrefix(path, "/v1/batches/")
	if p.dialect != dialectOpenAI || (!files && !batches) {
		return false
	}
	if s.APIKey != "" && !p.authorized(r, s.APIKey) {
		p.writeError(w, http.StatusUnauthorized, "authentication_error", wrongKey)
		return true
	}
	parts := strings.Split(strings.TrimPrefix(path, "/v1/"), "/")
	switch {
	case files && len(parts) == 1 && r.Method == http.MethodPost:
		p.uploadFile(s, w, r)
	case files && len(parts) == 3 && parts[2] == "content" && r.Method == http.MethodGet:
		s.batches.mu.Lock()
		f := s.batches.files[parts[1]]
		s.batches.mu.Unlock()
		if f == nil {
			p.writeError(w, http.StatusNotFound, "invalid_request_error", "No such File object: "+parts[1])
			return true
		}
		w.Header().Set("Content-Type", "application/octet-stream")
		w.Write(f.data)
	case batches && len(parts) == 1 && r.Method == http.MethodPost:
		p.createBatch(s, w, r)
	case batches && (len(parts) == 2 && r.Method == http.MethodGet || len(parts) == 3 && parts[2] == "cancel" && r.Method == http.MethodPost):
		b := s.batch(parts[1])
		if b == nil {
			p.writeError(w, http.StatusNotFound, "invalid_request_error", "No batch found with id '"+parts[1]+"'.")
			return true
		}
		b.mu.Lock()
		defer b.mu.Unlock()
		status := ""
		if len(parts) == 3 {
			if b.ended.IsZero() && time.Since(b.created) < b.rules.Delay {
				status = "cancelling"
			}
			s.cancelLocked(b)
		} else {
			s.settleLocked(b)
		}
		p.writeBatchLocked(s, w, b, status)
	default:
		p.writeError(w, http.StatusNotFound, "invalid_request_error", "Invalid URL ("+r.Method+" "+path+")")
	}
	return true
}

func (p *openAI) uploadFile(s *Server, w http.ResponseWriter, r *http.Request) {
	if err := r.ParseMultipartForm(32 << 20); err != nil {
		p.writeError(w, http.StatusBadRequest, "invalid_request_error", "the body is not multipart/form-data: "+err.Error())
		return
	}
	purpose := r.FormValue("purpose")
	if purpose == "" {
		p.writeError(w, http.StatusBadRequest, "invalid_request_error", "Missing required parameter: 'purpose'.")
		return
	}
	mf, hdr, err := r.FormFile("file")
	if err != nil {
		p.writeError(w, http.StatusBadRequest, "invalid_request_error", "Missing required parameter: 'file'.")
		return
	}
	defer mf.Close()
	data, err := io.ReadAll(mf)
	if err != nil {
		p.writeError(w, http.StatusBadRequest, "invalid_request_error", "reading the file: "+err.Error())
		return
	}
	f := s.addFile(hdr.Filename, purpose, data)
	w.Header().Set("Content-Type", "application/json")
	json.NewEncoder(w).Encode(oaFileJSON(f))
}

// addFile stores a file and returns it.
func (s *Server) addFile(name, purpose string, data []byte) *file {
	st := &s.batches
	st.mu.Lock()
	defer st.mu.Unlock()
	if st.files == nil {
		st.files = make(map[string]*file)
	}
	f := &file{id: fmt.Sprintf("file-llmtest%06d", len(st.files)+1), name: name, purpose: purpose, created: time.Now(), data: data}
	st.files[f.id] = f
	return f
}

func oaFileJSON(f *file) map[string]any {
	return map[string]any{
		"id": f.id, "object": "file", "bytes": len(f.data), "created_at": f.created.Unix(),
		"filename": f.name, "purpose": f.purpose, "status": "processed", "expires_at": nil,
	}
}

func (p *openAI) createBatch(s *Server, w http.ResponseWriter, r *http.Request) {
	var body struct {
		InputFileID      string `json:"input_file_id"`
		Endpoint         string `json:"endpoint"`
		CompletionWindow string `json:"completion_window"`
	}
	if err := json.NewDecoder(r.Body).Decode(&body); err != nil {
		p.writeError(w, http.StatusBadRequest, "invalid_request_error", "invalid JSON body: "+err.Error())
		return
	}
	s.batches.mu.Lock()
	f := s.batches.files[body.InputFileID]
	s.batches.mu.Unlock()
	switch {
	case body.Endpoint != oaChatPath:
		p.writeError(w, http.StatusBadRequest, "invalid_request_error", fmt.Sprintf("endpoint %q is not served here; use %s", body.Endpoint, oaChatPath))
		return
	case body.CompletionWindow != "24h":
		p.writeError(w, http.StatusBadRequest, "invalid_request_error", "completion_window must be '24h'")
		return
	case f == nil:
		p.writeError(w, http.StatusNotFound, "invalid_request_error", "No such File object: "+body.InputFileID)
		return
	case f.purpose != "batch":
		p.writeError(w, http.StatusBadRequest, "invalid_request_error", "the input file's purpose must be 'batch'")
		return
	}
	items, err := oaBatchLines(f.data)
	if err != nil {
		p.writeError(w, http.StatusBadRequest, "invalid_request_error", "input file: "+err.Error())
		return
	}
	b := s.newBatch("batch_", r.Header, items)
	b.endpoint, b.inputFile = body.Endpoint, f.id
	b.mu.Lock()
	defer b.mu.Unlock()
	p.writeBatchLocked(s, w, b, "")
}

// oaBatchLines reads an input file's requests.
func oaBatchLines(data []byte) ([]*batchItem, error) {
	var items []*batchItem
	seen := map[string]bool{}
	for i, line := range bytes.Split(data, []byte("\n")) {
		if len(bytes.TrimSpace(line)) == 0 {
			continue
		}
		var l struct {
			CustomID string          `json:"custom_id"`
			Method   string          `json:"method"`
			URL      string          `json:"url"`
			Body     json.RawMessage `json:"body"`
		}
		if err := json.Unmarshal(line, &l); err != nil {
			return nil, fmt.Errorf("line %d is not JSON: %v", i+1, err)
		}
		switch {
		case l.CustomID == "":
			return nil, fmt.Errorf("line %d: custom_id is required", i+1)
		case seen[l.CustomID]:
			return nil, fmt.Errorf("line %d: custom_id %q is used twice", i+1, l.CustomID)
		case l.Method != http.MethodPost:
			return nil, fmt.Errorf("line %d: method must be POST", i+1)
		case l.URL != oaChatPath:
			return nil, fmt.Errorf("line %d: url %q does not match the batch's endpoint", i+1, l.URL)
		case !bytes.HasPrefix(bytes.TrimSpace(l.Body), []byte("{")):
			return nil, fmt.Errorf("line %d: body must be an object", i+1)
		}
		seen[l.CustomID] = true
		items = append(items, &batchItem{customID: l.CustomID, body: l.Body})
	}
	if len(items) == 0 {
		return nil, fmt.Errorf("no requests")
	}
	return items, nil
}

// writeBatchLocked writes b as a batch object, its status status when not
// empty; an ended batch's result files are written first.
func (p *openAI) writeBatchLocked(s *Server, w http.ResponseWriter, b *batch, status string) {
	if !b.ended.IsZero() && b.outputFile == "" && b.errorFile == "" {
		p.writeFilesLocked(s, b)
	}
	n := countsLocked(b)
	var completedAt, expiredAt, cancelledAt time.Time
	switch {
	case status != "":
	case b.ended.IsZero():
		status = "in_progress"
	case !b.cancelled.IsZero():
		status, cancelledAt = "cancelled", b.ended
	case n[itemExpired] > 0:
		status, expiredAt = "expired", b.ended
	default:
		status, completedAt = "completed", b.ended
	}
	var cancellingAt time.Time
	if !b.cancelled.IsZero() {
		cancellingAt = b.cancelled
	}
	failed := 0
	if !b.ended.IsZero() {
		failed = len(b.items) - n[itemSucceeded]
	}
	optional := func(id string) any {
		if id == "" {
			return nil
		}
		return id
	}
	w.Header().Set("Content-Type", "application/json")
	json.NewEncoder(w).Encode(map[string]any{
		"id": b.id, "object": "batch", "endpoint": b.endpoint, "errors": nil,
		"input_file_id": b.inputFile, "completion_window": "24h", "status": status,
		"output_file_id": optional(b.outputFile), "error_file_id": optional(b.errorFile),
		"created_at": b.created.Unix(), "in_progress_at": b.created.Unix(),
		"expires_at":    b.created.Add(24 * time.Hour).Unix(),
		"finalizing_at": unixJSON(b.ended), "completed_at": unixJSON(completedAt),
		"failed_at": nil, "expired_at": unixJSON(expiredAt),
		"cancelling_at": unixJSON(cancellingAt), "cancelled_at": unixJSON(cancelledAt),
		"request_counts": map[string]int{"total": len(b.items), "completed": n[itemSucceeded], "failed": failed},
		"metadata":       nil,
	})
}

// writeFilesLocked writes the output and error files of an ended batch.
func (p *openAI) writeFilesLocked(s *Server, b *batch) {
	var out, errs bytes.Buffer
	for i, it := range b.items {
		line := map[string]any{"id": fmt.Sprintf("batch_req_%s_%d", b.id, i), "custom_id": it.customID, "response": nil, "error": nil}
		switch it.outcome {
		case itemExpired:
			line["error"] = map[string]string{"code": "batch_expired", "message": "This request could not be executed before the completion window expired."}
		case itemCanceled:
			line["error"] = map[string]string{"code": "batch_cancelled", "message": "This request was not executed because the batch was cancelled."}
		default:
			body := json.RawMessage(it.answer)
			if !json.Valid(body) {
				// An HTML page or JSON cut short: the file holds JSON, so
				// the line says what a direct call would have seen.
				body, _ = json.Marshal(map[string]any{"error": map[string]any{
					"message": fmt.Sprintf("the server answered HTTP %d without a JSON body", it.status),
					"type":    "server_error", "param": nil, "code": nil,
				}})
			}
			line["response"] = map[string]any{"status_code": it.status, "request_id": fmt.Sprintf("req_llmtest_%s_%d", b.id, i), "body": body}
		}
		dst := &errs
		if it.outcome == itemSucceeded {
			dst = &out
		}
		json.NewEncoder(dst).Encode(line)
	}
	if out.Len() > 0 {
		b.outputFile = s.addFile(b.id+"_output.jsonl", "batch_output", out.Bytes()).id
	}
	if errs.Len() > 0 {
		b.errorFile = s.addFile(b.id+"_error.jsonl", "batch_output", errs.Bytes()).id
	}
}
