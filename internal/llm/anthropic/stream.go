package anthropic

import (
	"encoding/json"
	"fmt"
	"strings"

	sdk "github.com/anthropics/anthropic-sdk-go"

	"github.com/hive-swarm/hive/internal/llm"
)

// assembler builds a response from stream events, passing the pieces on
// as deltas.
type assembler struct {
	resp    llm.Response
	blocks  []*block // by event index
	calls   int      // tool calls started
	stopped bool     // message_stop arrived
}

// block is a content block being streamed.
type block struct {
	typ   string // text, tool_use, or another type that is skipped
	call  int    // index among the tool calls
	id    string
	name  string
	start json.RawMessage // the input that content_block_start carried
	buf   strings.Builder
	done  bool
}

func (a *assembler) add(ev sdk.MessageStreamEventUnion, fn func(llm.Delta)) error {
	switch ev.Type {
	case "message_start":
		msg := ev.Message
		a.resp.ID = msg.ID
		a.resp.Model = string(msg.Model)
		a.resp.Usage = llm.Usage{
			InputTokens:        msg.Usage.InputTokens,
			OutputTokens:       msg.Usage.OutputTokens,
			CacheWriteTokens:   msg.Usage.CacheCreationInputTokens,
			CacheReadTokens:    msg.Usage.CacheReadInputTokens,
			CacheWrite1hTokens: msg.Usage.CacheCreation.Ephemeral1hInputTokens,
		}
	case "content_block_start":
		if ev.Index != int64(len(a.blocks)) {
			return fmt.Errorf("stream started block %d, expected %d", ev.Index, len(a.blocks))
		}
		cb := ev.ContentBlock
		b := &block{typ: cb.Type, id: cb.ID, name: cb.Name}
		a.blocks = append(a.blocks, b)
		switch cb.Type {
		case "text":
			if cb.Text != "" {
				b.buf.WriteString(cb.Text)
				emit(fn, llm.Delta{Text: cb.Text})
			}
		case "tool_use":
			b.call = a.calls
			a.calls++
			if in, err := json.Marshal(cb.Input); err == nil && cb.Input != nil {
				b.start = in
			}
			emit(fn, llm.Delta{ToolCall: &llm.ToolCallDelta{Index: b.call, ID: b.id, Name: b.name}})
		}
	case "content_block_delta":
		b, err := a.block(ev)
		if err != nil {
			return err
		}
		switch {
		case ev.Delta.Type == "text_delta" && b.typ == "text":
			b.buf.WriteString(ev.Delta.Text)
			emit(fn, llm.Delta{Text: ev.Delta.Text})
		case ev.Delta.Type == "input_json_delta" && b.typ == "tool_use":
			b.buf.WriteString(ev.Delta.PartialJSON)
			if ev.Delta.PartialJSON != "" {
				emit(fn, llm.Delta{ToolCall: &llm.ToolCallDelta{Index: b.call, Input: ev.Delta.PartialJSON}})
			}
		}
	case "content_block_stop":
		b, err := a.block(ev)
		if err != nil {
			return err
		}
		b.done = true
	case "message_delta":
		a.resp.StopReason = stopReason(ev.Delta.StopReason)
		u := ev.Usage
		a.resp.Usage.OutputTokens = u.OutputTokens
		// Newer API versions repeat the input counts here; they are
		// cumulative, so they replace those of message_start.
		if u.JSON.InputTokens.Valid() {
			a.resp.Usage.InputTokens = u.InputTokens
		}
		if u.JSON.CacheCreationInputTokens.Valid() {
			a.resp.Usage.CacheWriteTokens = u.CacheCreationInputTokens
		}
		if u.JSON.CacheReadInputTokens.Valid() {
			a.resp.Usage.CacheReadTokens = u.CacheReadInputTokens
		}
	case "message_stop":
		a.stopped = true
	}
	return nil
}

func (a *assembler) block(ev sdk.MessageStreamEventUnion) (*block, error) {
	if ev.Index < 0 || ev.Index >= int64(len(a.blocks)) {
		return nil, fmt.Errorf("stream sent %s for block %d, which never started", ev.Type, ev.Index)
	}
	return a.blocks[ev.Index], nil
}

// response returns the assembled response.
func (a *assembler) response() *llm.Response {
	r := a.resp
	for _, b := range a.blocks {
		switch b.typ {
		case "text":
			if b.buf.Len() > 0 {
				r.Parts = append(r.Parts, llm.Text{Text: b.buf.String()})
			}
		case "tool_use":
			in := json.RawMessage(b.buf.String())
			if len(in) == 0 {
				in = b.start
			}
			if len(in) == 0 {
				in = json.RawMessage(`{}`)
			}
			r.Parts = append(r.Parts, llm.ToolCall{ID: b.id, Name: b.name, Input: in})
		}
	}
	return &r
}

func emit(fn func(llm.Delta), d llm.Delta) {
	if fn != nil {
		fn(d)
	}
}
