package anthropic

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"

	sdk "github.com/anthropics/anthropic-sdk-go"
	"github.com/anthropics/anthropic-sdk-go/option"
	"github.com/anthropics/anthropic-sdk-go/packages/param"

	"github.com/hive-swarm/hive/internal/llm"
)

// The Message Batches API (https://docs.anthropic.com/en/docs/build-with-claude/batch-processing;
// reference: POST /v1/messages/batches, GET /v1/messages/batches/{id},
// GET /v1/messages/batches/{id}/results, POST /v1/messages/batches/{id}/cancel)
// runs Messages requests within 24 hours at half the price. A batch's
// processing_status is in_progress, canceling or ended; its results, once
// ended, are JSONL lines of {custom_id, result: {type: succeeded (message)
// | errored (error) | canceled | expired}}.

var _ llm.Batcher = (*Model)(nil)

// maxBatch is the most requests the API takes in one batch.
const maxBatch = 100_000

// SubmitBatch sends reqs as one message batch, each converted as
// [Model.Generate] converts it.
func (m *Model) SubmitBatch(ctx context.Context, reqs []llm.BatchRequest) (string, error) {
	if err := llm.CheckBatch(reqs); err != nil {
		return "", badRequest(err.(*llm.Error).Message)
	}
	if len(reqs) > maxBatch {
		return "", badRequest(fmt.Sprintf("batch of %d requests: the API takes at most %d", len(reqs), maxBatch))
	}
	p := sdk.MessageBatchNewParams{Requests: make([]sdk.MessageBatchNewParamsRequest, 0, len(reqs))}
	for _, r := range reqs {
		params, err := m.batchParams(r.Request)
		if err != nil {
			return "", badRequest(fmt.Sprintf("batch request %s: %s", r.CustomID, err.(*llm.Error).Message))
		}
		p.Requests = append(p.Requests, sdk.MessageBatchNewParamsRequest{CustomID: r.CustomID, Params: params})
	}
	var raw *http.Response
	b, err := m.client.Messages.Batches.New(ctx, p, option.WithResponseInto(&raw))
	if err != nil {
		return "", m.classify(ctx, err, raw)
	}
	if b.ID == "" {
		return "", m.wireError(raw, "server answered a message batch without an id")
	}
	return b.ID, nil
}

// batchParams converts req as [Model.Generate] does. A batch request's
// params are the Messages request's body (the SDK has a type of its own
// for them, with the same fields), so the body is passed through as JSON.
func (m *Model) batchParams(req *llm.Request) (sdk.MessageBatchNewParamsRequestParams, error) {
	params, err := m.params(req)
	if err != nil {
		return sdk.MessageBatchNewParamsRequestParams{}, err
	}
	body, err := json.Marshal(params)
	if err != nil {
		return sdk.MessageBatchNewParamsRequestParams{}, badRequest("encode request: " + err.Error())
	}
	return param.Override[sdk.MessageBatchNewParamsRequestParams](json.RawMessage(body)), nil
}

// PollBatch reports the batch's progress, and its results once it has
// ended.
func (m *Model) PollBatch(ctx context.Context, id string, want func(string) bool) (*llm.BatchStatus, error) {
	if id == "" {
		return nil, badRequest("poll batch: no batch id")
	}
	var raw *http.Response
	b, err := m.client.Messages.Batches.Get(ctx, id, sdk.MessageBatchGetParams{}, option.WithResponseInto(&raw))
	if err != nil {
		return nil, m.classify(ctx, err, raw)
	}
	rc := b.RequestCounts
	st := &llm.BatchStatus{
		ID:    b.ID,
		Ended: b.ProcessingStatus == sdk.MessageBatchProcessingStatusEnded,
		Counts: llm.BatchCounts{
			Processing: int(rc.Processing), Succeeded: int(rc.Succeeded), Errored: int(rc.Errored),
			Canceled: int(rc.Canceled), Expired: int(rc.Expired),
		},
	}
	if st.ID == "" {
		st.ID = id
	}
	if !st.Ended {
		return st, nil
	}
	if st.Results, err = m.batchResults(ctx, id, want); err != nil {
		return nil, err
	}
	return st, nil
}

// batchResults reads an ended batch's results, those want accepts.
func (m *Model) batchResults(ctx context.Context, id string, want func(string) bool) (map[string]llm.BatchResult, error) {
	var raw *http.Response
	stream := m.client.Messages.Batches.ResultsStreaming(ctx, id, sdk.MessageBatchResultsParams{}, option.WithResponseInto(&raw))
	defer stream.Close()
	if err := stream.Err(); err != nil {
		return nil, m.classify(ctx, err, raw)
	}
	out := make(map[string]llm.BatchResult)
	for stream.Next() {
		line := stream.Current()
		if want == nil || want(line.CustomID) {
			out[line.CustomID] = m.batchResult(line.Result)
		}
	}
	if err := stream.Err(); err != nil {
		if ctx.Err() != nil {
			return nil, cancelled(ctx)
		}
		return nil, m.wireError(raw, "reading batch results: "+err.Error())
	}
	return out, nil
}

// batchResult converts one request's result: a message exactly as
// [Model.Generate] converts it, an error classified by its type as an
// error event of a stream is (a batch item has no status of its own).
func (m *Model) batchResult(r sdk.MessageBatchResultUnion) llm.BatchResult {
	switch r.Type {
	case "succeeded":
		msg := r.Message
		if msg.Type != "message" {
			return llm.BatchResult{Err: m.wireError(nil, "batch result: succeeded without a message")}
		}
		return llm.BatchResult{Response: fromMessage(&msg)}
	case "errored":
		typ, msg := r.Error.Error.Type, r.Error.Error.Message
		if msg == "" {
			msg = typ
		}
		if typ != "" && msg != typ {
			msg = typ + ": " + msg
		}
		return llm.BatchResult{Err: &llm.Error{Kind: typeKind(typ, msg), Provider: provider, Message: m.oneLine("batch request errored: " + msg)}}
	case "canceled":
		return llm.BatchResult{Err: &llm.Error{Kind: llm.KindCancelled, Provider: provider, Message: "batch request canceled with its batch"}}
	case "expired":
		return llm.BatchResult{Err: &llm.Error{Kind: llm.KindExpired, Provider: provider, Message: "batch request expired before it ran"}}
	}
	return llm.BatchResult{Err: m.wireError(nil, "batch result of unknown type "+quoteType(r.Type))}
}

// CancelBatch asks for the batch to be cancelled. It ends once the
// requests in progress have finished; poll it until then.
func (m *Model) CancelBatch(ctx context.Context, id string) error {
	if id == "" {
		return badRequest("cancel batch: no batch id")
	}
	var raw *http.Response
	if _, err := m.client.Messages.Batches.Cancel(ctx, id, sdk.MessageBatchCancelParams{}, option.WithResponseInto(&raw)); err != nil {
		return m.classify(ctx, err, raw)
	}
	return nil
}
