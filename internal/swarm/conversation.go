package swarm

import (
	"context"
	"encoding/json"
	"errors"

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

func conversation(system string, msgs []llm.Message) []MessageView {
	out := make([]MessageView, 0, len(msgs)+1)
	if system != "" {
		out = append(out, MessageView{Role: "system", Parts: []PartView{{Type: "text", Text: system}}})
	}
	for _, m := range msgs {
		v := MessageView{Role: string(m.Role)}
		for _, p := range m.Parts {
			switch p := p.(type) {
			case llm.Text:
				v.Parts = append(v.Parts, PartView{Type: "text", Text: p.Text})
			case llm.ToolCall:
				in := p.Input
				if !json.Valid(in) {
					in, _ = json.Marshal(string(in))
				}
				v.Parts = append(v.Parts, PartView{Type: "tool_call", ID: p.ID, Name: p.Name, Input: in})
			case llm.ToolResult:
				v.Parts = append(v.Parts, PartView{Type: "tool_result", ID: p.CallID, Text: p.Content, IsError: p.IsError})
			case llm.Image:
				v.Parts = append(v.Parts, PartView{Type: "image", Text: p.URL})
			}
		}
		out = append(out, v)
	}
	return out
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
