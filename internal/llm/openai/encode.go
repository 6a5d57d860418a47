package openai

import (
	"encoding/json"
	"strconv"

	"github.com/hive-swarm/hive/internal/jsonstr"
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
	b = jsonstr.Append(b, r.Model, false)
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
			b = jsonstr.Append(b, t.Type, false)
			b = append(b, `,"function":`...)
			b = append(b, t.Function...) // compact JSON made by toolJSON
			b = append(b, '}')
		}
		b = append(b, ']')
	}
	switch c := r.ToolChoice.(type) {
	case toolMode:
		b = append(b, `,"tool_choice":`...)
		b = jsonstr.Append(b, string(c), false)
	case namedTool:
		b = append(b, `,"tool_choice":{"type":`...)
		b = jsonstr.Append(b, c.Type, false)
		b = append(b, `,"function":{"name":`...)
		b = jsonstr.Append(b, c.Function.Name, false)
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
			b = jsonstr.Append(b, s, false)
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
	if r.PromptCacheKey != "" {
		b = append(b, `,"prompt_cache_key":`...)
		b = jsonstr.Append(b, r.PromptCacheKey, false)
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
	b = jsonstr.Append(b, m.Role, false)
	switch c := m.Content.(type) {
	case textContent:
		b = append(b, `,"content":`...)
		b = jsonstr.Append(b, string(c), false)
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
			b = jsonstr.Append(b, p.Type, false)
			if p.Text != "" {
				b = append(b, `,"text":`...)
				b = jsonstr.Append(b, p.Text, false)
			}
			if p.ImageURL != nil {
				b = append(b, `,"image_url":{"url":`...)
				b = jsonstr.Append(b, p.ImageURL.URL, false)
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
			b = jsonstr.Append(b, tc.ID, false)
			b = append(b, `,"type":`...)
			b = jsonstr.Append(b, tc.Type, false)
			b = append(b, `,"function":{"name":`...)
			b = jsonstr.Append(b, tc.Function.Name, false)
			b = append(b, `,"arguments":`...)
			b = jsonstr.Append(b, tc.Function.Arguments, false)
			b = append(b, "}}"...)
		}
		b = append(b, ']')
	}
	if m.ToolCallID != "" {
		b = append(b, `,"tool_call_id":`...)
		b = jsonstr.Append(b, m.ToolCallID, false)
	}
	return append(b, '}')
}
