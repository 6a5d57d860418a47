// Package llm holds Hive's provider-neutral view of a language model call.
//
// A [Request] is a system prompt, a list of [Message]s whose content is a
// sealed set of [Part]s ([Text], [ToolCall], [ToolResult], [Image]), the
// [Tool]s the model may call, and sampling knobs. A [Response] carries the
// model's parts, why it stopped, and the [Usage] it was billed for.
//
// A [Model] answers requests, whole or streamed. A [Batcher] sends them
// through the provider's batch API instead, for answers within hours at
// half the price; both adapters are one. Adapters over the vendor
// SDKs live in the subpackages anthropic and openai; replay answers from
// recorded real outputs; llmtest serves the wire protocols locally for tests.
//
// Failures are [*Error] values with a [Kind] that callers branch on
// (rate-limited with the server's retry-after, overloaded, context too long,
// auth, bad request, transient, cancelled, and for batched requests
// expired), so that retry and admission
// logic (package limit) never parses provider messages.
package llm

import (
	"context"
	"encoding/json"
	"strings"
	"time"
)

// A Model answers requests. Implementations are safe for concurrent use.
type Model interface {
	// Generate sends req and returns the whole response.
	Generate(ctx context.Context, req *Request) (*Response, error)
	// Stream sends req as a streaming call, calls fn for each delta as it
	// arrives (fn may be nil), and returns the assembled response, with
	// usage, once the stream ends. A stream that ends early is an error.
	Stream(ctx context.Context, req *Request, fn func(Delta)) (*Response, error)
}

// Role is who speaks a message.
type Role string

const (
	RoleUser      Role = "user"
	RoleAssistant Role = "assistant"
)

// A Message is one turn of a conversation.
type Message struct {
	Role  Role
	Parts []Part
	// Cache marks a prompt-cache breakpoint after this message: providers
	// that support explicit caching (Anthropic cache_control) cache the
	// prefix up to and including it. Others ignore it.
	Cache bool
}

// UserText returns a user message holding text.
func UserText(text string) Message {
	return Message{Role: RoleUser, Parts: []Part{Text{Text: text}}}
}

// AssistantText returns an assistant message holding text.
func AssistantText(text string) Message {
	return Message{Role: RoleAssistant, Parts: []Part{Text{Text: text}}}
}

// Text returns the concatenated text parts of m.
func (m Message) Text() string { return joinText(m.Parts) }

// A Part is one piece of message content. The set is closed: [Text],
// [ToolCall], [ToolResult] and [Image].
type Part interface{ isPart() }

// Text is plain text.
type Text struct {
	Text string
}

// ToolCall is a model's request to call a tool.
type ToolCall struct {
	ID   string
	Name string
	// Input is the JSON object of arguments as the model sent it. It may
	// be malformed; callers validate it.
	Input json.RawMessage
}

// ToolResult answers a ToolCall, in a user message.
type ToolResult struct {
	CallID  string
	Content string
	IsError bool
}

// Image references an image by URL, or carries it inline as Data of
// MediaType (image/png, image/jpeg, …).
type Image struct {
	URL       string
	MediaType string
	Data      []byte
}

func (Text) isPart()       {}
func (ToolCall) isPart()   {}
func (ToolResult) isPart() {}
func (Image) isPart()      {}

// A Tool is a function the model may call.
type Tool struct {
	Name        string
	Description string
	// Schema is the JSON Schema of the arguments object.
	Schema json.RawMessage
}

// ToolMode says whether and how the model must call tools.
type ToolMode string

const (
	ToolAuto ToolMode = ""     // the model decides
	ToolAny  ToolMode = "any"  // the model must call some tool
	ToolNone ToolMode = "none" // the model must not call tools
	ToolName ToolMode = "tool" // the model must call ToolChoice.Name
)

// ToolChoice constrains tool calling. The zero value lets the model decide.
type ToolChoice struct {
	Mode ToolMode
	Name string // with ToolName
}

// A Request is one model call.
type Request struct {
	// Model is the provider's model id. Adapters use their configured
	// model when it is empty.
	Model    string
	System   string
	Messages []Message
	Tools    []Tool
	// ToolChoice constrains tool use; zero means auto.
	ToolChoice ToolChoice
	// ParallelToolCalls, when false, asks providers that support it to
	// return at most one tool call. Nil leaves the provider default (on).
	ParallelToolCalls *bool
	// MaxTokens caps the output. Zero means the adapter's default.
	MaxTokens   int
	Temperature *float64
	Stop        []string
	// CacheSystem marks a prompt-cache breakpoint after the tools and the
	// system prompt.
	CacheSystem bool
	// CacheTTL is how long the breakpoints' entries should live: zero is
	// the provider's default (Anthropic's 5 minutes), an hour or more
	// asks for Anthropic's 1-hour entries (written at 2x input, not
	// 1.25x). Providers with automatic caching ignore it.
	CacheTTL time.Duration
	// CacheKey groups requests that share a prefix, for providers that
	// route by it (OpenAI's prompt_cache_key): requests with the same key
	// and prefix tend to reach the same cache.
	CacheKey string
}

// StopReason is why the model stopped.
type StopReason string

const (
	StopEnd          StopReason = "end_turn"
	StopMaxTokens    StopReason = "max_tokens"
	StopSequence     StopReason = "stop_sequence"
	StopToolUse      StopReason = "tool_use"
	StopRefusal      StopReason = "refusal"
	StopContentLimit StopReason = "content_filter"
	StopOther        StopReason = "other"
)

// Usage is what a call was billed for. InputTokens counts uncached input
// only; cache writes and reads are counted apart, as providers bill them at
// their own prices.
type Usage struct {
	InputTokens      int64 `json:"input_tokens"`
	OutputTokens     int64 `json:"output_tokens"`
	CacheWriteTokens int64 `json:"cache_write_tokens,omitempty"`
	CacheReadTokens  int64 `json:"cache_read_tokens,omitempty"`
	// CacheWrite1hTokens are those of CacheWriteTokens written to 1-hour
	// entries ([Request].CacheTTL), which Anthropic bills at 2x input
	// rather than the 5-minute entries' 1.25x.
	CacheWrite1hTokens int64 `json:"cache_write_1h_tokens,omitempty"`
}

// Add returns u + v.
func (u Usage) Add(v Usage) Usage {
	return Usage{
		InputTokens:        u.InputTokens + v.InputTokens,
		OutputTokens:       u.OutputTokens + v.OutputTokens,
		CacheWriteTokens:   u.CacheWriteTokens + v.CacheWriteTokens,
		CacheReadTokens:    u.CacheReadTokens + v.CacheReadTokens,
		CacheWrite1hTokens: u.CacheWrite1hTokens + v.CacheWrite1hTokens,
	}
}

// Total returns all tokens, input of every kind plus output.
func (u Usage) Total() int64 {
	return u.InputTokens + u.OutputTokens + u.CacheWriteTokens + u.CacheReadTokens
}

// A Response is a model's answer.
type Response struct {
	ID         string
	Model      string // the model id the provider reports
	Parts      []Part // Text and ToolCall parts, in order
	StopReason StopReason
	Usage      Usage
}

// Text returns the concatenated text parts of r.
func (r *Response) Text() string { return joinText(r.Parts) }

// ToolCalls returns the tool calls in r, in order.
func (r *Response) ToolCalls() []ToolCall {
	var calls []ToolCall
	for _, p := range r.Parts {
		if c, ok := p.(ToolCall); ok {
			calls = append(calls, c)
		}
	}
	return calls
}

// Message returns r as an assistant message, to append to a conversation.
func (r *Response) Message() Message {
	return Message{Role: RoleAssistant, Parts: r.Parts}
}

// A Delta is one increment of a streamed response: text, or a piece of a
// tool call's arguments.
type Delta struct {
	Text string
	// For tool calls: Index is the call's position among the response's
	// tool calls; ID and Name are set on its first delta; Input is a piece
	// of its JSON arguments.
	ToolCall *ToolCallDelta
}

// ToolCallDelta is a streamed piece of a tool call.
type ToolCallDelta struct {
	Index int
	ID    string
	Name  string
	Input string
}

func joinText(parts []Part) string {
	var b strings.Builder
	for _, p := range parts {
		if t, ok := p.(Text); ok {
			b.WriteString(t.Text)
		}
	}
	return b.String()
}
