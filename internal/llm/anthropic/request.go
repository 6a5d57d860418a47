package anthropic

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"time"

	sdk "github.com/anthropics/anthropic-sdk-go"
	"github.com/anthropics/anthropic-sdk-go/packages/param"

	"github.com/hive-swarm/hive/internal/llm"
)

// params converts a neutral request to the SDK's.
func (m *Model) params(req *llm.Request) (sdk.MessageNewParams, error) {
	p := sdk.MessageNewParams{
		Model:     sdk.Model(req.Model),
		MaxTokens: int64(req.MaxTokens),
	}
	if p.Model == "" {
		p.Model = sdk.Model(m.cfg.Model)
	}
	if p.Model == "" {
		return p, badRequest("no model: the request and the configuration name none")
	}
	if p.MaxTokens <= 0 {
		p.MaxTokens = int64(m.cfg.MaxTokens)
	}
	if req.Temperature != nil {
		p.Temperature = param.NewOpt(*req.Temperature)
	}
	p.StopSequences = req.Stop

	for _, t := range req.Tools {
		tp := sdk.ToolParam{Name: t.Name, InputSchema: inputSchema(t.Schema)}
		if t.Description != "" {
			tp.Description = param.NewOpt(t.Description)
		}
		p.Tools = append(p.Tools, sdk.ToolUnionParam{OfTool: &tp})
	}
	if req.System != "" {
		p.System = []sdk.TextBlockParam{{Text: req.System}}
	}
	cc := cacheControl(req.CacheTTL)
	if req.CacheSystem {
		// The cached prefix runs tools, then system, then messages: the
		// breakpoint goes on the last of these that exists.
		switch {
		case len(p.System) > 0:
			p.System[len(p.System)-1].CacheControl = cc
		case len(p.Tools) > 0:
			p.Tools[len(p.Tools)-1].OfTool.CacheControl = cc
		}
	}
	p.ToolChoice = toolChoice(req)

	for i, msg := range req.Messages {
		mp, err := message(msg, cc)
		if err != nil {
			return p, badRequest(fmt.Sprintf("message %d: %v", i, err))
		}
		p.Messages = append(p.Messages, mp)
	}
	return p, nil
}

func toolChoice(req *llm.Request) sdk.ToolChoiceUnionParam {
	serial := req.ParallelToolCalls != nil && !*req.ParallelToolCalls
	var disable param.Opt[bool]
	if serial {
		disable = param.NewOpt(true)
	}
	switch req.ToolChoice.Mode {
	case llm.ToolAny:
		return sdk.ToolChoiceUnionParam{OfAny: &sdk.ToolChoiceAnyParam{DisableParallelToolUse: disable}}
	case llm.ToolName:
		return sdk.ToolChoiceUnionParam{OfTool: &sdk.ToolChoiceToolParam{Name: req.ToolChoice.Name, DisableParallelToolUse: disable}}
	case llm.ToolNone:
		if len(req.Tools) == 0 {
			return sdk.ToolChoiceUnionParam{}
		}
		none := sdk.NewToolChoiceNoneParam()
		return sdk.ToolChoiceUnionParam{OfNone: &none}
	}
	if serial && len(req.Tools) > 0 {
		return sdk.ToolChoiceUnionParam{OfAuto: &sdk.ToolChoiceAutoParam{DisableParallelToolUse: disable}}
	}
	return sdk.ToolChoiceUnionParam{}
}

// inputSchema passes a tool's JSON Schema through as it is; a tool
// without one takes any object.
func inputSchema(schema json.RawMessage) sdk.ToolInputSchemaParam {
	if len(bytes.TrimSpace(schema)) == 0 {
		schema = json.RawMessage(`{"type":"object"}`)
	}
	return param.Override[sdk.ToolInputSchemaParam](json.RawMessage(schema))
}

// cacheControl is a breakpoint of entries that live ttl: Anthropic's
// 1-hour entries for an hour or more, else its default 5 minutes.
func cacheControl(ttl time.Duration) sdk.CacheControlEphemeralParam {
	cc := sdk.NewCacheControlEphemeralParam()
	if ttl >= time.Hour {
		cc.TTL = sdk.CacheControlEphemeralTTLTTL1h
	}
	return cc
}

func message(msg llm.Message, cc sdk.CacheControlEphemeralParam) (sdk.MessageParam, error) {
	var blocks []sdk.ContentBlockParamUnion
	for _, part := range msg.Parts {
		switch p := part.(type) {
		case llm.Text:
			if p.Text == "" {
				continue // the API refuses empty text blocks
			}
			blocks = append(blocks, sdk.NewTextBlock(p.Text))
		case llm.Image:
			img, err := image(p)
			if err != nil {
				return sdk.MessageParam{}, err
			}
			blocks = append(blocks, sdk.ContentBlockParamUnion{OfImage: img})
		case llm.ToolCall:
			blocks = append(blocks, sdk.ContentBlockParamUnion{OfToolUse: &sdk.ToolUseBlockParam{
				ID: p.ID, Name: p.Name, Input: callInput(p.Input),
			}})
		case llm.ToolResult:
			r := &sdk.ToolResultBlockParam{ToolUseID: p.CallID}
			if p.IsError {
				r.IsError = param.NewOpt(true)
			}
			if p.Content != "" {
				r.Content = []sdk.ToolResultBlockParamContentUnion{{OfText: &sdk.TextBlockParam{Text: p.Content}}}
			}
			blocks = append(blocks, sdk.ContentBlockParamUnion{OfToolResult: r})
		default:
			return sdk.MessageParam{}, fmt.Errorf("unsupported part %T", part)
		}
	}
	if msg.Cache && len(blocks) > 0 {
		if p := blocks[len(blocks)-1].GetCacheControl(); p != nil {
			*p = cc
		}
	}
	role := sdk.MessageParamRoleUser
	if msg.Role == llm.RoleAssistant {
		role = sdk.MessageParamRoleAssistant
	}
	return sdk.MessageParam{Role: role, Content: blocks}, nil
}

func image(p llm.Image) (*sdk.ImageBlockParam, error) {
	switch {
	case len(p.Data) > 0:
		if p.MediaType == "" {
			return nil, fmt.Errorf("inline image without a media type")
		}
		return &sdk.ImageBlockParam{Source: sdk.ImageBlockParamSourceUnion{OfBase64: &sdk.Base64ImageSourceParam{
			Data: base64.StdEncoding.EncodeToString(p.Data), MediaType: sdk.Base64ImageSourceMediaType(p.MediaType),
		}}}, nil
	case p.URL != "":
		return &sdk.ImageBlockParam{Source: sdk.ImageBlockParamSourceUnion{OfURL: &sdk.URLImageSourceParam{URL: p.URL}}}, nil
	}
	return nil, fmt.Errorf("image with neither data nor URL")
}

// callInput returns a tool call's input as the API takes it: a JSON
// object. Input that is not one (a model's malformed arguments, sent back
// in the conversation) is wrapped as {"INVALID_JSON": "<text>"}, the way
// Anthropic's documentation suggests, so that the model sees what it wrote.
func callInput(in json.RawMessage) any {
	t := bytes.TrimSpace(in)
	if len(t) == 0 {
		return json.RawMessage(`{}`)
	}
	if t[0] == '{' && json.Valid(t) {
		return json.RawMessage(t)
	}
	return map[string]string{"INVALID_JSON": string(in)}
}
