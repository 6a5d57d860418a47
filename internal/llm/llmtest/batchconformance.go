package llmtest

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/hive-swarm/hive/internal/llm"
)

// TestBatcher runs the batch conformance suite against p, whose models
// must implement [llm.Batcher]: through the provider's batch API, the
// same scripted server behaviour must give the same responses and the
// same kinds of errors as direct calls, and the batch's progress must read
// the same whatever the provider.
func TestBatcher(t *testing.T, p Provider) {
	t.Run("Results", p.testBatchResults)
	t.Run("SameRequestAsGenerate", p.testBatchSameRequest)
	t.Run("Cache", p.testBatchCache)
	t.Run("Cancel", p.testBatchCancel)
	t.Run("RefusedBeforeSending", p.testBatchRefused)
	t.Run("UnknownBatch", p.testBatchUnknown)
}

// batcher starts a server answering with h under rules, and returns it
// with the adapter pointed at it.
func (p Provider) batcher(t *testing.T, h Handler, rules BatchRules) (*Server, llm.Batcher) {
	t.Helper()
	srv, m := p.start(t, h, "batch-key", "batch-key")
	srv.SetBatchRules(rules)
	b, ok := m.(llm.Batcher)
	if !ok {
		t.Fatalf("%T does not implement llm.Batcher", m)
	}
	return srv, b
}

// pollUntilEnded polls the batch until it has ended.
func pollUntilEnded(t *testing.T, b llm.Batcher, id string) *llm.BatchStatus {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for {
		st, err := b.PollBatch(ctx, id, nil)
		if err != nil {
			t.Fatalf("PollBatch: %v", err)
		}
		if st.Ended {
			return st
		}
		select {
		case <-ctx.Done():
			t.Fatalf("batch %s has not ended: %+v", id, st.Counts)
		case <-time.After(20 * time.Millisecond):
		}
	}
}

func batchOf(texts ...string) []llm.BatchRequest {
	var reqs []llm.BatchRequest
	for _, s := range texts {
		reqs = append(reqs, llm.BatchRequest{CustomID: s, Request: &llm.Request{
			Model: testModelID, System: "Answer " + s + ".", Messages: []llm.Message{llm.UserText(s)}, MaxTokens: 64,
		}})
	}
	return reqs
}

func (p Provider) testBatchResults(t *testing.T) {
	usage := llm.Usage{InputTokens: 31, OutputTokens: 7, CacheReadTokens: 5}
	h := func(c *Call) Reply {
		switch c.LastUserText() {
		case "bad":
			return Reply{Status: http.StatusBadRequest, ErrorMessage: "messages.0: unsupported block"}
		case "boom":
			return Reply{Status: http.StatusInternalServerError, ErrorType: "api_error", ErrorMessage: "kaput"}
		case "slow":
			return Reply{Status: http.StatusTooManyRequests, ErrorMessage: "rate limit reached"}
		}
		return Reply{Text: "answer to " + c.LastUserText(), Usage: &usage}
	}
	const delay = 300 * time.Millisecond
	srv, b := p.batcher(t, h, BatchRules{Delay: delay, Expire: func(id string) bool { return id == "late" }})
	ctx := context.Background()
	start := time.Now()
	id, err := b.SubmitBatch(ctx, batchOf("ok-1", "bad", "ok_2", "boom", "slow", "late"))
	if err != nil {
		t.Fatalf("SubmitBatch: %v", err)
	}
	if id == "" || srv.Batches() != 1 {
		t.Fatalf("SubmitBatch: id %q, %d batches on the server", id, srv.Batches())
	}

	st, err := b.PollBatch(ctx, id, nil)
	if err != nil {
		t.Fatalf("PollBatch: %v", err)
	}
	if time.Since(start) < delay {
		if st.Ended || st.Results != nil || st.Counts != (llm.BatchCounts{Processing: 6}) || st.ID != id {
			t.Errorf("before the delay: %+v, want in progress with 6 processing", st)
		}
		if n := len(srv.Calls()); n != 0 {
			t.Errorf("before the delay: %d items ran", n)
		}
	}

	st = pollUntilEnded(t, b, id)
	if want := (llm.BatchCounts{Succeeded: 2, Errored: 3, Expired: 1}); st.Counts != want {
		t.Errorf("counts %+v, want %+v", st.Counts, want)
	}
	if len(st.Results) != 6 {
		t.Fatalf("%d results, want 6: %v", len(st.Results), st.Results)
	}
	for _, cid := range []string{"ok-1", "ok_2"} {
		r := st.Results[cid]
		if r.Err != nil || r.Response == nil {
			t.Errorf("%s: %+v, want a response", cid, r)
			continue
		}
		if r.Response.Text() != "answer to "+cid || r.Response.Usage != usage || r.Response.StopReason != llm.StopEnd {
			t.Errorf("%s: text %q, usage %+v, stop %q", cid, r.Response.Text(), r.Response.Usage, r.Response.StopReason)
		}
	}
	for cid, want := range map[string]llm.Kind{"bad": llm.KindBadRequest, "boom": llm.KindTransient, "slow": llm.KindRateLimited, "late": llm.KindExpired} {
		r := st.Results[cid]
		var e *llm.Error
		if r.Response != nil || !errors.As(r.Err, &e) || e.Kind != want || e.Provider == "" {
			t.Errorf("%s: %+v, want an *llm.Error of kind %v", cid, r, want)
		}
	}
	if e := st.Results["bad"].Err; e == nil || !strings.Contains(e.Error(), "unsupported block") {
		t.Errorf("bad: %v, want the server's message", e)
	}
	if !llm.KindOf(st.Results["late"].Err).Retryable() {
		t.Error("an expired request is not retryable")
	}

	calls := srv.Calls()
	if len(calls) != 5 {
		t.Fatalf("%d calls ran, want 5 (the expired one does not run)", len(calls))
	}
	for _, c := range calls {
		if c.Batch != id || c.CustomID != c.LastUserText() || c.Stream {
			t.Errorf("call %d: batch %q, custom id %q, stream %v", c.N, c.Batch, c.CustomID, c.Stream)
		}
	}
	// Polling an ended batch again changes nothing and runs nothing.
	again := pollUntilEnded(t, b, id)
	if again.Counts != st.Counts || len(again.Results) != 6 || len(srv.Calls()) != 5 {
		t.Errorf("second poll: %+v, %d calls", again.Counts, len(srv.Calls()))
	}
	// A caller that wants only some results gets those, and the counts
	// still read the whole batch.
	some, err := b.PollBatch(ctx, id, func(cid string) bool { return cid == "ok_2" || cid == "late" })
	if err != nil || len(some.Results) != 2 || some.Results["ok_2"].Response == nil || some.Results["late"].Err == nil || some.Counts != st.Counts {
		t.Errorf("results wanted for ok_2 and late: %v %v", some, err)
	}
}

// testBatchSameRequest checks that a batch item's body is what Generate
// sends for the same request.
func (p Provider) testBatchSameRequest(t *testing.T) {
	srv, b := p.batcher(t, func(c *Call) Reply { return Reply{Text: "ok"} }, BatchRules{})
	temp := 0.25
	req := &llm.Request{
		Model: testModelID, System: "Be brief.", MaxTokens: 99, Temperature: &temp, Stop: []string{"END"},
		Messages:    []llm.Message{llm.UserText("first"), llm.AssistantText("second"), llm.UserText("third")},
		Tools:       []llm.Tool{{Name: "lookup", Description: "Look up.", Schema: json.RawMessage(`{"type":"object","properties":{"q":{"type":"string"}}}`)}},
		CacheSystem: true,
	}
	m := b.(llm.Model)
	if _, err := m.Generate(context.Background(), req); err != nil {
		t.Fatalf("Generate: %v", err)
	}
	id, err := b.SubmitBatch(context.Background(), []llm.BatchRequest{{CustomID: "same", Request: req}})
	if err != nil {
		t.Fatalf("SubmitBatch: %v", err)
	}
	st := pollUntilEnded(t, b, id)
	if r := st.Results["same"]; r.Err != nil || r.Response.Text() != "ok" {
		t.Fatalf("result: %+v", r)
	}
	calls := srv.Calls()
	if len(calls) != 2 || calls[0].Batch != "" || calls[1].Batch != id {
		t.Fatalf("calls: %d, want the direct one then the batched one", len(calls))
	}
	var direct, batched any
	if json.Unmarshal(calls[0].Body, &direct) != nil || json.Unmarshal(calls[1].Body, &batched) != nil {
		t.Fatal("a body is not JSON")
	}
	if !reflect.DeepEqual(direct, batched) {
		t.Errorf("batched body differs from Generate's:\n%s\n%s", calls[0].Body, calls[1].Body)
	}
}

// testBatchCache checks that a batch's items go through the server's
// simulated cache in order: the second of two items with the same long
// prefix reads what the first wrote.
func (p Provider) testBatchCache(t *testing.T) {
	srv, b := p.batcher(t, func(c *Call) Reply { return Reply{Text: "ok"} }, BatchRules{})
	srv.SimulateCache(CacheRules{MinTokens: 256})
	system := strings.Repeat("The hive keeps its rules here. ", 200)
	var reqs []llm.BatchRequest
	for _, cid := range []string{"first", "second"} {
		reqs = append(reqs, llm.BatchRequest{CustomID: cid, Request: &llm.Request{
			Model: testModelID, System: system, CacheSystem: true, Messages: []llm.Message{llm.UserText(cid)},
		}})
	}
	id, err := b.SubmitBatch(context.Background(), reqs)
	if err != nil {
		t.Fatalf("SubmitBatch: %v", err)
	}
	st := pollUntilEnded(t, b, id)
	first, second := st.Results["first"], st.Results["second"]
	if first.Err != nil || second.Err != nil {
		t.Fatalf("results: %+v, %+v", first, second)
	}
	if first.Response.Usage.CacheReadTokens != 0 || second.Response.Usage.CacheReadTokens == 0 {
		t.Errorf("cache reads: first %+v, second %+v; want the second to read", first.Response.Usage, second.Response.Usage)
	}
	if cs := srv.CacheStats(); cs.Requests != 2 || cs.Hits != 1 {
		t.Errorf("cache stats %+v, want 2 requests and 1 hit", cs)
	}
}

func (p Provider) testBatchCancel(t *testing.T) {
	srv, b := p.batcher(t, func(c *Call) Reply { return Reply{Text: "never"} }, BatchRules{Delay: time.Hour})
	ctx := context.Background()
	id, err := b.SubmitBatch(ctx, batchOf("a", "b"))
	if err != nil {
		t.Fatalf("SubmitBatch: %v", err)
	}
	st, err := b.PollBatch(ctx, id, nil)
	if err != nil || st.Ended || st.Counts.Processing != 2 {
		t.Fatalf("PollBatch: %+v, %v; want in progress", st, err)
	}
	if err := b.CancelBatch(ctx, id); err != nil {
		t.Fatalf("CancelBatch: %v", err)
	}
	st = pollUntilEnded(t, b, id)
	if st.Counts != (llm.BatchCounts{Canceled: 2}) {
		t.Errorf("counts %+v, want 2 canceled", st.Counts)
	}
	for _, cid := range []string{"a", "b"} {
		if r := st.Results[cid]; r.Response != nil || llm.KindOf(r.Err) != llm.KindCancelled {
			t.Errorf("%s: %+v, want cancelled", cid, r)
		}
	}
	if n := len(srv.Calls()); n != 0 {
		t.Errorf("%d items ran in a cancelled batch", n)
	}
}

// testBatchRefused checks that requests the API would refuse are refused
// before anything is sent.
func (p Provider) testBatchRefused(t *testing.T) {
	hit := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		t.Errorf("request sent: %s %s", r.Method, r.URL.Path)
		http.Error(w, "no", http.StatusTeapot)
	}))
	defer hit.Close()
	b, ok := p.NewModel(hit.URL, "batch-key").(llm.Batcher)
	if !ok {
		t.Fatal("the model is not an llm.Batcher")
	}
	long := "x"
	for len(long) <= llm.MaxCustomID {
		long += long
	}
	for name, reqs := range map[string][]llm.BatchRequest{
		"empty":     nil,
		"space":     batchOf("bad id"),
		"dot":       batchOf("task.1"),
		"too long":  batchOf(long),
		"duplicate": batchOf("a", "a"),
		"no id":     batchOf(""),
	} {
		id, err := b.SubmitBatch(context.Background(), reqs)
		if id != "" || llm.KindOf(err) != llm.KindBadRequest {
			t.Errorf("%s: %q, %v; want a bad request", name, id, err)
		}
	}
}

func (p Provider) testBatchUnknown(t *testing.T) {
	_, b := p.batcher(t, func(c *Call) Reply { return Reply{Text: "ok"} }, BatchRules{})
	if _, err := b.PollBatch(context.Background(), "nosuchbatch", nil); llm.KindOf(err) != llm.KindBadRequest {
		t.Errorf("PollBatch of an unknown batch: %v, want a bad request", err)
	}
	if err := b.CancelBatch(context.Background(), "nosuchbatch"); llm.KindOf(err) != llm.KindBadRequest {
		t.Errorf("CancelBatch of an unknown batch: %v, want a bad request", err)
	}
}
