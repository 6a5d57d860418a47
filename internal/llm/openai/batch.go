package openai

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"

	"github.com/openai/openai-go/v3"
	"github.com/openai/openai-go/v3/option"

	"github.com/hive-swarm/hive/internal/llm"
)

// The Batch API (https://platform.openai.com/docs/guides/batch; reference:
// POST /v1/files, POST /v1/batches, GET /v1/batches/{id},
// POST /v1/batches/{id}/cancel, GET /v1/files/{id}/content) runs Chat
// Completions requests within 24 hours at half the price. The requests go
// up as a JSONL file of purpose "batch", one {custom_id, method: "POST",
// url: "/v1/chat/completions", body} a line, the body exactly what
// [Model.Generate] posts. A batch's status is validating, in_progress,
// finalizing, completed, failed, expired, cancelling or cancelled; once
// done, its output file holds the requests answered 200 and its error file
// the others, each line {id, custom_id, response: {status_code, body},
// error}. A request answered with an error status keeps its status and
// error body, classified as for a direct call; one the batch did not run
// has response null and an error whose code says why: batch_expired (as
// the guide documents) or batch_cancelled.

var _ llm.Batcher = (*Model)(nil)

// Batch API limits: requests a batch, bytes of its input file.
const (
	maxBatch     = 50_000
	maxBatchFile = 200 << 20
)

// maxBatchOutput bounds how much of a result file is read.
const maxBatchOutput = 1 << 30

// batchURL is the endpoint of every request in a batch.
const batchURL = "/v1/chat/completions"

// SubmitBatch uploads reqs as a batch input file and creates a batch of
// it.
func (m *Model) SubmitBatch(ctx context.Context, reqs []llm.BatchRequest) (string, error) {
	if err := llm.CheckBatch(reqs); err != nil {
		return "", m.errorf(llm.KindBadRequest, 0, "%s", err.(*llm.Error).Message)
	}
	if len(reqs) > maxBatch {
		return "", m.errorf(llm.KindBadRequest, 0, "batch of %d requests: the API takes at most %d", len(reqs), maxBatch)
	}
	var input bytes.Buffer
	for _, r := range reqs {
		body, err := m.body(r.Request, false)
		if err != nil {
			return "", m.errorf(llm.KindBadRequest, 0, "batch request %s: %s", r.CustomID, err.(*llm.Error).Message)
		}
		id, _ := json.Marshal(r.CustomID)
		input.WriteString(`{"custom_id":`)
		input.Write(id)
		input.WriteString(`,"method":"POST","url":"` + batchURL + `","body":`)
		input.Write(body)
		input.WriteString("}\n")
	}
	if input.Len() > maxBatchFile {
		return "", m.errorf(llm.KindBadRequest, 0, "batch input of %d MiB: the API takes at most %d MiB", input.Len()>>20, maxBatchFile>>20)
	}
	var f *openai.FileObject
	err := m.do(ctx, "uploading the batch input", func(opts ...option.RequestOption) (err error) {
		f, err = m.files.New(ctx, openai.FileNewParams{
			File:    openai.File(bytes.NewReader(input.Bytes()), "hive-batch.jsonl", "application/jsonl"),
			Purpose: openai.FilePurposeBatch,
		}, opts...)
		return err
	})
	if err != nil {
		return "", err
	}
	var b *openai.Batch
	err = m.do(ctx, "creating the batch", func(opts ...option.RequestOption) (err error) {
		b, err = m.batches.New(ctx, openai.BatchNewParams{
			InputFileID:      f.ID,
			Endpoint:         openai.BatchNewParamsEndpointV1ChatCompletions,
			CompletionWindow: openai.BatchNewParamsCompletionWindow24h,
		}, opts...)
		return err
	})
	if err != nil {
		return "", err
	}
	if b.ID == "" {
		return "", m.errorf(llm.KindTransient, 0, "server answered a batch without an id")
	}
	return b.ID, nil
}

// PollBatch reports the batch's progress and, once it is done, its
// results, read from its output and error files. While it runs, the API
// counts completed and failed requests only: they are reported as
// succeeded and errored. Once it is done, the counts are the results'.
func (m *Model) PollBatch(ctx context.Context, id string, want func(string) bool) (*llm.BatchStatus, error) {
	if id == "" {
		return nil, m.errorf(llm.KindBadRequest, 0, "poll batch: no batch id")
	}
	var b *openai.Batch
	err := m.do(ctx, "polling the batch", func(opts ...option.RequestOption) (err error) {
		b, err = m.batches.Get(ctx, id, opts...)
		return err
	})
	if err != nil {
		return nil, err
	}
	st := &llm.BatchStatus{ID: b.ID}
	if st.ID == "" {
		st.ID = id
	}
	switch b.Status {
	case openai.BatchStatusCompleted, openai.BatchStatusFailed, openai.BatchStatusExpired, openai.BatchStatusCancelled:
		st.Ended = true
	default:
		rc := b.RequestCounts
		st.Counts = llm.BatchCounts{
			Processing: int(max(rc.Total-rc.Completed-rc.Failed, 0)),
			Succeeded:  int(rc.Completed),
			Errored:    int(rc.Failed),
		}
		return st, nil
	}
	st.Results = make(map[string]llm.BatchResult)
	if b.Status == openai.BatchStatusFailed {
		st.Err = m.batchErr(b.Errors.Data)
	}
	for _, fid := range []string{b.OutputFileID, b.ErrorFileID} {
		if fid == "" {
			continue
		}
		if err := m.readResults(ctx, fid, want, st); err != nil {
			return nil, err
		}
	}
	return st, nil
}

// count adds a result to the batch's counts.
func count(c *llm.BatchCounts, r llm.BatchResult) {
	switch llm.KindOf(r.Err) {
	case llm.KindUnknown:
		c.Succeeded++
	case llm.KindCancelled:
		c.Canceled++
	case llm.KindExpired:
		c.Expired++
	default:
		c.Errored++
	}
}

// batchLine is a line of a batch's output or error file.
type batchLine struct {
	CustomID string `json:"custom_id"`
	Response *struct {
		StatusCode int             `json:"status_code"`
		Body       json.RawMessage `json:"body"`
	} `json:"response"`
	Error *struct {
		Code    string `json:"code"`
		Message string `json:"message"`
	} `json:"error"`
}

// batchErr is the error of a batch the API failed as a whole (its input
// did not validate): its errors, said in a line.
func (m *Model) batchErr(errs []openai.BatchError) *llm.Error {
	msg := "the batch failed"
	for i, e := range errs {
		if i == 3 {
			msg += fmt.Sprintf("; and %d more", len(errs)-i)
			break
		}
		msg += "; " + e.Code
		if e.Line > 0 {
			msg += fmt.Sprintf(" (line %d)", e.Line)
		}
		if e.Message != "" {
			msg += ": " + e.Message
		}
	}
	return m.errorf(llm.KindBadRequest, 0, "%s", m.clean(msg))
}

// readResults counts every line of result file fid in st and keeps the
// results of those want accepts.
func (m *Model) readResults(ctx context.Context, fid string, want func(string) bool, st *llm.BatchStatus) error {
	var res *http.Response
	err := m.do(ctx, "reading batch results", func(opts ...option.RequestOption) (err error) {
		res, err = m.files.Content(ctx, fid, opts...)
		return err
	})
	if err != nil {
		return err
	}
	body := llm.CapBody(res.Body, maxBatchOutput)
	defer body.Close()
	dec := json.NewDecoder(body)
	for {
		var line batchLine
		err := dec.Decode(&line)
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return m.wireError(ctx, res.StatusCode, "reading batch results file "+fid, err)
		}
		r := m.batchResult(&line)
		count(&st.Counts, r)
		if want == nil || want(line.CustomID) {
			st.Results[line.CustomID] = r
		}
	}
}

// batchResult converts one line of a result file: a response exactly as
// [Model.Generate] converts it, an error status as a direct call's.
func (m *Model) batchResult(l *batchLine) llm.BatchResult {
	fail := func(e *llm.Error) llm.BatchResult {
		e.Message = m.clean("batch request: " + e.Message)
		return llm.BatchResult{Err: e}
	}
	switch {
	case l.Error != nil && (l.Response == nil || l.Response.StatusCode == 0):
		kind := kindOf(0, "", l.Error.Code, l.Error.Message)
		switch l.Error.Code {
		case "batch_expired":
			kind = llm.KindExpired
		case "batch_cancelled":
			kind = llm.KindCancelled
		}
		msg := l.Error.Message
		if l.Error.Code != "" {
			msg = l.Error.Code + ": " + msg
		}
		return fail(&llm.Error{Kind: kind, Provider: provider, Message: msg})
	case l.Response == nil:
		return fail(m.errorf(llm.KindTransient, 0, "result line with neither response nor error"))
	case l.Response.StatusCode != http.StatusOK:
		e := bodyError(l.Response.Body)
		if e == nil {
			e = &apiErr{Message: http.StatusText(l.Response.StatusCode)}
		}
		return fail(m.apiError(l.Response.StatusCode, nil, e))
	}
	wc, err := decodeCompletion(l.Response.Body)
	switch {
	case err != nil:
		return fail(m.errorf(llm.KindTransient, http.StatusOK, "not a chat completion: %v", err))
	case wc.apiErr() != nil:
		return fail(m.apiError(http.StatusOK, nil, wc.apiErr()))
	case len(wc.Choices) == 0:
		return fail(m.errorf(llm.KindTransient, http.StatusOK, "a chat completion with no choices"))
	}
	return llm.BatchResult{Response: wc.completion()}
}

// CancelBatch asks for the batch to be cancelled. It is cancelling until
// the requests in progress have finished; poll it until it has ended.
func (m *Model) CancelBatch(ctx context.Context, id string) error {
	if id == "" {
		return m.errorf(llm.KindBadRequest, 0, "cancel batch: no batch id")
	}
	return m.do(ctx, "cancelling the batch", func(opts ...option.RequestOption) error {
		_, err := m.batches.Cancel(ctx, id, opts...)
		return err
	})
}

// do runs one SDK call, given the options to pass it, and classifies its
// failure as [Model.send] does: the caller's context ending, an error
// status read by the capture middleware, or a failure to reach the
// server or read its answer.
func (m *Model) do(ctx context.Context, what string, call func(opts ...option.RequestOption) error) error {
	var got capture
	err := call(option.WithMiddleware(got.middleware))
	switch {
	case ctx.Err() != nil:
		return m.cancelled(ctx)
	case got.status >= 400:
		return m.statusError(&got)
	case err != nil:
		return m.wireError(ctx, got.status, fmt.Sprintf("%s at %s", what, m.cfg.BaseURL), err)
	}
	return nil
}
