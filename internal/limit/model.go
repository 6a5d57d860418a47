package limit

import (
	"context"
	"sync/atomic"

	"github.com/hive-swarm/hive/internal/llm"
)

// Wrap returns a [llm.Model] that sends every call of m through l at
// priority p, so that callers keep using a plain model. Each call is
// charged an estimate of its tokens (see [EstimateTokens]) and corrected
// with the usage the response reports.
//
// Stream is retried only while no delta has reached fn: once the caller has
// seen partial output, a failure is returned as it is, whatever its kind,
// since sending the request again would replay output the caller already
// consumed. The limiter still learns from it (a 429 mid-stream cuts the
// limit and honours its retry-after).
func (l *Limiter) Wrap(m llm.Model, p Priority) llm.Model {
	return &model{l: l, m: m, p: p}
}

type model struct {
	l *Limiter
	m llm.Model
	p Priority
}

func (w *model) Generate(ctx context.Context, req *llm.Request) (*llm.Response, error) {
	var resp *llm.Response
	err := w.l.Do(ctx, w.p, EstimateTokens(req), func(ctx context.Context) (int64, error) {
		r, err := w.m.Generate(ctx, req)
		if err != nil {
			return 0, err
		}
		resp = r
		return w.tokens(r.Usage), nil
	})
	if err != nil {
		return nil, err
	}
	return resp, nil
}

// tokens is what a call's usage counts against the tokens per minute.
func (w *model) tokens(u llm.Usage) int64 {
	if w.l.cfg.CacheReadsFree {
		return u.Total() - u.CacheReadTokens
	}
	return u.Total()
}

func (w *model) Stream(ctx context.Context, req *llm.Request, fn func(llm.Delta)) (*llm.Response, error) {
	var resp *llm.Response
	var delivered atomic.Bool // the adapter may call fn from its own goroutine
	deliver := func(d llm.Delta) {
		delivered.Store(true)
		if fn != nil {
			fn(d)
		}
	}
	err := w.l.Do(ctx, w.p, EstimateTokens(req), func(ctx context.Context) (int64, error) {
		r, err := w.m.Stream(ctx, req, deliver)
		if err != nil {
			var used int64
			if r != nil {
				used = w.tokens(r.Usage)
			}
			if delivered.Load() {
				return used, &final{err: err}
			}
			return used, err
		}
		resp = r
		return w.tokens(r.Usage), nil
	})
	if err != nil {
		return nil, err
	}
	return resp, nil
}

// defaultMaxTokens is the output assumed for a request that sets no
// MaxTokens.
const defaultMaxTokens = 4096

// imageTokens is the charge of one image, about what providers bill for a
// megapixel.
const imageTokens = 1600

// EstimateTokens returns a cheap upper-ish estimate of the tokens req will
// use: about four bytes a token of its system prompt, messages and tool
// definitions, plus its output cap.
func EstimateTokens(req *llm.Request) int64 {
	n := len(req.System)
	var images int64
	for _, m := range req.Messages {
		for _, part := range m.Parts {
			switch x := part.(type) {
			case llm.Text:
				n += len(x.Text)
			case llm.ToolCall:
				n += len(x.Name) + len(x.Input)
			case llm.ToolResult:
				n += len(x.Content)
			case llm.Image:
				images++
			}
		}
	}
	for _, t := range req.Tools {
		n += len(t.Name) + len(t.Description) + len(t.Schema)
	}
	out := req.MaxTokens
	if out <= 0 {
		out = defaultMaxTokens
	}
	return int64(n/4+1) + images*imageTokens + int64(out)
}
