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

// NewAnthropic starts a server speaking the Anthropic Messages API
// (POST /v1/messages, API version 2023-06-01); point the SDK's base URL at
// srv.URL. The caller closes it.
//
// Requests are checked as the real API checks them: the anthropic-version
// header, model, max_tokens and messages are required (400
// invalid_request_error otherwise), and with [Server.APIKey] set, the key
// must come as x-api-key or as an Authorization bearer token.
//
// Replies are written as the real API writes them: a message object, or
// for "stream": true a text/event-stream of message_start,
// content_block_start / content_block_delta / content_block_stop per
// block, a ping, message_delta and message_stop, each flushed as written.
// Every answer carries a request-id header.
//
// Scripted tool-call input is delivered verbatim. In a stream it is the
// concatenation of the input_json_delta pieces, whether or not it parses,
// as with fine-grained tool streaming. A whole message can hold only JSON,
// so there an input that is not a JSON object is sent as a JSON string
// holding the text, which the adapter in package anthropic reads back
// verbatim.
//
// A stream reply with TruncateAfter > 0 stops after that many events
// without message_stop; if it also names an ErrorType (and no Status), the
// cut is an "event: error" carrying ErrorType and ErrorMessage, as the real
// API reports a failure, e.g. overloaded_error, in the middle of a stream.
func NewAnthropic(h Handler) *Server {
	return newServer(anthropicProto{}, h)
}

type anthropicProto struct{}

func (anthropicProto) path() string { return "/v1/messages" }

func (anthropicProto) authorized(r *http.Request, key string) bool {
	if r.Header.Get("X-Api-Key") == key {
		return true
	}
	auth, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	return ok && auth == key
}

// anthropicRequest is the part of a Messages request the server reads.
type anthropicRequest struct {
	Model         string                  `json:"model"`
	MaxTokens     *int                    `json:"max_tokens"`
	System        json.RawMessage         `json:"system"`
	Messages      []anthropicMessage      `json:"messages"`
	Tools         []struct{ Name string } `json:"tools"`
	Stream        bool                    `json:"stream"`
	StopSequences []string                `json:"stop_sequences"`
}

type anthropicMessage struct {
	Role    string          `json:"role"`
	Content json.RawMessage `json:"content"`
}

type anthropicBlock struct {
	Type         string          `json:"type"`
	Text         string          `json:"text"`
	ID           string          `json:"id"`
	Name         string          `json:"name"`
	Input        json.RawMessage `json:"input"`
	ToolUseID    string          `json:"tool_use_id"`
	IsError      bool            `json:"is_error"`
	Content      json.RawMessage `json:"content"`
	CacheControl json.RawMessage `json:"cache_control"`
	Source       *struct {
		Type      string `json:"type"`
		MediaType string `json:"media_type"`
		Data      string `json:"data"`
		URL       string `json:"url"`
	} `json:"source"`
}

func (anthropicProto) parse(body []byte, c *Call) error {
	if c.Header.Get("Anthropic-Version") == "" {
		return errors.New("anthropic-version: header is required")
	}
	var req anthropicRequest
	if err := json.Unmarshal(body, &req); err != nil {
		return fmt.Errorf("invalid JSON body: %v", err)
	}
	switch {
	case req.Model == "":
		return errors.New("model: Field required")
	case req.MaxTokens == nil:
		return errors.New("max_tokens: Field required")
	case len(req.Messages) == 0:
		return errors.New("messages: Field required")
	}
	c.Model = req.Model
	c.MaxTokens = *req.MaxTokens
	c.Stream = req.Stream
	for _, t := range req.Tools {
		c.Tools = append(c.Tools, t.Name)
	}
	sys, _, err := anthropicSystem(req.System)
	if err != nil {
		return err
	}
	c.System = sys
	for i, m := range req.Messages {
		if m.Role != "user" && m.Role != "assistant" {
			return fmt.Errorf("messages.%d.role: Input should be 'user' or 'assistant'", i)
		}
		msg, err := anthropicParseMessage(m)
		if err != nil {
			return fmt.Errorf("messages.%d: %v", i, err)
		}
		c.Messages = append(c.Messages, msg)
	}
	return nil
}

// anthropicSystem reads a system prompt given as a string or as text
// blocks, and whether a block carried cache_control.
func anthropicSystem(raw json.RawMessage) (string, bool, error) {
	if len(raw) == 0 || string(raw) == "null" {
		return "", false, nil
	}
	var s string
	if json.Unmarshal(raw, &s) == nil {
		return s, false, nil
	}
	var blocks []anthropicBlock
	if err := json.Unmarshal(raw, &blocks); err != nil {
		return "", false, errors.New("system: Input should be a valid string or list of text blocks")
	}
	var b strings.Builder
	cached := false
	for _, bl := range blocks {
		if bl.Type != "text" {
			return "", false, fmt.Errorf("system: block type %q is not text", bl.Type)
		}
		b.WriteString(bl.Text)
		cached = cached || len(bl.CacheControl) > 0
	}
	return b.String(), cached, nil
}

func anthropicParseMessage(m anthropicMessage) (llm.Message, error) {
	msg := llm.Message{Role: llm.Role(m.Role)}
	var s string
	if json.Unmarshal(m.Content, &s) == nil {
		msg.Parts = []llm.Part{llm.Text{Text: s}}
		return msg, nil
	}
	var blocks []anthropicBlock
	if err := json.Unmarshal(m.Content, &blocks); err != nil {
		return msg, errors.New("content: Input should be a valid string or list of blocks")
	}
	for _, b := range blocks {
		if len(b.CacheControl) > 0 {
			msg.Cache = true
		}
		switch b.Type {
		case "text":
			msg.Parts = append(msg.Parts, llm.Text{Text: b.Text})
		case "image":
			if b.Source == nil {
				return msg, errors.New("image: source: Field required")
			}
			switch b.Source.Type {
			case "base64":
				data, err := base64.StdEncoding.DecodeString(b.Source.Data)
				if err != nil {
					return msg, fmt.Errorf("image: source.data: invalid base64: %v", err)
				}
				msg.Parts = append(msg.Parts, llm.Image{MediaType: b.Source.MediaType, Data: data})
			case "url":
				msg.Parts = append(msg.Parts, llm.Image{URL: b.Source.URL})
			default:
				return msg, fmt.Errorf("image: source type %q is not supported", b.Source.Type)
			}
		case "tool_use":
			msg.Parts = append(msg.Parts, llm.ToolCall{ID: b.ID, Name: b.Name, Input: b.Input})
		case "tool_result":
			text, err := anthropicResultText(b.Content)
			if err != nil {
				return msg, err
			}
			msg.Parts = append(msg.Parts, llm.ToolResult{CallID: b.ToolUseID, Content: text, IsError: b.IsError})
		default:
			// thinking, documents and the like: not part of the neutral view.
		}
	}
	return msg, nil
}

// anthropicResultText reads a tool_result's content: a string or blocks,
// of which the text ones count.
func anthropicResultText(raw json.RawMessage) (string, error) {
	if len(raw) == 0 || string(raw) == "null" {
		return "", nil
	}
	var s string
	if json.Unmarshal(raw, &s) == nil {
		return s, nil
	}
	var blocks []anthropicBlock
	if err := json.Unmarshal(raw, &blocks); err != nil {
		return "", errors.New("tool_result: content: Input should be a valid string or list of blocks")
	}
	var b strings.Builder
	for _, bl := range blocks {
		if bl.Type == "text" {
			b.WriteString(bl.Text)
		}
	}
	return b.String(), nil
}

// AnthropicCacheMarks returns where the Messages request of c carries
// cache_control breakpoints, as JSON paths: "tools.1", "system.0",
// "messages.2.content.0". It returns nil for a request without any.
func AnthropicCacheMarks(c *Call) []string {
	var req struct {
		System json.RawMessage
		Tools  []struct {
			CacheControl json.RawMessage `json:"cache_control"`
		}
		Messages []anthropicMessage
	}
	if json.Unmarshal(c.Body, &req) != nil {
		return nil
	}
	var marks []string
	for i, t := range req.Tools {
		if len(t.CacheControl) > 0 {
			marks = append(marks, fmt.Sprintf("tools.%d", i))
		}
	}
	var sys []anthropicBlock
	if json.Unmarshal(req.System, &sys) == nil {
		for i, b := range sys {
			if len(b.CacheControl) > 0 {
				marks = append(marks, fmt.Sprintf("system.%d", i))
			}
		}
	}
	for i, m := range req.Messages {
		var blocks []anthropicBlock
		if json.Unmarshal(m.Content, &blocks) != nil {
			continue
		}
		for j, b := range blocks {
			if len(b.CacheControl) > 0 {
				marks = append(marks, fmt.Sprintf("messages.%d.content.%d", i, j))
			}
		}
	}
	return marks
}

// refuse answers a request over contextTokens the way the Messages API
// does: 400 invalid_request_error "prompt is too long: N tokens > M
// maximum".
func (p anthropicProto) refuse(w http.ResponseWriter, c *Call, contextTokens int) bool {
	if n := promptTokens(c); contextTokens > 0 && n > contextTokens {
		p.writeError(w, http.StatusBadRequest, "invalid_request_error", fmt.Sprintf("prompt is too long: %d tokens > %d maximum", n, contextTokens))
		return true
	}
	return false
}

func (anthropicProto) writeError(w http.ResponseWriter, status int, errType, message string) {
	body, _ := json.Marshal(map[string]any{
		"type":  "error",
		"error": map[string]string{"type": errType, "message": message},
	})
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("Request-Id", anthropicRequestID())
	if status == 529 || status == http.StatusTooManyRequests || status >= 500 {
		h.Set("X-Should-Retry", "true")
	}
	w.WriteHeader(status)
	w.Write(body)
}

var anthropicIDs atomic.Int64

func anthropicRequestID() string { return fmt.Sprintf("req_llmtest%08d", anthropicIDs.Add(1)) }

// anthropicStop maps a neutral stop reason to the API's.
func anthropicStop(r llm.StopReason) string {
	switch r {
	case llm.StopEnd, llm.StopMaxTokens, llm.StopSequence, llm.StopToolUse, llm.StopRefusal:
		return string(r)
	case llm.StopContentLimit:
		return "refusal"
	}
	return "pause_turn"
}

type anthropicUsage struct {
	InputTokens              int64 `json:"input_tokens"`
	CacheCreationInputTokens int64 `json:"cache_creation_input_tokens"`
	CacheReadInputTokens     int64 `json:"cache_read_input_tokens"`
	// CacheCreation splits the cache writes by TTL. It is sent when the
	// server simulates a cache or a scripted usage has 1-hour writes.
	CacheCreation *anthropicCacheCreation `json:"cache_creation,omitempty"`
	OutputTokens  int64                   `json:"output_tokens"`
}

type anthropicCacheCreation struct {
	Ephemeral5m int64 `json:"ephemeral_5m_input_tokens"`
	Ephemeral1h int64 `json:"ephemeral_1h_input_tokens"`
}

// anthropicUsageOf is the usage object for u, with output tokens out.
func anthropicUsageOf(c *Call, u llm.Usage, out int64) anthropicUsage {
	au := anthropicUsage{
		InputTokens:              u.InputTokens,
		CacheCreationInputTokens: u.CacheWriteTokens,
		CacheReadInputTokens:     u.CacheReadTokens,
		OutputTokens:             out,
	}
	if c.cache != nil || u.CacheWrite1hTokens > 0 {
		au.CacheCreation = &anthropicCacheCreation{
			Ephemeral5m: max(u.CacheWriteTokens-u.CacheWrite1hTokens, 0),
			Ephemeral1h: u.CacheWrite1hTokens,
		}
	}
	return au
}

// anthropicToolInput returns a scripted input as the JSON a whole message
// carries: the object itself, or else a JSON string holding the text.
func anthropicToolInput(input string) json.RawMessage {
	in := bytes.TrimSpace([]byte(input))
	if len(in) == 0 {
		return json.RawMessage(`{}`)
	}
	if len(in) > 0 && in[0] == '{' && json.Valid(in) {
		return json.RawMessage(in)
	}
	s, _ := json.Marshal(input)
	return s
}

func (p anthropicProto) write(w http.ResponseWriter, c *Call, rep Reply) {
	u := usageFor(c, rep)
	stop := anthropicStop(stopReason(rep))
	var stopSeq *string
	if stop == string(llm.StopSequence) {
		var req anthropicRequest
		if json.Unmarshal(c.Body, &req) == nil && len(req.StopSequences) > 0 {
			stopSeq = &req.StopSequences[0]
		}
	}
	id := fmt.Sprintf("msg_llmtest%08d", c.N)
	callIDs := make([]string, len(rep.ToolCalls))
	for i, tc := range rep.ToolCalls {
		callIDs[i] = tc.ID
		if callIDs[i] == "" {
			callIDs[i] = fmt.Sprintf("toolu_llmtest%06d_%d", c.N, i)
		}
	}
	w.Header().Set("Request-Id", anthropicRequestID())
	if !c.Stream {
		content := []map[string]any{}
		if rep.Text != "" {
			content = append(content, map[string]any{"type": "text", "text": rep.Text})
		}
		for i, tc := range rep.ToolCalls {
			content = append(content, map[string]any{
				"type": "tool_use", "id": callIDs[i], "name": tc.Name, "input": anthropicToolInput(tc.Input),
			})
		}
		body, _ := json.Marshal(map[string]any{
			"id": id, "type": "message", "role": "assistant", "model": c.Model,
			"content": content, "stop_reason": stop, "stop_sequence": stopSeq,
			"usage": anthropicUsageOf(c, u, u.OutputTokens),
		})
		w.Header().Set("Content-Type", "application/json")
		w.Write(body)
		return
	}

	s := newAnthropicSSE(w, rep)
	s.event("message_start", map[string]any{"type": "message_start", "message": map[string]any{
		"id": id, "type": "message", "role": "assistant", "model": c.Model,
		"content": []any{}, "stop_reason": nil, "stop_sequence": nil,
		"usage": anthropicUsageOf(c, u, min(u.OutputTokens, 1)),
	}})
	index := 0
	if rep.Text != "" {
		s.event("content_block_start", map[string]any{"type": "content_block_start", "index": index,
			"content_block": map[string]any{"type": "text", "text": ""}})
		s.event("ping", map[string]any{"type": "ping"})
		for _, piece := range anthropicChunks(rep.Text, 16) {
			s.event("content_block_delta", map[string]any{"type": "content_block_delta", "index": index,
				"delta": map[string]any{"type": "text_delta", "text": piece}})
		}
		s.event("content_block_stop", map[string]any{"type": "content_block_stop", "index": index})
		index++
	} else {
		s.event("ping", map[string]any{"type": "ping"})
	}
	for i, tc := range rep.ToolCalls {
		s.event("content_block_start", map[string]any{"type": "content_block_start", "index": index,
			"content_block": map[string]any{"type": "tool_use", "id": callIDs[i], "name": tc.Name, "input": map[string]any{}}})
		for _, piece := range anthropicChunks(tc.Input, 16) {
			s.event("content_block_delta", map[string]any{"type": "content_block_delta", "index": index,
				"delta": map[string]any{"type": "input_json_delta", "partial_json": piece}})
		}
		s.event("content_block_stop", map[string]any{"type": "content_block_stop", "index": index})
		index++
	}
	s.event("message_delta", map[string]any{"type": "message_delta",
		"delta": map[string]any{"stop_reason": stop, "stop_sequence": stopSeq},
		"usage": map[string]any{"output_tokens": u.OutputTokens}})
	s.event("message_stop", map[string]any{"type": "message_stop"})
}

// anthropicSSE writes the events of one stream, honouring a reply's EventDelay
// and TruncateAfter. Once the stream is cut or the client is gone, event
// does nothing.
type anthropicSSE struct {
	w     http.ResponseWriter
	rc    *http.ResponseController
	rep   Reply
	gone  <-chan bool
	n     int
	ended bool
}

func newAnthropicSSE(w http.ResponseWriter, rep Reply) *anthropicSSE {
	h := w.Header()
	h.Set("Content-Type", "text/event-stream; charset=utf-8")
	h.Set("Cache-Control", "no-cache")
	w.WriteHeader(http.StatusOK)
	s := &anthropicSSE{w: w, rc: http.NewResponseController(w), rep: rep}
	// The protocol's write gets no request, so the stream learns that the
	// client left from the connection itself.
	if cn, ok := w.(http.CloseNotifier); ok { //nolint:staticcheck // no request context here
		s.gone = cn.CloseNotify()
	}
	s.rc.Flush()
	return s
}

func (s *anthropicSSE) event(name string, data any) {
	if s.ended {
		return
	}
	if s.rep.TruncateAfter > 0 && s.n >= s.rep.TruncateAfter {
		s.ended = true
		if s.rep.ErrorType != "" && (s.rep.Status == 0 || s.rep.Status == http.StatusOK) {
			msg := s.rep.ErrorMessage
			if msg == "" {
				msg = s.rep.ErrorType
			}
			s.write("error", map[string]any{"type": "error",
				"error": map[string]string{"type": s.rep.ErrorType, "message": msg}})
		}
		return
	}
	if s.n > 0 && s.rep.EventDelay > 0 {
		t := time.NewTimer(s.rep.EventDelay)
		select {
		case <-t.C:
		case <-s.gone:
			t.Stop()
			s.ended = true
			return
		}
	}
	s.n++
	if !s.write(name, data) {
		s.ended = true
	}
}

func (s *anthropicSSE) write(name string, data any) bool {
	b, _ := json.Marshal(data)
	if _, err := fmt.Fprintf(s.w, "event: %s\ndata: %s\n\n", name, b); err != nil {
		return false
	}
	return s.rc.Flush() == nil
}

// chunks splits s into pieces of about n bytes, on rune boundaries.
func anthropicChunks(s string, n int) []string {
	var out []string
	for len(s) > n {
		i := n
		for i > 0 && !utf8.RuneStart(s[i]) {
			i--
		}
		if i == 0 {
			i = n
		}
		out = append(out, s[:i])
		s = s[i:]
	}
	if s != "" {
		out = append(out, s)
	}
	return out
}
