package swarm

import (
	"context"
	"encoding/json"
	"errors"

	"github.com/hive-swarm/hive/internal/jsonstr"
	"github.com/hive-swarm/hive/internal/llm"
)

// MessageView is one message of a node's conversation as the web view and
// the API show it.
type MessageView struct {
	Role  string     `json:"role"` // system, user, assistant
	Parts []PartView `json:"parts"`
}

// PartView is one part of a message.
type PartView struct {
	Type    string          `json:"type"` // text, tool_call, tool_result, image
	Text    string          `json:"text,omitempty"`
	ID      string          `json:"id,omitempty"`   // tool call id, or the call a result answers
	Name    string          `json:"name,omitempty"` // tool name
	Input   json.RawMessage `json:"input,omitempty"`
	IsError bool            `json:"is_error,omitempty"`
}

// conversationJSON returns a node's conversation (its system prompt and
// messages) as the []MessageView that [Engine.Conversation] reads, written
// directly: every worker journals its conversation after each turn, and
// reflection made that a visible share of a swarm's CPU.
func conversationJSON(system string, msgs []llm.Message) []byte {
	n := 64 + len(system)
	for _, m := range msgs {
		for _, p := range m.Parts {
			n += 64
			switch p := p.(type) {
			case llm.Text:
				n += len(p.Text)
			case llm.ToolCall:
				n += len(p.ID) + len(p.Name) + len(p.Input)
			case llm.ToolResult:
				n += len(p.CallID) + len(p.Content)
			case llm.Image:
				n += len(p.URL)
			}
		}
	}
	b := make([]byte, 0, n)
	b = append(b, '[')
	if system != "" {
		b = append(b, `{"role":"system","parts":[{"type":"text","text":`...)
		b = jsonstr.Append(b, system, true)
		b = append(b, "}]}"...)
	}
	for i, m := range msgs {
		if i > 0 || system != "" {
			b = append(b, ',')
		}
		b = append(b, `{"role":`...)
		b = jsonstr.Append(b, string(m.Role), true)
		b = append(b, `,"parts":`...)
		first := true
		for _, p := range m.Parts {
			switch p.(type) {
			case llm.Text, llm.ToolCall, llm.ToolResult, llm.Image:
			default:
				continue
			}
			if first {
				b = append(b, '[')
				first = false
			} else {
				b = append(b, ',')
			}
			switch p := p.(type) {
			case llm.Text:
				b = append(b, `{"type":"text"`...)
				b = appendField(b, "text", p.Text)
			case llm.ToolCall:
				b = append(b, `{"type":"tool_call"`...)
				b = appendField(b, "id", p.ID)
				b = appendField(b, "name", p.Name)
				b = append(b, `,"input":`...)
				if json.Valid(p.Input) {
					b = append(b, p.Input...)
				} else {
					b = jsonstr.Append(b, string(p.Input), true) // shown as text
				}
			case llm.ToolResult:
				b = append(b, `{"type":"tool_result"`...)
				b = appendField(b, "text", p.Content)
				b = appendField(b, "id", p.CallID)
				if p.IsError {
					b = append(b, `,"is_error":true`...)
				}
			case llm.Image:
				b = append(b, `{"type":"image"`...)
				b = appendField(b, "text", p.URL)
			}
			b = append(b, '}')
		}
		if first {
			b = append(b, "null"...)
		} else {
			b = append(b, ']')
		}
		b = append(b, '}')
	}
	return append(b, ']')
}

// ErrNoConversation is returned for a node with no journaled conversation
// (it has not finished a turn yet, or it is not a model conversation).
var ErrNoConversation = errors.New("no conversation journaled for this node yet")

// Conversation returns a node's conversation as last journaled: the system
// prompt, the task, every answer and every tool result.
func (e *Engine) Conversation(ctx context.Context, runID, nodeID string) ([]MessageView, error) {
	if err := e.store.Flush(ctx); err != nil {
		return nil, err
	}
	data, ok, err := e.store.Step(ctx, runID, nodeID+"/conversation")
	if err != nil {
		return nil, err
	}
	if !ok {
		return nil, ErrNoConversation
	}
	var out []MessageView
	if err := json.Unmarshal(data, &out); err != nil {
		return nil, err
	}
	return out, nil
}
