package llmtest

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"sync/atomic"
	"time"
	"unicode/utf8"

	"github.com/hive-swarm/hive/internal/llm"
)

// NewOpenAI starts a server that speaks OpenAI's Chat Completions protocol
// at POST /v1/chat/completions, answering with h. An SDK's base URL is
// srv.URL + "/v1". Close it when done.
//
// Usage is written the OpenAI way: prompt_tokens counts every input token,
// cached or not (InputTokens + CacheReadTokens + CacheWriteTokens), with
// prompt_tokens_details.cached_tokens = CacheReadTokens and
// prompt_tokens_details.cache_write_tokens = CacheWriteTokens.
func NewOpenAI(h Handler) *Server {
	return newServer(&openAI{dialect: dialectOpenAI}, h)
}

// openAI is the Chat Completions wire protocol, as dialect speaks it.
type openAI struct {
	dialect dialect
	ids     atomic.Int64
}

func (*openAI) path() string { return "/v1/chat/completions" }

func (*openAI) authorized(r *http.Request, key string) bool {
	return r.Header.Get("Authorization") == "Bearer "+key
}

// oaRequest is the part of a chat completion request the server reads.
type oaRequest struct {
	Model               string          `json:"model"`
	Messages            []oaMessage     `json:"messages"`
	Tools               []oaTool        `json:"tools"`
	ToolChoice          json.RawMessage `json:"tool_choice"`
	Stream              bool            `json:"stream"`
	MaxTokens           *int            `json:"max_tokens"`
	MaxCompletionTokens *int            `json:"max_completion_tokens"`
	StreamOptions       *struct {
		IncludeUsage bool `json:"include_usage"`
	} `json:"stream_options"`
}

type oaMessage struct {
	Role       string          `json:"role"`
	Content    json.RawMessage `json:"content"`
	ToolCalls  []oaToolCall    `json:"tool_calls"`
	ToolCallID string          `json:"tool_call_id"`
}

type oaTool struct {
	Type     string `json:"type"`
	Function struct {
		Name string `json:"name"`
	} `json:"function"`
}

type oaToolCall struct {
	Index    *int   `json:"index,omitempty"`
	ID       string `json:"id,omitempty"`
	Type     string `json:"type,omitempty"`
	Function struct {
		Name      string `json:"name,omitempty"`
		Arguments string `json:"arguments"`
	} `json:"function"`
}

type oaContentPart struct {
	Type     string `json:"type"`
	Text     string `json:"text"`
	ImageURL struct {
		URL string `json:"url"`
	} `json:"image_url"`
}

func (p *openAI) parse(body []byte, c *Call) error {
	var req oaRequest
	if err := json.Unmarshal(body, &req); err != nil {
		return fmt.Errorf("invalid JSON body: %v", err)
	}
	if req.Model == "" {
		return errors.New("you must provide a model parameter")
	}
	if len(req.Messages) == 0 {
		return errors.New("'messages' must contain at least one message")
	}
	c.Model = req.Model
	c.Stream = req.Stream
	switch {
	case req.MaxCompletionTokens != nil:
		c.MaxTokens = *req.MaxCompletionTokens
	case req.MaxTokens != nil:
		c.MaxTokens = *req.MaxTokens
	}
	for _, t := range req.Tools {
		c.Tools = append(c.Tools, t.Function.Name)
	}
	if err := p.dialect.toolChoice(req.ToolChoice, c); err != nil {
		return err
	}
	var system []string
	for i, m := range req.Messages {
		switch m.Role {
		case "system", "developer":
			parts, err := oaParts(m.Content)
			if err != nil {
				return fmt.Errorf("messages[%d]: %v", i, err)
			}
			system = append(system, llm.Message{Parts: parts}.Text())
		case "user":
			parts, err := oaParts(m.Content)
			if err != nil {
				return fmt.Errorf("messages[%d]: %v", i, err)
			}
			c.Messages = append(c.Messages, llm.Message{Role: llm.RoleUser, Parts: parts})
		case "assistant":
			parts, err := oaParts(m.Content)
			if err != nil {
				return fmt.Errorf("messages[%d]: %v", i, err)
			}
			for _, tc := range m.ToolCalls {
				parts = append(parts, llm.ToolCall{ID: tc.ID, Name: tc.Function.Name, Input: json.RawMessage(tc.Function.Arguments)})
			}
			c.Messages = append(c.Messages, llm.Message{Role: llm.RoleAssistant, Parts: parts})
		case "tool":
			parts, err := oaParts(m.Content)
			if err != nil {
				return fmt.Errorf("messages[%d]: %v", i, err)
			}
			res := llm.ToolResult{CallID: m.ToolCallID, Content: llm.Message{Parts: parts}.Text()}
			// Consecutive tool messages answer one assistant turn: they
			// become one user message, as in the neutral model.
			if n := len(c.Messages); n > 0 && c.Messages[n-1].Role == llm.RoleUser && i > 0 && req.Messages[i-1].Role == "tool" {
				c.Messages[n-1].Parts = append(c.Messages[n-1].Parts, res)
			} else {
				c.Messages = append(c.Messages, llm.Message{Role: llm.RoleUser, Parts: []llm.Part{res}})
			}
		default:
			return fmt.Errorf("messages[%d]: unknown role %q", i, m.Role)
		}
	}
	c.System = strings.Join(system, "\n\n")
	return nil
}

// oaParts decodes message content: null, a string, or an array of parts.
func oaParts(raw json.RawMessage) ([]llm.Part, error) {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 || string(raw) == "null" {
		return nil, nil
	}
	if raw[0] == '"' {
		var s string
		if err := json.Unmarshal(raw, &s); err != nil {
			return nil, err
		}
		return []llm.Part{llm.Text{Text: s}}, nil
	}
	var arr []oaContentPart
	if err := json.Unmarshal(raw, &arr); err != nil {
		return nil, fmt.Errorf("content must be a string or an array of parts: %v", err)
	}
	var parts []llm.Part
	for _, p := range arr {
		switch p.Type {
		case "text":
			parts = append(parts, llm.Text{Text: p.Text})
		case "image_url":
			img, err := oaImage(p.ImageURL.URL)
			if err != nil {
				return nil, err
			}
			parts = append(parts, img)
		default:
			return nil, fmt.Errorf("unsupported content part type %q", p.Type)
		}
	}
	return parts, nil
}

// oaImage reads an image_url: a data: URL carries the image inline.
func oaImage(u string) (llm.Image, error) {
	rest, ok := strings.CutPrefix(u, "data:")
	if !ok {
		return llm.Image{URL: u}, nil
	}
	meta, data, ok := strings.Cut(rest, ",")
	mediaType, isBase64 := strings.CutSuffix(meta, ";base64")
	if !ok || !isBase64 {
		return llm.Image{}, errors.New("image data URL must be base64")
	}
	b, err := base64.StdEncoding.DecodeString(data)
	if err != nil {
		return llm.Image{}, fmt.Errorf("image data URL: %v", err)
	}
	return llm.Image{MediaType: mediaType, Data: b}, nil
}

func (p *openAI) writeError(w http.ResponseWriter, status int, errType, message string) {
	if p.dialect != dialectOpenAI {
		p.dialect.writeError(w, status, errType, message)
		return
	}
	var code any // JSON null unless known
	typ := errType
	if message == "" {
		message = "The server had an error while processing your request (HTTP " + fmt.Sprint(status) + ")."
		if status == 529 {
			message = "The server is overloaded."
		}
	}
	switch {
	case llm.StatusKind(status, errType, message) == llm.KindContextTooLong:
		typ, code = "invalid_request_error", "context_length_exceeded"
	case status == http.StatusTooManyRequests:
		typ, code = "requests", "rate_limit_exceeded"
	case status == http.StatusUnauthorized:
		typ, code = "invalid_request_error", "invalid_api_key"
	case status == 529 || errType == "overloaded_error":
		typ, code = "server_error", "engine_overloaded"
	case status >= 500:
		typ = "server_error"
	case errType == defaultErrorType(status):
		// Anthropic's names for 4xx become OpenAI's.
		typ = "invalid_request_error"
	}
	body := map[string]any{"error": map[string]any{
		"message": message,
		"type":    typ,
		"param":   nil,
		"code":    code,
	}}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(body)
}

// oaFinish is the finish_reason for a stop reason.
func oaFinish(r llm.StopReason) string {
	switch r {
	case llm.StopMaxTokens:
		return "length"
	case llm.StopToolUse:
		return "tool_calls"
	case llm.StopContentLimit, llm.StopRefusal:
		return "content_filter"
	}
	return "stop"
}

// oaUsage is the usage object for u.
func oaUsage(u llm.Usage) map[string]any {
	prompt := u.InputTokens + u.CacheReadTokens + u.CacheWriteTokens
	details := map[string]any{"cached_tokens": u.CacheReadTokens}
	if u.CacheWriteTokens > 0 {
		details["cache_write_tokens"] = u.CacheWriteTokens
	}
	return map[string]any{
		"prompt_tokens":         prompt,
		"completion_tokens":     u.OutputTokens,
		"total_tokens":          prompt + u.OutputTokens,
		"prompt_tokens_details": details,
	}
}

func (p *openAI) write(w http.ResponseWriter, c *Call, rep Reply) {
	id := fmt.Sprintf("chatcmpl-%d", p.ids.Add(1))
	calls := make([]map[string]any, len(rep.ToolCalls))
	for i, tc := range rep.ToolCalls {
		callID := tc.ID
		if callID == "" {
			callID = fmt.Sprintf("call_%d_%d", c.N, i)
		}
		calls[i] = map[string]any{
			"id":       callID,
			"type":     "function",
			"function": map[string]any{"name": tc.Name, "arguments": tc.Input},
		}
	}
	if c.Stream {
		p.writeStream(w, c, rep, id, calls)
		return
	}
	msg := map[string]any{"role": "assistant", "content": nil, "refusal": nil}
	if rep.Text != "" || len(calls) == 0 {
		msg["content"] = rep.Text
	}
	if len(calls) > 0 {
		msg["tool_calls"] = calls
	}
	body := map[string]any{
		"id":      id,
		"object":  "chat.completion",
		"created": time.Now().Unix(),
		"model":   c.Model,
		"choices": []any{map[string]any{
			"index":         0,
			"message":       msg,
			"logprobs":      nil,
			"finish_reason": oaFinish(stopReason(rep)),
		}},
		"usage":              oaUsage(usageFor(c, rep)),
		"system_fingerprint": "fp_llmtest",
	}
	w.Header().Set("Content-Type", "application/json")
	json.NewEncoder(w).Encode(body)
}

// writeStream writes rep as chat.completion.chunk events: a role delta,
// the text in several deltas, each tool call (id, type and name first, the
// arguments in pieces), the finish_reason, the usage chunk when the request
// asked for it, then [DONE].
func (p *openAI) writeStream(w http.ResponseWriter, c *Call, rep Reply, id string, calls []map[string]any) {
	var opts struct {
		StreamOptions struct {
			IncludeUsage bool `json:"include_usage"`
		} `json:"stream_options"`
	}
	json.Unmarshal(c.Body, &opts)
	includeUsage := opts.StreamOptions.IncludeUsage
	created := time.Now().Unix()
	chunk := func(delta map[string]any, finish any) map[string]any {
		ch := map[string]any{
			"id":                 id,
			"object":             "chat.completion.chunk",
			"created":            created,
			"model":              c.Model,
			"system_fingerprint": "fp_llmtest",
			"choices": []any{map[string]any{
				"index":         0,
				"delta":         delta,
				"logprobs":      nil,
				"finish_reason": finish,
			}},
		}
		if includeUsage {
			ch["usage"] = nil
		}
		return ch
	}

	var events []any
	events = append(events, chunk(map[string]any{"role": "assistant", "content": "", "refusal": nil}, nil))
	for _, piece := range splitWords(rep.Text) {
		events = append(events, chunk(map[string]any{"content": piece}, nil))
	}
	for i, tc := range rep.ToolCalls {
		fn := calls[i]["function"].(map[string]any)
		events = append(events, chunk(map[string]any{"tool_calls": []any{map[string]any{
			"index":    i,
			"id":       calls[i]["id"],
			"type":     "function",
			"function": map[string]any{"name": fn["name"], "arguments": ""},
		}}}, nil))
		for _, piece := range splitN(tc.Input, 3) {
			events = append(events, chunk(map[string]any{"tool_calls": []any{map[string]any{
				"index":    i,
				"function": map[string]any{"arguments": piece},
			}}}, nil))
		}
	}
	events = append(events, chunk(map[string]any{}, oaFinish(stopReason(rep))))
	if includeUsage {
		events = append(events, map[string]any{
			"id":                 id,
			"object":             "chat.completion.chunk",
			"created":            created,
			"model":              c.Model,
			"system_fingerprint": "fp_llmtest",
			"choices":            []any{},
			"usage":              oaUsage(usageFor(c, rep)),
		})
	}
	events = append(events, "[DONE]")

	w.Header().Set("Content-Type", "text/event-stream")
	w.Header().Set("Cache-Control", "no-cache")
	w.WriteHeader(http.StatusOK)
	rc := http.NewResponseController(w)
	for i, ev := range events {
		if rep.TruncateAfter > 0 && i >= rep.TruncateAfter {
			return
		}
		if i > 0 && rep.EventDelay > 0 {
			time.Sleep(rep.EventDelay)
		}
		var data []byte
		if s, ok := ev.(string); ok {
			data = []byte(s)
		} else {
			data, _ = json.Marshal(ev)
		}
		if _, err := fmt.Fprintf(w, "data: %s\n\n", data); err != nil {
			return // the client went away
		}
		if err := rc.Flush(); err != nil {
			return
		}
	}
}

// splitWords splits s after each space, as a model streams tokens.
func splitWords(s string) []string {
	var out []string
	for _, w := range strings.SplitAfter(s, " ") {
		if w != "" {
			out = append(out, w)
		}
	}
	return out
}

// splitN splits s into at most n pieces on rune boundaries.
func splitN(s string, n int) []string {
	if s == "" {
		return nil
	}
	size := (len(s) + n - 1) / n
	var out []string
	for len(s) > 0 {
		k := min(size, len(s))
		for k < len(s) && !utf8.RuneStart(s[k]) {
			k++
		}
		out = append(out, s[:k])
		s = s[k:]
	}
	return out
}
