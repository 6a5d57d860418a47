// Package anthropic is Hive's [llm.Model] over the Anthropic Messages API,
// through the official Go SDK (github.com/anthropics/anthropic-sdk-go).
//
// The SDK keeps the wire details; this package keeps Hive's policy out of
// it. The client is built from [Config] alone: the SDK's environment
// defaults (ANTHROPIC_API_KEY, ANTHROPIC_BASE_URL, profiles) are switched
// off, so a model talks only to what its configuration names. The SDK's own
// retries are off too: package limit retries, backs off and admits calls,
// and it can only do so if each Generate or Stream is exactly one request.
//
// Every failure is an [*llm.Error] with provider "anthropic": its Kind
// comes from the HTTP status and Anthropic's error type (429 rate-limited,
// 529 or overloaded_error overloaded, "prompt is too long" context too
// long, …), its RetryAfter from the retry-after headers, and its Message
// is one line that never carries the API key. Answers that are not what
// the API sends (an HTML page from a proxy, JSON cut short, a stream that
// ends before message_stop) are transient failures.
//
// Prompt caching is explicit, as Anthropic bills it: [llm.Request].CacheSystem
// puts a cache_control breakpoint after the tools and the system prompt,
// and [llm.Message].Cache one after that message's last block; a
// [llm.Request].CacheTTL of an hour or more makes them 1-hour entries.
//
// A [Model] is also an [llm.Batcher] over the Message Batches API
// (batch.go): each request of a batch is the body Generate would send.
package anthropic

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"strings"
	"time"

	sdk "github.com/anthropics/anthropic-sdk-go"
	"github.com/anthropics/anthropic-sdk-go/option"

	"github.com/hive-swarm/hive/internal/llm"
)

// DefaultMaxTokens caps the output of a request that names no cap; the
// Messages API requires one.
const DefaultMaxTokens = 4096

// DefaultBaseURL is Anthropic's API.
const DefaultBaseURL = "https://api.anthropic.com"

// nonStreamTimeout bounds one non-streaming request. The SDK otherwise
// computes its own timeout from max_tokens, and refuses large max_tokens
// without streaming; Hive leaves deadlines to the caller's context, so
// this is only the upper bound the SDK itself allows.
const nonStreamTimeout = time.Hour

// Config configures a [Model].
type Config struct {
	// Model is the model id used when a request names none.
	Model string
	// BaseURL is the API's base URL; DefaultBaseURL when empty.
	BaseURL string
	// APIKey is sent as x-api-key. It is never logged nor put in errors.
	APIKey string
	// HTTPClient sends the requests; a client without timeout (the
	// context bounds each call) when nil.
	HTTPClient *http.Client
	// MaxTokens caps the output of requests that set no MaxTokens;
	// DefaultMaxTokens when zero.
	MaxTokens int
}

// A Model calls the Anthropic Messages API. It is safe for concurrent use.
type Model struct {
	cfg    Config
	client sdk.Client
}

var _ llm.Model = (*Model)(nil)

// New returns a model for cfg.
func New(cfg Config) *Model {
	if cfg.BaseURL == "" {
		cfg.BaseURL = DefaultBaseURL
	}
	if cfg.MaxTokens <= 0 {
		cfg.MaxTokens = DefaultMaxTokens
	}
	if cfg.HTTPClient == nil {
		cfg.HTTPClient = &http.Client{}
	}
	opts := []option.RequestOption{
		option.WithoutEnvironmentDefaults(),
		option.WithBaseURL(cfg.BaseURL),
		option.WithHTTPClient(cfg.HTTPClient),
		option.WithMaxRetries(0),
		option.WithMiddleware(limitBody),
	}
	if cfg.APIKey != "" {
		opts = append(opts, option.WithAPIKey(cfg.APIKey))
	}
	return &Model{cfg: cfg, client: sdk.NewClient(opts...)}
}

// Generate sends req as one non-streaming request.
func (m *Model) Generate(ctx context.Context, req *llm.Request) (*llm.Response, error) {
	params, err := m.params(req)
	if err != nil {
		return nil, err
	}
	var raw *http.Response
	msg, err := m.client.Messages.New(ctx, params,
		option.WithRequestTimeout(nonStreamTimeout), option.WithResponseInto(&raw))
	if err != nil {
		return nil, m.classify(ctx, err, raw)
	}
	if msg.Type != "message" {
		return nil, m.wireError(raw, "server answered JSON that is not a message")
	}
	return fromMessage(msg), nil
}

// Stream sends req as one streaming request, calls fn (when not nil) with
// each text or tool-input piece as it arrives, and returns the assembled
// response once message_stop arrives.
func (m *Model) Stream(ctx context.Context, req *llm.Request, fn func(llm.Delta)) (*llm.Response, error) {
	params, err := m.params(req)
	if err != nil {
		return nil, err
	}
	var raw *http.Response
	stream := m.client.Messages.NewStreaming(ctx, params, option.WithResponseInto(&raw))
	defer stream.Close()
	if err := stream.Err(); err != nil {
		return nil, m.classify(ctx, err, raw)
	}
	if ct := raw.Header.Get("Content-Type"); !strings.HasPrefix(strings.ToLower(ct), "text/event-stream") {
		return nil, m.wireError(raw, "server did not answer an event stream (content type "+quoteType(ct)+")")
	}
	var a assembler
	for stream.Next() {
		if err := a.add(stream.Current(), fn); err != nil {
			return nil, m.wireError(raw, err.Error())
		}
	}
	if err := stream.Err(); err != nil {
		var apiErr *sdk.Error
		if ctx.Err() == nil && !errors.As(err, &apiErr) {
			var syntax *json.SyntaxError
			if errors.As(err, &syntax) {
				return nil, m.wireError(raw, "stream broke before message_stop: malformed event: "+err.Error())
			}
			return nil, m.wireError(raw, "stream broke before message_stop: "+err.Error())
		}
		return nil, m.classify(ctx, err, raw)
	}
	if !a.stopped {
		if ctx.Err() != nil {
			return nil, cancelled(ctx)
		}
		return nil, m.wireError(raw, "stream ended early, before message_stop")
	}
	return a.response(), nil
}

// fromMessage converts a whole message.
func fromMessage(msg *sdk.Message) *llm.Response {
	r := &llm.Response{
		ID:         msg.ID,
		Model:      string(msg.Model),
		StopReason: stopReason(msg.StopReason),
		Usage: llm.Usage{
			InputTokens:        msg.Usage.InputTokens,
			OutputTokens:       msg.Usage.OutputTokens,
			CacheWriteTokens:   msg.Usage.CacheCreationInputTokens,
			CacheReadTokens:    msg.Usage.CacheReadInputTokens,
			CacheWrite1hTokens: msg.Usage.CacheCreation.Ephemeral1hInputTokens,
		},
	}
	for _, b := range msg.Content {
		switch b.Type {
		case "text":
			if b.Text != "" {
				r.Parts = append(r.Parts, llm.Text{Text: b.Text})
			}
		case "tool_use":
			r.Parts = append(r.Parts, llm.ToolCall{ID: b.ID, Name: b.Name, Input: toolInput(b.Input)})
		}
	}
	return r
}

// toolInput returns a tool_use block's input as the model wrote it. The
// API sends a JSON object; an input sent as a JSON string (as some
// compatible servers, and llmtest for arguments that do not parse, do)
// holds the arguments' text, which is returned verbatim.
func toolInput(in json.RawMessage) json.RawMessage {
	if len(in) == 0 || string(in) == "null" {
		return json.RawMessage(`{}`)
	}
	if in[0] == '"' {
		var s string
		if json.Unmarshal(in, &s) == nil {
			return json.RawMessage(s)
		}
	}
	return append(json.RawMessage(nil), in...)
}

func stopReason(r sdk.StopReason) llm.StopReason {
	switch r {
	case sdk.StopReasonEndTurn:
		return llm.StopEnd
	case sdk.StopReasonMaxTokens, sdk.StopReasonModelContextWindowExceeded:
		return llm.StopMaxTokens
	case sdk.StopReasonStopSequence:
		return llm.StopSequence
	case sdk.StopReasonToolUse:
		return llm.StopToolUse
	case sdk.StopReasonRefusal:
		return llm.StopRefusal
	case "":
		return ""
	}
	return llm.StopOther
}

// maxBody bounds how much of an answer is read, as the OpenAI adapter
// does: a runaway or hostile server cannot make Hive hold more. A batch's
// results, read a line at a time, may be longer: up to maxResults.
const (
	maxBody    = 64 << 20
	maxResults = 1 << 30
)

// limitBody is SDK middleware that cuts every answer's body at maxBody,
// or maxResults for a batch's results.
func limitBody(req *http.Request, next option.MiddlewareNext) (*http.Response, error) {
	res, err := next(req)
	if res != nil && res.Body != nil {
		max := int64(maxBody)
		if req.Method == http.MethodGet && strings.HasSuffix(req.URL.Path, "/results") {
			max = maxResults
		}
		res.Body = llm.CapBody(res.Body, max)
	}
	return res, err
}
