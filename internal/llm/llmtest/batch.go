package llmtest

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"sync"
	"time"
)

// Batches: [NewAnthropic] serves Anthropic's Message Batches API and
// [NewOpenAI] OpenAI's Batch API (with the files it reads and writes); see
// anthropic_batch.go and openai_batch.go for the wire formats.
//
// A batch's items run when it ends, [BatchRules].Delay after its creation,
// at the first request about it from then on: each is answered by the
// server's [Handler] exactly as a direct call with the same body and the
// headers of the request that created the batch would be (parsing,
// context size, simulated cache, scripted replies and errors all apply),
// recorded among [Server.Calls] with [Call].Batch and [Call].CustomID set.
// A reply with an error status makes an errored item. Until the batch
// ends, it is in progress with every item processing. Cancelling it before
// then cancels every item; [BatchRules].Expire picks items that expire
// instead of running.
//
// The server never runs a goroutine of its own for a batch: requests
// about it advance it.

// BatchRules are how a server's batches behave. The zero value ends a
// batch, every item run, at the first request about it.
type BatchRules struct {
	// Delay is how long after its creation a batch ends.
	Delay time.Duration
	// Expire, when not nil, picks by custom id the items that expire
	// instead of running when the batch ends.
	Expire func(customID string) bool
}

// SetBatchRules sets the rules of the batches created from now on.
func (s *Server) SetBatchRules(r BatchRules) {
	s.batches.mu.Lock()
	defer s.batches.mu.Unlock()
	s.batches.rules = r
}

// Batches returns how many batches were created.
func (s *Server) Batches() int {
	s.batches.mu.Lock()
	defer s.batches.mu.Unlock()
	return len(s.batches.byID)
}

// batchState is a server's batches and files. Lock order: a batch's mu
// before batchState.mu, and batchState.mu is never held while items run.
type batchState struct {
	mu    sync.Mutex
	rules BatchRules        // guarded by mu
	byID  map[string]*batch // guarded by mu
	files map[string]*file  // OpenAI's files, uploaded and written; guarded by mu
	order []string          // batch ids in order of creation; guarded by mu
}

// A file is an OpenAI file: a batch's input, output or errors.
type file struct {
	id, name, purpose string
	created           time.Time
	data              []byte
}

// A batch is one batch of either protocol.
type batch struct {
	id      string
	rules   BatchRules
	created time.Time
	header  http.Header // of the request that created it, sent with each item
	items   []*batchItem
	// endpoint and inputFile are OpenAI's.
	endpoint, inputFile string

	mu        sync.Mutex // guards what follows; held while the items run
	ended     time.Time  // zero until the batch ends
	cancelled time.Time  // zero unless cancelled before it ended
	// outputFile and errorFile are OpenAI's result files, written when
	// the batch ends; empty when they would hold no line.
	outputFile, errorFile string
}

// Item outcomes, as Anthropic names them.
const (
	itemSucceeded = "succeeded"
	itemErrored   = "errored"
	itemCanceled  = "canceled"
	itemExpired   = "expired"
)

// A batchItem is one request of a batch.
type batchItem struct {
	batch, customID string
	body            []byte
	// Set when the batch ends:
	outcome string // itemSucceeded, …
	status  int    // the HTTP status of the answer, when run
	answer  []byte // its body, when run
}

// serveBatch serves r when it is a request of the protocol's batch API,
// and reports whether it was.
func (s *Server) serveBatch(w http.ResponseWriter, r *http.Request) bool {
	bp, ok := s.proto.(interface {
		serveBatch(s *Server, w http.ResponseWriter, r *http.Request) bool
	})
	return ok && bp.serveBatch(s, w, r)
}

// newBatch records a batch of items, created by the request with header h.
func (s *Server) newBatch(prefix string, h http.Header, items []*batchItem) *batch {
	st := &s.batches
	st.mu.Lock()
	defer st.mu.Unlock()
	if st.byID == nil {
		st.byID = make(map[string]*batch)
	}
	b := &batch{
		id:      fmt.Sprintf("%sllmtest%06d", prefix, len(st.byID)+1),
		rules:   st.rules,
		created: time.Now(),
		header:  h.Clone(),
		items:   items,
	}
	b.header.Del("Content-Length")
	b.header.Del("Content-Type")
	b.header.Set("Content-Type", "application/json")
	for _, it := range items {
		it.batch = b.id
	}
	st.byID[b.id] = b
	st.order = append(st.order, b.id)
	return b
}

// batch returns the batch id, or nil.
func (s *Server) batch(id string) *batch {
	s.batches.mu.Lock()
	defer s.batches.mu.Unlock()
	return s.batches.byID[id]
}

// settleLocked ends b, running its items, when its time has come.
func (s *Server) settleLocked(b *batch) {
	if !b.ended.IsZero() || time.Since(b.created) < b.rules.Delay {
		return
	}
	for _, it := range b.items {
		if b.rules.Expire != nil && b.rules.Expire(it.customID) {
			it.outcome = itemExpired
			continue
		}
		rec := httptest.NewRecorder()
		req := httptest.NewRequest(http.MethodPost, s.proto.path(), bytes.NewReader(it.body))
		req.Header = b.header.Clone()
		s.answer(rec, req, it)
		it.status, it.answer = rec.Code, rec.Body.Bytes()
		it.outcome = itemErrored
		if it.status == http.StatusOK && json.Valid(it.answer) && bytes.HasPrefix(bytes.TrimSpace(it.answer), []byte("{")) {
			it.outcome = itemSucceeded
		}
	}
	b.ended = time.Now()
}

// cancelLocked cancels b unless it has ended.
func (s *Server) cancelLocked(b *batch) {
	s.settleLocked(b)
	if !b.ended.IsZero() {
		return
	}
	for _, it := range b.items {
		it.outcome = itemCanceled
	}
	b.ended = time.Now()
	b.cancelled = b.ended
}

// countsLocked counts b's items by outcome, those not yet run as
// processing.
func countsLocked(b *batch) map[string]int {
	n := map[string]int{"processing": 0, itemSucceeded: 0, itemErrored: 0, itemCanceled: 0, itemExpired: 0}
	for _, it := range b.items {
		if it.outcome == "" {
			n["processing"]++
		} else {
			n[it.outcome]++
		}
	}
	return n
}

// timeJSON is t in RFC 3339, or JSON null when zero.
func timeJSON(t time.Time) any {
	if t.IsZero() {
		return nil
	}
	return t.UTC().Format(time.RFC3339Nano)
}

// unixJSON is t in Unix seconds, or JSON null when zero.
func unixJSON(t time.Time) any {
	if t.IsZero() {
		return nil
	}
	return t.Unix()
}
