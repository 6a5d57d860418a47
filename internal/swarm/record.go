package swarm

import (
	"encoding/json"
	"fmt"

	"github.com/hive-swarm/hive/internal/llm"
)

// callRecord is a finished model call as journaled: enough to replay the
// conversation and the bill without calling the model again.
type callRecord struct {
	Parts     []partRecord   `json:"parts"`
	Stop      llm.StopReason `json:"stop"`
	Usage     llm.Usage      `json:"usage"`
	CostNanos int64          `json:"cost_nanos"`
	// Exhausted, when set, says the budget refused the call: it was not sent.
	Exhausted string `json:"exhausted,omitempty"`
	// Anomaly, when set, says the server's bill could not be true (more
	// than the request's worst case); Usage and CostNanos were capped.
	Anomaly string `json:"anomaly,omitempty"`
	// WaitMillis is the time the call waited for the model's rate limits
	// (admission, a 429's retry-after, backoff); Retries how many times it
	// was sent again.
	WaitMillis int64 `json:"wait_ms,omitempty"`
	Retries    int   `json:"retries,omitempty"`
	// Hedge, when set, is the call's second copy (see agent.hedged).
	Hedge *hedgeRecord `json:"hedge,omitempty"`
	// Batch marks a call sent through a batch API, billed at its price.
	Batch bool `json:"batch,omitempty"`
	// Model is the model id the provider said answered, if it said.
	Model string `json:"model,omitempty"`
}

// partRecord is the JSON form of an llm.Part.
type partRecord struct {
	Type  string          `json:"type"` // text, tool_call
	Text  string          `json:"text,omitempty"`
	ID    string          `json:"id,omitempty"`
	Name  string          `json:"name,omitempty"`
	Input json.RawMessage `json:"input,omitempty"`
}

func recordResponse(r *llm.Response, cost int64) callRecord {
	rec := callRecord{Stop: r.StopReason, Usage: r.Usage, CostNanos: cost, Model: r.Model}
	for _, p := range r.Parts {
		switch p := p.(type) {
		case llm.Text:
			rec.Parts = append(rec.Parts, partRecord{Type: "text", Text: p.Text})
		case llm.ToolCall:
			in := p.Input
			if !json.Valid(in) {
				// Keep malformed arguments as a JSON string so the record
				// stays valid JSON; response() restores the raw bytes.
				b, _ := json.Marshal(string(in))
				rec.Parts = append(rec.Parts, partRecord{Type: "tool_call_raw", ID: p.ID, Name: p.Name, Input: b})
				continue
			}
			rec.Parts = append(rec.Parts, partRecord{Type: "tool_call", ID: p.ID, Name: p.Name, Input: in})
		}
	}
	return rec
}

func (rec callRecord) response() (*llm.Response, error) {
	r := &llm.Response{StopReason: rec.Stop, Usage: rec.Usage}
	for _, p := range rec.Parts {
		switch p.Type {
		case "text":
			r.Parts = append(r.Parts, llm.Text{Text: p.Text})
		case "tool_call":
			r.Parts = append(r.Parts, llm.ToolCall{ID: p.ID, Name: p.Name, Input: p.Input})
		case "tool_call_raw":
			var s string
			if err := json.Unmarshal(p.Input, &s); err != nil {
				return nil, fmt.Errorf("journaled call: %w", err)
			}
			r.Parts = append(r.Parts, llm.ToolCall{ID: p.ID, Name: p.Name, Input: json.RawMessage(s)})
		default:
			return nil, fmt.Errorf("journaled call: unknown part type %q", p.Type)
		}
	}
	return r, nil
}

// requestBytes bounds the prompt's size: no tokenizer makes more tokens
// than a text has bytes, so it is a worst case for the input tokens.
func requestBytes(req *llm.Request) int64 {
	n := int64(len(req.System))
	for _, t := range req.Tools {
		n += int64(len(t.Name) + len(t.Description) + len(t.Schema))
	}
	for _, m := range req.Messages {
		n += 16 // role and framing tokens
		for _, p := range m.Parts {
			switch p := p.(type) {
			case llm.Text:
				n += int64(len(p.Text))
			case llm.ToolCall:
				n += int64(len(p.ID) + len(p.Name) + len(p.Input) + 16)
			case llm.ToolResult:
				n += int64(len(p.CallID) + len(p.Content) + 16)
			case llm.Image:
				n += 2000 // providers bill an image at a bounded token count
			}
		}
	}
	if len(req.Tools) > 0 {
		n += 1024 // providers wrap tool definitions in a prompt of their own
	}
	return n + 64
}
