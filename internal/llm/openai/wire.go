package openai

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/hive-swarm/hive/internal/llm"
)

// The Chat Completions wire format, as much of it as Hive sends and reads.
// These plain structs are encoded and decoded with encoding/json in one
// pass each; see the package comment for why not the SDK's types.

// wireRequest is a chat completion request body.
type wireRequest struct {
	Model               string         `json:"model"`
	Messages            []wireMessage  `json:"messages"`
	Tools               []wireTool     `json:"tools,omitempty"`
	ToolChoice          wireToolChoice `json:"tool_choice,omitempty"`
	ParallelToolCalls   *bool          `json:"parallel_tool_calls,omitempty"`
	MaxTokens           int            `json:"max_tokens,omitempty"`
	MaxCompletionTokens int            `json:"max_completion_tokens,omitempty"`
	Temperature         *float64       `json:"temperature,omitempty"`
	Stop                []string       `json:"stop,omitempty"`
	Stream              bool           `json:"stream,omitempty"`
	StreamOptions       *streamOptions `json:"stream_options,omitempty"`
	PromptCacheKey      string         `json:"prompt_cache_key,omitempty"`
}

type streamOptions struct {
	IncludeUsage bool `json:"include_usage"`
}

// wireMessage is one message of any role; the fields a role does not use
// stay empty and are left out.
type wireMessage struct {
	Role       string         `json:"role"`
	Content    wireContent    `json:"content,omitempty"`
	ToolCalls  []wireToolCall `json:"tool_calls,omitempty"`
	ToolCallID string         `json:"tool_call_id,omitempty"`
}

// wireContent is a message's content: a string ([textContent]) or content
// parts ([partsContent]); nil leaves the field out.
type wireContent interface{ content() }

type textContent string

type partsContent []wirePart

func (textContent) content()  {}
func (partsContent) content() {}

// wirePart is a content part: {"type":"text","text"} or
// {"type":"image_url","image_url":{"url"}}.
type wirePart struct {
	Type     string        `json:"type"`
	Text     string        `json:"text,omitempty"`
	ImageURL *wireImageURL `json:"image_url,omitempty"`
}

type wireImageURL struct {
	URL string `json:"url"`
}

// wireToolCall is an assistant's call of a function tool.
type wireToolCall struct {
	ID       string       `json:"id"`
	Type     string       `json:"type"`
	Function wireFunction `json:"function"`
}

type wireFunction struct {
	Name      string `json:"name"`
	Arguments string `json:"arguments"`
}

// wireTool is a function tool; Function is the cached definition made by
// [toolJSON].
type wireTool struct {
	Type     string          `json:"type"`
	Function json.RawMessage `json:"function"`
}

// wireToolChoice is "required" or "none" ([toolMode]) or a named function
// ([namedTool]); nil leaves the field out (auto).
type wireToolChoice interface{ toolChoice() }

type toolMode string

type namedTool struct {
	Type     string `json:"type"`
	Function struct {
		Name string `json:"name"`
	} `json:"function"`
}

func (toolMode) toolChoice()  {}
func (namedTool) toolChoice() {}

// wireCompletion is a whole (non-streaming) answer: the chat completion
// fields the adapter converts, and the error fields a server may send in
// their place (see [errorFields]), read in one pass.
type wireCompletion struct {
	ID      string       `json:"id"`
	Model   string       `json:"model"`
	Choices []wireChoice `json:"choices"`
	Usage   wireUsage    `json:"usage"`
	errorFields
}

type wireChoice struct {
	FinishReason string `json:"finish_reason"`
	Message      struct {
		Content   wireText `json:"content"`
		Refusal   string   `json:"refusal"`
		ToolCalls []struct {
			ID       string `json:"id"`
			Type     string `json:"type"`
			Function struct {
				Name      string   `json:"name"`
				Arguments wireText `json:"arguments"`
			} `json:"function"`
		} `json:"tool_calls"`
	} `json:"message"`
}

// wireUsage is OpenAI's usage, where prompt_tokens counts cached input too.
type wireUsage struct {
	PromptTokens        wireCount `json:"prompt_tokens"`
	CompletionTokens    wireCount `json:"completion_tokens"`
	PromptTokensDetails struct {
		CachedTokens     wireCount `json:"cached_tokens"`
		CacheWriteTokens wireCount `json:"cache_write_tokens"`
	} `json:"prompt_tokens_details"`
}

// wireCount is a token count read leniently, as the SDK read it: some
// compatible servers send 12.0 or "12". A count read as zero would bill a
// call as free and let a budget be overrun, so anything that is not a
// number, a numeric string or null is an error.
type wireCount int64

func (c *wireCount) UnmarshalJSON(data []byte) error {
	s := string(bytes.TrimSpace(data))
	if s == "null" {
		return nil
	}
	if len(s) >= 2 && s[0] == '"' && s[len(s)-1] == '"' {
		s = s[1 : len(s)-1]
	}
	if n, err := strconv.ParseInt(s, 10, 64); err == nil && n >= 0 {
		*c = wireCount(n)
		return nil
	}
	f, err := strconv.ParseFloat(s, 64)
	if err != nil || !(f >= 0 && f <= math.MaxInt64) {
		return fmt.Errorf("token count %s is not a count", data)
	}
	*c = wireCount(f)
	return nil
}

// wireText is a string read leniently, as the SDK read it: null is "",
// an array of content parts (as some compatible servers send a message's
// content) is their texts joined, and any other JSON value (a tool call's
// arguments sent as an object) is kept as its JSON text.
type wireText string

func (t *wireText) UnmarshalJSON(data []byte) error {
	data = bytes.TrimSpace(data)
	switch {
	case len(data) == 0 || string(data) == "null":
		*t = ""
	case data[0] == '"' && bytes.IndexByte(data, '\\') < 0 && utf8.Valid(data):
		// No escapes, valid UTF-8 (the caller has checked the syntax):
		// the text is what is between the quotes.
		*t = wireText(data[1 : len(data)-1])
	case data[0] == '"':
		var s string
		if err := json.Unmarshal(data, &s); err != nil {
			return err
		}
		*t = wireText(s)
	case data[0] == '[':
		var parts []struct {
			Text string `json:"text"`
		}
		// The caller has checked the syntax; a part that is not a text
		// part of the expected shape adds nothing.
		_ = json.Unmarshal(data, &parts)
		var b strings.Builder
		for _, p := range parts {
			b.WriteString(p.Text)
		}
		*t = wireText(b.String())
	default:
		*t = wireText(data)
	}
	return nil
}

// decodeCompletion reads body in one json.Unmarshal. A syntax error is
// returned as is (the body is not JSON); a value of an unexpected type
// leaves its field empty, as the SDK's decoder did, unless the whole body
// is not an object.
func decodeCompletion(body []byte) (*wireCompletion, error) {
	var wc wireCompletion
	err := json.Unmarshal(body, &wc)
	var te *json.UnmarshalTypeError
	if errors.As(err, &te) && isObject(body) {
		err = nil
	}
	if err != nil {
		return nil, err
	}
	return &wc, nil
}

// completion converts a whole chat completion that has choices.
func (wc *wireCompletion) completion() *llm.Response {
	ch := &wc.Choices[0]
	out := &llm.Response{ID: wc.ID, Model: wc.Model, StopReason: stopReason(ch.FinishReason)}
	msg := &ch.Message
	switch {
	case msg.Content != "":
		out.Parts = append(out.Parts, llm.Text{Text: string(msg.Content)})
	case msg.Refusal != "":
		out.Parts = append(out.Parts, llm.Text{Text: msg.Refusal})
		out.StopReason = llm.StopRefusal
	}
	for _, tc := range msg.ToolCalls {
		if tc.Type != "" && tc.Type != "function" {
			continue
		}
		out.Parts = append(out.Parts, llm.ToolCall{ID: tc.ID, Name: tc.Function.Name, Input: arguments(string(tc.Function.Arguments))})
	}
	out.Usage = wc.Usage.hive()
	return out
}

// hive converts OpenAI's usage to Hive's, where input counts uncached
// tokens only.
func (u wireUsage) hive() llm.Usage {
	read := int64(u.PromptTokensDetails.CachedTokens)
	write := int64(u.PromptTokensDetails.CacheWriteTokens)
	return llm.Usage{
		InputTokens:      max(int64(u.PromptTokens)-read-write, 0),
		OutputTokens:     int64(u.CompletionTokens),
		CacheReadTokens:  read,
		CacheWriteTokens: write,
	}
}

// isObject reports whether the JSON text body starts an object.
func isObject(body []byte) bool {
	body = bytes.TrimLeft(body, " \t\r\n")
	return len(body) > 0 && body[0] == '{'
}
