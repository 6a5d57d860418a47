package openai

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"hash/maphash"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/hive-swarm/hive/internal/llm"
)

// body builds the Chat Completions request body for req, asking for a
// stream (with usage) when stream is set. A request that cannot be
// expressed is a KindBadRequest error, and nothing is sent.
func (m *Model) body(req *llm.Request, stream bool) ([]byte, error) {
	w, err := m.request(req)
	if err != nil {
		return nil, err
	}
	if stream {
		w.Stream = true
		w.StreamOptions = &streamOptions{IncludeUsage: true}
	}
	b, err := w.encode()
	if err != nil {
		return nil, m.errorf(llm.KindBadRequest, 0, "encode request: %v", err)
	}
	return b, nil
}

// request converts req to its wire form.
func (m *Model) request(req *llm.Request) (*wireRequest, error) {
	w := &wireRequest{Model: req.Model}
	if w.Model == "" {
		w.Model = m.cfg.Model
	}
	if w.Model == "" {
		return nil, m.errorf(llm.KindBadRequest, 0, "no model: set Request.Model or Config.Model")
	}
	w.Messages = make([]wireMessage, 0, len(req.Messages)+1)
	if req.System != "" {
		w.Messages = append(w.Messages, wireMessage{Role: "system", Content: textContent(req.System)})
	}
	for i, msg := range req.Messages {
		var err error
		if w.Messages, err = appendMessages(w.Messages, msg); err != nil {
			return nil, m.errorf(llm.KindBadRequest, 0, "message %d: %v", i, err)
		}
	}
	tools, choice := req.Tools, req.ToolChoice
	dialect := m.dialect()
	if dialect == DialectOpenAI {
		// Only OpenAI's API routes by it; local servers cache on their
		// own (llama.cpp's cache_prompt, vLLM's prefix caching).
		w.PromptCacheKey = req.CacheKey
	}
	if dialect == DialectLlamaCpp && choice.Mode == llm.ToolName {
		// llama.cpp reads tool_choice only as a string: a named function
		// is "required" over that function alone.
		tools = nil
		for _, t := range req.Tools {
			if t.Name == choice.Name {
				tools = append(tools, t)
			}
		}
		choice = llm.ToolChoice{Mode: llm.ToolAny}
	}
	if len(tools) > 0 {
		w.Tools = make([]wireTool, 0, len(tools))
	}
	for _, t := range tools {
		raw, err := toolJSON(t)
		if err != nil {
			return nil, m.errorf(llm.KindBadRequest, 0, "tool %q: %v", t.Name, err)
		}
		w.Tools = append(w.Tools, wireTool{Type: "function", Function: raw})
	}
	if len(tools) > 0 {
		switch choice.Mode {
		case llm.ToolAuto:
			// The server's default; not sending it suits more servers.
		case llm.ToolAny:
			w.ToolChoice = toolMode("required")
		case llm.ToolNone:
			w.ToolChoice = toolMode("none")
		case llm.ToolName:
			if choice.Name == "" {
				return nil, m.errorf(llm.KindBadRequest, 0, "tool choice names no tool")
			}
			named := namedTool{Type: "function"}
			named.Function.Name = choice.Name
			w.ToolChoice = named
		default:
			return nil, m.errorf(llm.KindBadRequest, 0, "unknown tool mode %q", choice.Mode)
		}
		// OpenAI rejects parallel_tool_calls without tools.
		w.ParallelToolCalls = req.ParallelToolCalls
		if w.ParallelToolCalls == nil && dialect == DialectLlamaCpp {
			// llama.cpp's default is one call a turn (parallel_tool_calls
			// false, tools/server utils.hpp); Hive runs several.
			on := true
			w.ParallelToolCalls = &on
		}
		if dialect == DialectOllama {
			w.ToolChoice = nil // not a field of Ollama's request: it would be ignored
		}
	} else if len(req.Tools) > 0 {
		return nil, m.errorf(llm.KindBadRequest, 0, "tool choice names %q, which is not among the request's tools", req.ToolChoice.Name)
	}
	maxTokens := req.MaxTokens
	if maxTokens <= 0 {
		maxTokens = m.cfg.MaxTokens
	}
	if m.completionTokens {
		w.MaxCompletionTokens = maxTokens
	} else {
		w.MaxTokens = maxTokens
	}
	w.Temperature = req.Temperature
	w.Stop = req.Stop
	return w, nil
}

// appendMessages appends one neutral message to out. A user message's
// tool results become tool messages, sent before the rest of its content,
// since they must follow the assistant message that called the tools.
func appendMessages(out []wireMessage, msg llm.Message) ([]wireMessage, error) {
	switch msg.Role {
	case llm.RoleUser:
		n := len(out)
		var parts partsContent
		texts := 0
		for _, part := range msg.Parts {
			switch v := part.(type) {
			case llm.ToolResult:
				// Chat Completions has no error flag on a tool result;
				// the content says what went wrong.
				out = append(out, wireMessage{Role: "tool", Content: textContent(v.Content), ToolCallID: v.CallID})
			case llm.Text:
				parts = append(parts, wirePart{Type: "text", Text: v.Text})
				texts++
			case llm.Image:
				u, err := imageURL(v)
				if err != nil {
					return nil, err
				}
				parts = append(parts, wirePart{Type: "image_url", ImageURL: &wireImageURL{URL: u}})
			case llm.ToolCall:
				return nil, fmt.Errorf("a user message cannot hold a tool call")
			}
		}
		switch {
		case len(parts) == 0:
		case texts == len(parts):
			// Plain text as a string: every server understands it.
			out = append(out, wireMessage{Role: "user", Content: textContent(msg.Text())})
		default:
			out = append(out, wireMessage{Role: "user", Content: parts})
		}
		if len(out) == n {
			return nil, fmt.Errorf("empty user message")
		}
		return out, nil
	case llm.RoleAssistant:
		a := wireMessage{Role: "assistant"}
		if text := msg.Text(); text != "" {
			a.Content = textContent(text)
		}
		for _, part := range msg.Parts {
			switch v := part.(type) {
			case llm.ToolCall:
				a.ToolCalls = append(a.ToolCalls, wireToolCall{
					ID:       v.ID,
					Type:     "function",
					Function: wireFunction{Name: v.Name, Arguments: string(arguments(string(v.Input)))},
				})
			case llm.Image, llm.ToolResult:
				return nil, fmt.Errorf("an assistant message holds only text and tool calls")
			}
		}
		return append(out, a), nil
	}
	return nil, fmt.Errorf("unknown role %q", msg.Role)
}

// imageURL returns img as a URL: its own, or a data: URL of its bytes.
func imageURL(img llm.Image) (string, error) {
	if img.URL != "" {
		return img.URL, nil
	}
	if len(img.Data) == 0 {
		return "", fmt.Errorf("image has neither URL nor data")
	}
	mt := img.MediaType
	if mt == "" {
		mt = http.DetectContentType(img.Data)
	}
	if !strings.HasPrefix(mt, "image/") {
		return "", fmt.Errorf("image data of type %q", mt)
	}
	return "data:" + mt + ";base64," + base64.StdEncoding.EncodeToString(img.Data), nil
}

// toolDefs caches the function definitions of tools by a hash of their
// name, description and schema; an entry keeps its inputs, so that a hash
// collision is a miss, never a wrong tool.
var toolDefs sync.Map // uint64 → *toolDef

type toolDef struct {
	name, desc string
	schema     []byte
	raw        json.RawMessage
}

var toolSeed = maphash.MakeSeed()

// toolJSON returns t as a Chat Completions function definition:
// {"name", "description"?, "parameters"}, made once per distinct tool:
// tools are the bulk of a swarm worker's request. A missing schema is an
// object with no properties.
func toolJSON(t llm.Tool) (json.RawMessage, error) {
	var h maphash.Hash
	h.SetSeed(toolSeed)
	h.WriteString(t.Name)
	h.WriteByte(0)
	h.WriteString(t.Description)
	h.WriteByte(0)
	h.Write(t.Schema)
	key := h.Sum64()
	if v, ok := toolDefs.Load(key); ok {
		d := v.(*toolDef)
		if d.name == t.Name && d.desc == t.Description && bytes.Equal(d.schema, t.Schema) {
			return d.raw, nil
		}
	}
	schema := []byte(`{"type":"object","properties":{}}`)
	if len(t.Schema) > 0 {
		var obj map[string]json.RawMessage
		if err := json.Unmarshal(t.Schema, &obj); err != nil || obj == nil {
			return nil, fmt.Errorf("schema is not a JSON object")
		}
		var buf bytes.Buffer
		if err := json.Compact(&buf, t.Schema); err != nil {
			return nil, fmt.Errorf("schema is not a JSON object")
		}
		schema = buf.Bytes()
	}
	def := struct {
		Name        string          `json:"name"`
		Description string          `json:"description,omitempty"`
		Parameters  json.RawMessage `json:"parameters"`
	}{t.Name, t.Description, schema}
	raw, err := json.Marshal(def)
	if err != nil {
		return nil, err
	}
	if toolCount.Add(1) <= maxToolDefs {
		toolDefs.Store(key, &toolDef{name: t.Name, desc: t.Description, schema: bytes.Clone(t.Schema), raw: raw})
	}
	return raw, nil
}

// maxToolDefs bounds the cache, for a process that makes up tools on the
// fly; past it, definitions are made on every call.
const maxToolDefs = 4096

var toolCount atomic.Int64
