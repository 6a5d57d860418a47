package llm

import (
	"context"
	"fmt"
)

// A Batcher sends requests through a provider's batch API, which answers
// within hours instead of seconds at half the price (Anthropic's Message
// Batches, OpenAI's Batch API). Each request is converted exactly as
// [Model.Generate] converts it, and each result exactly as its response,
// usage included.
//
// A batch is submitted once and polled until [BatchStatus].Ended; polling
// is idempotent, so a caller that has journaled the batch id can resume
// after a restart by polling it again.
type Batcher interface {
	// SubmitBatch sends reqs as one batch and returns its id. Requests
	// are checked first (see [CheckBatch]); nothing is sent when one is
	// refused.
	SubmitBatch(ctx context.Context, reqs []BatchRequest) (id string, err error)
	// PollBatch reports the batch's progress and, once it has ended, its
	// results: of the requests whose custom id want accepts (every one
	// when want is nil), so that a results file padded with lines the
	// caller never sent is not kept. Counts cover the whole batch.
	PollBatch(ctx context.Context, id string, want func(customID string) bool) (*BatchStatus, error)
	// CancelBatch asks the provider to stop the batch. Requests it has not
	// run end canceled; the batch must still be polled until it ends.
	CancelBatch(ctx context.Context, id string) error
}

// A BatchRequest is one request of a batch, named by CustomID, which must
// match ^[a-zA-Z0-9_-]{1,64}$ (Anthropic's pattern; OpenAI takes any
// string) and be unique within the batch.
type BatchRequest struct {
	CustomID string
	Request  *Request
}

// BatchStatus is a batch's progress.
type BatchStatus struct {
	ID string
	// Ended is set once no result will change any more.
	Ended bool
	// Counts are the requests by state. Providers that count fewer states
	// while the batch runs (OpenAI counts completed and failed only) have
	// them counted from the results once it has ended.
	Counts BatchCounts
	// Results, set once Ended, are the requests' outcomes by custom id. A
	// request absent from them failed with the batch (a batch the
	// provider refused as a whole, for instance) and may be sent again.
	Results map[string]BatchResult
	// Err, when set on an ended batch, is why the provider failed the
	// batch as a whole (OpenAI's status "failed" with its errors): its
	// requests have no results and would fail the same way again.
	Err error
}

// BatchCounts counts a batch's requests by state.
type BatchCounts struct {
	Processing, Succeeded, Errored, Canceled, Expired int
}

// BatchResult is one request's outcome: a Response, or an Err that is an
// [*Error] whose Kind says what happened: the provider's error classified
// as for a direct call, [KindCancelled] for a request the batch's
// cancellation stopped, [KindExpired] for one the provider did not run in
// time.
type BatchResult struct {
	Response *Response
	Err      error
}

// MaxCustomID is the longest custom id a batch request may have.
const MaxCustomID = 64

// CheckBatch reports the first reason reqs cannot be sent as a batch: none
// at all, a request missing, a custom id that does not match
// ^[a-zA-Z0-9_-]{1,64}$, or one used twice. The error is a [KindBadRequest]
// [*Error] without a provider; adapters set theirs.
func CheckBatch(reqs []BatchRequest) error {
	if len(reqs) == 0 {
		return &Error{Kind: KindBadRequest, Message: "batch: no requests"}
	}
	seen := make(map[string]bool, len(reqs))
	for i, r := range reqs {
		if err := checkCustomID(r.CustomID); err != nil {
			return &Error{Kind: KindBadRequest, Message: fmt.Sprintf("batch request %d: %v", i, err)}
		}
		if seen[r.CustomID] {
			return &Error{Kind: KindBadRequest, Message: fmt.Sprintf("batch request %d: custom id %q is used twice", i, r.CustomID)}
		}
		seen[r.CustomID] = true
		if r.Request == nil {
			return &Error{Kind: KindBadRequest, Message: fmt.Sprintf("batch request %d (%s): no request", i, r.CustomID)}
		}
	}
	return nil
}

// checkCustomID checks id against ^[a-zA-Z0-9_-]{1,64}$, the pattern of
// Anthropic's Message Batches API (POST /v1/messages/batches,
// requests[].custom_id).
func checkCustomID(id string) error {
	if id == "" || len(id) > MaxCustomID {
		return fmt.Errorf("custom id %q must be 1 to %d characters", id, MaxCustomID)
	}
	for _, c := range []byte(id) {
		ok := c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '-'
		if !ok {
			return fmt.Errorf("custom id %q may hold only letters, digits, '_' and '-'", id)
		}
	}
	return nil
}
