package openai

import (
	"encoding/json"
	"strconv"
	"unicode/utf8"
)

// encode returns r as JSON, written directly: the same bytes encoding/json
// writes with HTML escaping off (HTML characters stay as they are, since
// escaping them only makes prompts with code in them longer). A swarm
// sends a request per worker turn, and reflection, with the re-validation
// of every cached tool definition it does, was most of the adapter's
// remaining CPU.
func (r *wireRequest) encode() ([]byte, error) {
	n := 256 + len(r.Model)
	for _, m := range r.Messages {
		n += 64 + m.size()
	}
	for _, t := range r.Tools {
		n += 32 + len(t.Function)
	}
	b := make([]byte, 0, n)
	b = append(b, `{"model":`...)
	b = appendString(b, r.Model)
	b = append(b, `,"messages":`...)
	if r.Messages == nil {
		b = append(b, "null"...)
	} else {
		b = append(b, '[')
		for i := range r.Messages {
			if i > 0 {
				b = append(b, ',')
			}
			b = r.Messages[i].append(b)
		}
		b = append(b, ']')
	}
	if len(r.Tools) > 0 {
		b = append(b, `,"tools":[`...)
		for i, t := range r.Tools {
			if i > 0 {
				b = append(b, ',')
			}
			b = append(b, `{"type":`...)
			b = appendString(b, t.Type)
			b = append(b, `,"function":`...)
			b = append(b, t.Function...) // compact JSON made by toolJSON
			b = append(b, '}')
		}
		b = append(b, ']')
	}
	switch c := r.ToolChoice.(type) {
	case toolMode:
		b = append(b, `,"tool_choice":`...)
		b = appendString(b, string(c))
	case namedTool:
		b = append(b, `,"tool_choice":{"type":`...)
		b = appendString(b, c.Type)
		b = append(b, `,"function":{"name":`...)
		b = appendString(b, c.Function.Name)
		b = append(b, "}}"...)
	}
	if r.ParallelToolCalls != nil {
		b = append(b, `,"parallel_tool_calls":`...)
		b = strconv.AppendBool(b, *r.ParallelToolCalls)
	}
	if r.MaxTokens != 0 {
		b = append(b, `,"max_tokens":`...)
		b = strconv.AppendInt(b, int64(r.MaxTokens), 10)
	}
	if r.MaxCompletionTokens != 0 {
		b = append(b, `,"max_completion_tokens":`...)
		b = strconv.AppendInt(b, int64(r.MaxCompletionTokens), 10)
	}
	if r.Temperature != nil {
		t, err := json.Marshal(*r.Temperature) // JSON's float format, and its error for NaN
		if err != nil {
			return nil, err
		}
		b = append(b, `,"temperature":`...)
		b = append(b, t...)
	}
	if len(r.Stop) > 0 {
		b = append(b, `,"stop":[`...)
		for i, s := range r.Stop {
			if i > 0 {
				b = append(b, ',')
			}
			b = appendString(b, s)
		}
		b = append(b, ']')
	}
	if r.Stream {
		b = append(b, `,"stream":true`...)
	}
	if r.StreamOptions != nil {
		b = append(b, `,"stream_options":{"include_usage":`...)
		b = strconv.AppendBool(b, r.StreamOptions.IncludeUsage)
		b = append(b, '}')
	}
	return append(b, '}'), nil
}

// size estimates m's encoded length.
func (m *wireMessage) size() int {
	n := len(m.ToolCallID)
	switch c := m.Content.(type) {
	case textContent:
		n += len(c)
	case partsContent:
		for _, p := range c {
			n += 48 + len(p.Text)
			if p.ImageURL != nil {
				n += len(p.ImageURL.URL)
			}
		}
	}
	for _, tc := range m.ToolCalls {
		n += 64 + len(tc.ID) + len(tc.Function.Name) + len(tc.Function.Arguments)
	}
	return n
}

func (m *wireMessage) append(b []byte) []byte {
	b = append(b, `{"role":`...)
	b = appendString(b, m.Role)
	switch c := m.Content.(type) {
	case textContent:
		b = append(b, `,"content":`...)
		b = appendString(b, string(c))
	case partsContent:
		b = append(b, `,"content":`...)
		if c == nil {
			b = append(b, "null"...)
			break
		}
		b = append(b, '[')
		for i, p := range c {
			if i > 0 {
				b = append(b, ',')
			}
			b = append(b, `{"type":`...)
			b = appendString(b, p.Type)
			if p.Text != "" {
				b = append(b, `,"text":`...)
				b = appendString(b, p.Text)
			}
			if p.ImageURL != nil {
				b = append(b, `,"image_url":{"url":`...)
				b = appendString(b, p.ImageURL.URL)
				b = append(b, '}')
			}
			b = append(b, '}')
		}
		b = append(b, ']')
	}
	if len(m.ToolCalls) > 0 {
		b = append(b, `,"tool_calls":[`...)
		for i, tc := range m.ToolCalls {
			if i > 0 {
				b = append(b, ',')
			}
			b = append(b, `{"id":`...)
			b = appendString(b, tc.ID)
			b = append(b, `,"type":`...)
			b = appendString(b, tc.Type)
			b = append(b, `,"function":{"name":`...)
			b = appendString(b, tc.Function.Name)
			b = append(b, `,"arguments":`...)
			b = appendString(b, tc.Function.Arguments)
			b = append(b, "}}"...)
		}
		b = append(b, ']')
	}
	if m.ToolCallID != "" {
		b = append(b, `,"tool_call_id":`...)
		b = appendString(b, m.ToolCallID)
	}
	return append(b, '}')
}

const hexDigits = "0123456789abcdef"

// appendString appends s as a JSON string the way encoding/json writes it
// with HTML escaping off: invalid UTF-8 becomes U+FFFD, and U+2028 and
// U+2029 are escaped, for JavaScript's sake.
func appendString(b []byte, s string) []byte {
	b = append(b, '"')
	start := 0
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			if c >= 0x20 && c != '"' && c != '\\' {
				i++
				continue
			}
			b = append(b, s[start:i]...)
			switch c {
			case '"', '\\':
				b = append(b, '\\', c)
			case '\b':
				b = append(b, '\\', 'b')
			case '\f':
				b = append(b, '\\', 'f')
			case '\n':
				b = append(b, '\\', 'n')
			case '\r':
				b = append(b, '\\', 'r')
			case '\t':
				b = append(b, '\\', 't')
			default:
				b = append(b, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xf])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			b = append(b, s[start:i]...)
			b = append(b, `\ufffd`...)
			i += size
			start = i
			continue
		}
		if r == '\u2028' || r == '\u2029' {
			b = append(b, s[start:i]...)
			b = append(b, '\\', 'u', '2', '0', '2', hexDigits[r&0xf])
			i += size
			start = i
			continue
		}
		i += size
	}
	b = append(b, s[start:]...)
	return append(b, '"')
}
