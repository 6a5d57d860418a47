package telemetry

import (
	"encoding/json"

	"github.com/hive-swarm/hive/internal/llm"
)

// Message content as the GenAI conventions write it on spans (JSON
// strings: gen_ai.input.messages, gen_ai.output.messages,
// gen_ai.system_instructions). Every text is redacted before it is
// encoded, and cut so that the attribute stays within MaxContent: each
// part to a quarter of it, then the oldest messages left out (a
// conversation's latest turns say most about the call), so that what is
// written is still JSON.

type part struct {
	Type      string          `json:"type"` // text, tool_call, tool_call_response, uri
	Content   string          `json:"content,omitempty"`
	ID        string          `json:"id,omitempty"`
	Name      string          `json:"name,omitempty"`
	Arguments json.RawMessage `json:"arguments,omitempty"`
	Response  string          `json:"response,omitempty"`
	URI       string          `json:"uri,omitempty"`
}

type message struct {
	Role         string `json:"role"`
	Parts        []part `json:"parts"`
	FinishReason string `json:"finish_reason,omitempty"`
}

// maxPart bounds one part's text.
const maxPart = MaxContent / 4

// content returns s redacted and cut to MaxContent.
func (t *Telemetry) content(s string) string {
	if len(s) > 4*MaxContent {
		s = s[:4*MaxContent] // the redactor's work stays bounded too
	}
	return cut(t.opts.Redact.String(s), MaxContent)
}

func (t *Telemetry) text(s string) string {
	return cut(t.opts.Redact.String(cut(s, 4*maxPart)), maxPart)
}

func (t *Telemetry) parts(ps []llm.Part) []part {
	out := make([]part, 0, len(ps))
	for _, p := range ps {
		switch p := p.(type) {
		case llm.Text:
			out = append(out, part{Type: "text", Content: t.text(p.Text)})
		case llm.ToolCall:
			q := part{Type: "tool_call", ID: cut(p.ID, MaxName), Name: cut(p.Name, MaxName)}
			if args := t.text(string(p.Input)); json.Valid([]byte(args)) {
				q.Arguments = json.RawMessage(args)
			} else {
				// Not JSON, or cut: as a string, which is JSON.
				b, _ := json.Marshal(args)
				q.Arguments = b
			}
			out = append(out, q)
		case llm.ToolResult:
			out = append(out, part{Type: "tool_call_response", ID: cut(p.CallID, MaxName), Response: t.text(p.Content)})
		case llm.Image:
			out = append(out, part{Type: "uri", URI: t.text(p.URL)})
		}
	}
	return out
}

// systemJSON is gen_ai.system_instructions for a system prompt.
func (t *Telemetry) systemJSON(system string) string {
	return encode([]part{{Type: "text", Content: t.text(system)}})
}

// inputJSON is gen_ai.input.messages for msgs: the latest of them that
// fit in MaxContent.
func (t *Telemetry) inputJSON(msgs []llm.Message) string {
	encoded := make([]string, 0, len(msgs))
	size := 2 // []
	for i := len(msgs) - 1; i >= 0; i-- {
		e := encode(message{Role: string(msgs[i].Role), Parts: t.parts(msgs[i].Parts)})
		if size+len(e)+1 > MaxContent {
			break
		}
		size += len(e) + 1
		encoded = append(encoded, e)
	}
	b := make([]byte, 0, size)
	b = append(b, '[')
	for i := len(encoded) - 1; i >= 0; i-- {
		b = append(b, encoded[i]...)
		if i > 0 {
			b = append(b, ',')
		}
	}
	return string(append(b, ']'))
}

// outputJSON is gen_ai.output.messages for an answer.
func (t *Telemetry) outputJSON(ps []llm.Part, stop llm.StopReason) string {
	m := message{Role: "assistant", Parts: t.parts(ps), FinishReason: finishReason(stop)}
	// Four parts of at most a quarter each and their framing may pass
	// MaxContent: drop the last parts until it fits.
	for {
		e := encode([]message{m})
		if len(e) <= MaxContent || len(m.Parts) == 0 {
			return e
		}
		m.Parts = m.Parts[:len(m.Parts)-1]
	}
}

// finishReason is the conventions' word for a stop reason.
func finishReason(s llm.StopReason) string {
	switch s {
	case llm.StopEnd, llm.StopSequence:
		return "stop"
	case llm.StopToolUse:
		return "tool_call"
	case llm.StopMaxTokens:
		return "length"
	case llm.StopContentLimit, llm.StopRefusal:
		return "content_filter"
	}
	return cut(string(s), MaxName)
}

func encode(v any) string {
	b, err := json.Marshal(v)
	if err != nil {
		return "[]" // cannot happen: strings and valid JSON only
	}
	return string(b)
}
