package openai

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"strings"

	"github.com/openai/openai-go/v3"
	"github.com/openai/openai-go/v3/packages/ssestream"

	"github.com/hive-swarm/hive/internal/llm"
)

// Stream sends req as a streaming call with usage included, calls fn (when
// not nil) for each text or tool-call delta in the caller's goroutine, and
// returns the assembled response. A stream is complete only when it has
// carried a finish_reason and ended with [DONE]; anything less is a
// KindTransient "stream ended early", never a partial answer.
func (m *Model) Stream(ctx context.Context, req *llm.Request, fn func(llm.Delta)) (*llm.Response, error) {
	body, err := m.body(req, true)
	if err != nil {
		return nil, err
	}
	res, err := m.send(ctx, body)
	if err != nil {
		return nil, err
	}
	defer res.Body.Close()
	if ct := res.Header.Get("Content-Type"); !strings.Contains(strings.ToLower(ct), "text/event-stream") {
		if !isJSON(ct) {
			return nil, m.errorf(llm.KindTransient, res.StatusCode, "server did not answer JSON (content type %q)", ct)
		}
		body, _ := io.ReadAll(io.LimitReader(res.Body, maxErrorBody))
		if e := bodyError(body); e != nil {
			return nil, m.apiError(res.StatusCode, res.Header, e)
		}
		return nil, m.errorf(llm.KindTransient, res.StatusCode, "server answered a streaming request with a body of %d bytes (content type %q), not an event stream", len(body), ct)
	}
	res.Body = llm.CapBody(res.Body, maxBody)
	dec := ssestream.NewDecoder(res)
	defer dec.Close()

	var a assembler
	done := false
	for !done && dec.Next() {
		data := bytes.TrimSpace(dec.Event().Data)
		switch {
		case len(data) == 0:
			continue
		case string(data) == "[DONE]":
			done = true
			continue
		}
		if !json.Valid(data) {
			return nil, m.errorf(llm.KindTransient, res.StatusCode, "server did not answer JSON: malformed event of %d bytes", len(data))
		}
		if e := bodyError(data); e != nil {
			// An error sent inside the stream, after the 200.
			return nil, m.apiError(0, nil, e)
		}
		var chunk openai.ChatCompletionChunk
		if err := json.Unmarshal(data, &chunk); err != nil {
			return nil, m.errorf(llm.KindTransient, res.StatusCode, "server sent an event that is not a chat completion chunk: %v", err)
		}
		a.add(&chunk, fn)
	}
	if ctx.Err() != nil {
		return nil, m.cancelled(ctx)
	}
	if err := dec.Err(); err != nil {
		return nil, m.wireError(ctx, res.StatusCode, "stream broke", err)
	}
	if !done || a.finish == "" {
		return nil, m.errorf(llm.KindTransient, res.StatusCode, "stream ended early: %d events and no %s", a.events, a.missing(done))
	}
	return a.response(), nil
}

// assembler builds a response from stream chunks.
type assembler struct {
	events int
	id     string
	model  string
	text   strings.Builder
	calls  []*partialCall
	byIdx  map[int64]*partialCall // by the server's tool call index
	finish string
	usage  llm.Usage
}

type partialCall struct {
	pos      int // position among the response's tool calls
	id, name string
	args     strings.Builder
}

func (a *assembler) add(ch *openai.ChatCompletionChunk, fn func(llm.Delta)) {
	a.events++
	if a.id == "" {
		a.id = ch.ID
	}
	if a.model == "" {
		a.model = ch.Model
	}
	if ch.JSON.Usage.Valid() {
		a.usage = streamUsage(ch.Usage)
	}
	for _, c := range ch.Choices {
		if c.Index != 0 {
			continue // only the first choice is asked for
		}
		d := c.Delta
		if d.Content != "" {
			a.text.WriteString(d.Content)
			if fn != nil {
				fn(llm.Delta{Text: d.Content})
			}
		}
		for _, tc := range d.ToolCalls {
			pc := a.byIdx[tc.Index]
			first := pc == nil
			if first {
				pc = &partialCall{pos: len(a.calls)}
				if a.byIdx == nil {
					a.byIdx = map[int64]*partialCall{}
				}
				a.byIdx[tc.Index] = pc
				a.calls = append(a.calls, pc)
			}
			if tc.ID != "" {
				pc.id = tc.ID
			}
			if pc.name == "" {
				pc.name = tc.Function.Name
			}
			pc.args.WriteString(tc.Function.Arguments)
			if fn != nil && (first || tc.Function.Arguments != "") {
				fn(llm.Delta{ToolCall: &llm.ToolCallDelta{Index: pc.pos, ID: tc.ID, Name: tc.Function.Name, Input: tc.Function.Arguments}})
			}
		}
		if c.FinishReason != "" {
			a.finish = c.FinishReason
		}
	}
}

// missing says what a cut stream lacked.
func (a *assembler) missing(done bool) string {
	switch {
	case a.finish == "" && !done:
		return "finish_reason or [DONE]"
	case a.finish == "":
		return "finish_reason"
	}
	return "[DONE]"
}

func (a *assembler) response() *llm.Response {
	out := &llm.Response{ID: a.id, Model: a.model, StopReason: stopReason(a.finish), Usage: a.usage}
	if a.text.Len() > 0 {
		out.Parts = append(out.Parts, llm.Text{Text: a.text.String()})
	}
	for _, c := range a.calls {
		out.Parts = append(out.Parts, llm.ToolCall{ID: c.id, Name: c.name, Input: arguments(c.args.String())})
	}
	return out
}

// streamUsage converts the usage of a stream's last chunk.
func streamUsage(u openai.CompletionUsage) llm.Usage {
	var w wireUsage
	w.PromptTokens = wireCount(u.PromptTokens)
	w.CompletionTokens = wireCount(u.CompletionTokens)
	w.PromptTokensDetails.CachedTokens = wireCount(u.PromptTokensDetails.CachedTokens)
	w.PromptTokensDetails.CacheWriteTokens = wireCount(u.PromptTokensDetails.CacheWriteTokens)
	return w.hive()
}
