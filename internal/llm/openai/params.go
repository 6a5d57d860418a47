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

	"github.com/openai/openai-go/v3"
	"github.com/openai/openai-go/v3/packages/param"
	"github.com/openai/openai-go/v3/shared"

	"github.com/hive-swarm/hive/internal/llm"
)

// params builds the Chat Completions request for req. A request that
// cannot be expressed is a KindBadRequest error, and nothing is sent.
func (m *Model) params(req *llm.Request) (openai.ChatCompletionNewParams, error) {
	var p openai.ChatCompletionNewParams
	p.Model = req.Model
	if p.Model == "" {
		p.Model = m.cfg.Model
	}
	if p.Model == "" {
		return p, m.errorf(llm.KindBadRequest, 0, "no model: set Request.Model or Config.Model")
	}
	if req.System != "" {
		p.Messages = append(p.Messages, openai.SystemMessage(req.System))
	}
	for i, msg := range req.Messages {
		ms, err := messages(msg)
		if err != nil {
			return p, m.errorf(llm.KindBadRequest, 0, "message %d: %v", i, err)
		}
		p.Messages = append(p.Messages, ms...)
	}
	for _, t := range req.Tools {
		tool, err := functionTool(t)
		if err != nil {
			return p, m.errorf(llm.KindBadRequest, 0, "tool %q: %v", t.Name, err)
		}
		p.Tools = append(p.Tools, tool)
	}
	if len(req.Tools) > 0 {
		switch req.ToolChoice.Mode {
		case llm.ToolAuto:
			// The server's default; not sending it suits more servers.
		case llm.ToolAny:
			p.ToolChoice.OfAuto = openai.String(string(openai.ChatCompletionToolChoiceOptionAutoRequired))
		case llm.ToolNone:
			p.ToolChoice.OfAuto = openai.String(string(openai.ChatCompletionToolChoiceOptionAutoNone))
		case llm.ToolName:
			if req.ToolChoice.Name == "" {
				return p, m.errorf(llm.KindBadRequest, 0, "tool choice names no tool")
			}
			p.ToolChoice = openai.ToolChoiceOptionFunctionToolChoice(openai.ChatCompletionNamedToolChoiceFunctionParam{Name: req.ToolChoice.Name})
		default:
			return p, m.errorf(llm.KindBadRequest, 0, "unknown tool mode %q", req.ToolChoice.Mode)
		}
		if req.ParallelToolCalls != nil {
			// OpenAI rejects parallel_tool_calls without tools.
			p.ParallelToolCalls = openai.Bool(*req.ParallelToolCalls)
		}
	}
	maxTokens := req.MaxTokens
	if maxTokens <= 0 {
		maxTokens = m.cfg.MaxTokens
	}
	if m.completionTokens {
		p.MaxCompletionTokens = openai.Int(int64(maxTokens))
	} else {
		p.MaxTokens = openai.Int(int64(maxTokens))
	}
	if req.Temperature != nil {
		p.Temperature = openai.Float(*req.Temperature)
	}
	if len(req.Stop) > 0 {
		p.Stop.OfStringArray = req.Stop
	}
	return p, nil
}

// messages converts one neutral message. A user message's tool results
// become tool messages, sent before the rest of its content, since they
// must follow the assistant message that called the tools.
func messages(msg llm.Message) ([]openai.ChatCompletionMessageParamUnion, error) {
	switch msg.Role {
	case llm.RoleUser:
		var out []openai.ChatCompletionMessageParamUnion
		var parts []openai.ChatCompletionContentPartUnionParam
		texts := 0
		for _, part := range msg.Parts {
			switch v := part.(type) {
			case llm.ToolResult:
				// Chat Completions has no error flag on a tool result;
				// the content says what went wrong.
				out = append(out, openai.ToolMessage(v.Content, v.CallID))
			case llm.Text:
				parts = append(parts, openai.TextContentPart(v.Text))
				texts++
			case llm.Image:
				u, err := imageURL(v)
				if err != nil {
					return nil, err
				}
				parts = append(parts, openai.ImageContentPart(openai.ChatCompletionContentPartImageImageURLParam{URL: u}))
			case llm.ToolCall:
				return nil, fmt.Errorf("a user message cannot hold a tool call")
			}
		}
		switch {
		case len(parts) == 0:
		case texts == len(parts):
			// Plain text as a string: every server understands it.
			out = append(out, openai.UserMessage(msg.Text()))
		default:
			out = append(out, openai.UserMessage(parts))
		}
		if len(out) == 0 {
			return nil, fmt.Errorf("empty user message")
		}
		return out, nil
	case llm.RoleAssistant:
		var a openai.ChatCompletionAssistantMessageParam
		if text := msg.Text(); text != "" {
			a.Content.OfString = openai.String(text)
		}
		for _, part := range msg.Parts {
			switch v := part.(type) {
			case llm.ToolCall:
				a.ToolCalls = append(a.ToolCalls, openai.ChatCompletionMessageToolCallUnionParam{
					OfFunction: &openai.ChatCompletionMessageFunctionToolCallParam{
						ID: v.ID,
						Function: openai.ChatCompletionMessageFunctionToolCallFunctionParam{
							Name:      v.Name,
							Arguments: string(arguments(string(v.Input))),
						},
					},
				})
			case llm.Image, llm.ToolResult:
				return nil, fmt.Errorf("an assistant message holds only text and tool calls")
			}
		}
		return []openai.ChatCompletionMessageParamUnion{{OfAssistant: &a}}, nil
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

// functionTool converts a tool definition; a missing schema is an object
// with no properties. The definition goes to the SDK as JSON made once per
// distinct tool (see [toolJSON]): tools are the bulk of a swarm worker's
// request, and the SDK would encode their schemas by reflection on every
// call.
func functionTool(t llm.Tool) (openai.ChatCompletionToolUnionParam, error) {
	raw, err := toolJSON(t)
	if err != nil {
		return openai.ChatCompletionToolUnionParam{}, err
	}
	return openai.ChatCompletionFunctionTool(param.Override[shared.FunctionDefinitionParam](raw)), nil
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
// {"name", "description"?, "parameters"}.
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
