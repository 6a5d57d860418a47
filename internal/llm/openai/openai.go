// Package openai is Hive's [llm.Model] over OpenAI's Chat Completions API,
// through the official SDK (github.com/openai/openai-go/v3).
//
// Chat Completions is the lingua franca of model servers: with [Config]
// BaseURL pointed elsewhere the same adapter talks to vLLM, SGLang, Ollama,
// llama.cpp server, LM Studio or OpenRouter. So the adapter is strict about
// what it is told and lenient about what it needs. It reads answers itself,
// so that every way a server can fail — an HTML page from a proxy, JSON cut
// in half, an error body in one of several dialects, a stream that stops
// before its finish_reason — comes back as an [*llm.Error] with a
// [llm.Kind] that package limit can act on, never as a silent partial
// answer.
//
// It also writes request bodies and decodes whole answers itself, from
// small wire structs (wire.go) in one encoding/json pass each: the SDK's
// reflection-based param encoder and response decoder took about a fifth
// of a swarm's CPU and over half the bytes it allocated per worker call.
// The SDK still sends each body (base URL, auth header, transport,
// middleware) and decodes stream events.
//
// The SDK's own retries are off: Hive's package limit owns retries and
// admission, and each Generate or Stream is exactly one HTTP request.
//
// Usage follows Hive's convention, not OpenAI's: prompt_tokens counts
// cached input too, so [llm.Usage].InputTokens is prompt_tokens less
// prompt_tokens_details.cached_tokens (CacheReadTokens) and less
// prompt_tokens_details.cache_write_tokens (CacheWriteTokens) where the
// server reports cache writes.
//
// A [Model] is also an [llm.Batcher] over OpenAI's Batch API (batch.go):
// each request of a batch is the body Generate would send, uploaded as a
// line of a JSONL file.
package openai

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/openai/openai-go/v3"
	"github.com/openai/openai-go/v3/option"

	"github.com/hive-swarm/hive/internal/llm"
)

// provider names this adapter in errors.
const provider = "openai"

// DefaultBaseURL is OpenAI's API.
const DefaultBaseURL = "https://api.openai.com/v1"

// DefaultMaxTokens caps the output of requests that set no MaxTokens.
const DefaultMaxTokens = 4096

// maxBody bounds how much of an answer is read, against a runaway server.
const maxBody = 64 << 20

// Config configures a [Model]. The zero value talks to OpenAI with no key.
type Config struct {
	// Model is the model id used when a request names none.
	Model string
	// BaseURL is the API root, up to and including /v1 (the adapter posts
	// to BaseURL + "/chat/completions"). Default [DefaultBaseURL].
	BaseURL string
	// APIKey is sent as a bearer token; empty sends none (local servers).
	APIKey string
	// HTTPClient sends the requests. Default: a client whose transport
	// gives up on a server that sends no response headers in 10 minutes.
	HTTPClient *http.Client
	// MaxTokens is the output cap of requests that set none. Default
	// [DefaultMaxTokens].
	MaxTokens int
	// Dialect is the server's kind, for what cannot be negotiated:
	// [DialectOpenAI], [DialectLlamaCpp], [DialectVLLM], [DialectOllama];
	// empty asks the server (GET /models, once) and takes OpenAI's when it
	// cannot tell.
	Dialect string
}

// The dialects of Chat Completions servers (Config.Dialect).
const (
	DialectOpenAI   = "openai"
	DialectLlamaCpp = "llama.cpp"
	DialectVLLM     = "vllm"
	DialectOllama   = "ollama"
)

// Model is an [llm.Model] over Chat Completions. It is safe for concurrent
// use.
type Model struct {
	cfg Config
	svc openai.ChatCompletionService
	// files and batches serve the Batch API (batch.go).
	files   openai.FileService
	batches openai.BatchService
	// completionTokens sends max_completion_tokens instead of max_tokens.
	completionTokens bool
	// dialect is Config.Dialect, or what the server said it is.
	dialect func() string
}

// New returns a Model for cfg. It reads no environment variables: the
// caller passes the key.
func New(cfg Config) *Model {
	if cfg.BaseURL == "" {
		cfg.BaseURL = DefaultBaseURL
	}
	cfg.BaseURL = strings.TrimRight(cfg.BaseURL, "/")
	if cfg.MaxTokens <= 0 {
		cfg.MaxTokens = DefaultMaxTokens
	}
	if cfg.HTTPClient == nil {
		cfg.HTTPClient = defaultClient()
	}
	opts := []option.RequestOption{
		option.WithBaseURL(cfg.BaseURL),
		option.WithHTTPClient(cfg.HTTPClient),
		option.WithMaxRetries(0),
	}
	if cfg.APIKey != "" {
		opts = append(opts, option.WithAPIKey(cfg.APIKey))
	}
	// NewChatCompletionService, unlike NewClient, reads no OPENAI_*
	// variables behind the caller's back.
	m := &Model{
		cfg:              cfg,
		svc:              openai.NewChatCompletionService(opts...),
		files:            openai.NewFileService(opts...),
		batches:          openai.NewBatchService(opts...),
		completionTokens: wantsCompletionTokens(cfg.BaseURL),
	}
	m.dialect = sync.OnceValue(func() string {
		switch {
		case cfg.Dialect != "":
			return cfg.Dialect
		case cfg.BaseURL == DefaultBaseURL:
			return DialectOpenAI
		}
		return detectDialect(cfg)
	})
	return m
}

// detectDialect asks the server what it is: GET /models, whose owned_by
// says "llamacpp" on llama.cpp (tools/server, handle_models), "vllm" on
// vLLM (ModelCard.owned_by) and "library" for an Ollama library model.
// A server that does not say is taken for OpenAI's.
func detectDialect(cfg Config) string {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, cfg.BaseURL+"/models", nil)
	if err != nil {
		return DialectOpenAI
	}
	if cfg.APIKey != "" {
		req.Header.Set("Authorization", "Bearer "+cfg.APIKey)
	}
	res, err := cfg.HTTPClient.Do(req)
	if err != nil {
		return DialectOpenAI
	}
	defer res.Body.Close()
	var list struct {
		Data []struct {
			OwnedBy string `json:"owned_by"`
		} `json:"data"`
	}
	if res.StatusCode != http.StatusOK || json.NewDecoder(io.LimitReader(res.Body, 1<<20)).Decode(&list) != nil || len(list.Data) == 0 {
		return DialectOpenAI
	}
	switch strings.ToLower(list.Data[0].OwnedBy) {
	case "llamacpp":
		return DialectLlamaCpp
	case "vllm":
		return DialectVLLM
	case "library", "ollama":
		return DialectOllama
	}
	return DialectOpenAI
}

func defaultClient() *http.Client {
	if t, ok := http.DefaultTransport.(*http.Transport); ok {
		t = t.Clone()
		t.ResponseHeaderTimeout = 10 * time.Minute
		return &http.Client{Transport: t}
	}
	return &http.Client{}
}

// wantsCompletionTokens reports whether the server behind base takes the
// output cap as max_completion_tokens. OpenAI (and Azure OpenAI) deprecated
// max_tokens and reject it for reasoning models; most OpenAI-compatible
// servers know only max_tokens.
func wantsCompletionTokens(base string) bool {
	host := base
	if _, rest, ok := strings.Cut(host, "://"); ok {
		host = rest
	}
	host, _, _ = strings.Cut(host, "/")
	host = strings.ToLower(host)
	return host == "api.openai.com" || strings.HasSuffix(host, ".openai.azure.com")
}

// Generate sends req and returns the whole response.
func (m *Model) Generate(ctx context.Context, req *llm.Request) (*llm.Response, error) {
	body, err := m.body(req, false)
	if err != nil {
		return nil, err
	}
	res, err := m.send(ctx, body)
	if err != nil {
		return nil, err
	}
	defer res.Body.Close()
	data, err := io.ReadAll(io.LimitReader(res.Body, maxBody))
	if err != nil {
		return nil, m.wireError(ctx, res.StatusCode, "reading the answer", err)
	}
	ct := res.Header.Get("Content-Type")
	if !isJSON(ct) {
		return nil, m.errorf(llm.KindTransient, res.StatusCode, "server did not answer JSON (content type %q)", ct)
	}
	wc, err := decodeCompletion(data)
	if err != nil {
		if !json.Valid(data) {
			return nil, m.errorf(llm.KindTransient, res.StatusCode, "server did not answer JSON: malformed body of %d bytes (content type %q)", len(data), ct)
		}
		return nil, m.errorf(llm.KindTransient, res.StatusCode, "server did not answer a chat completion: %v", err)
	}
	if e := wc.apiErr(); e != nil {
		// A 200 carrying an error object, as some proxies send.
		return nil, m.apiError(res.StatusCode, res.Header, e)
	}
	if len(wc.Choices) == 0 {
		return nil, m.errorf(llm.KindTransient, res.StatusCode, "server answered a chat completion with no choices")
	}
	return wc.completion(), nil
}

// send posts body, a request made by [Model.body], and returns the raw
// answer of a 2xx, leaving its body for the caller to read; any other
// outcome is an *llm.Error.
//
// The SDK sends it, so that base URL, auth and transport stay the SDK's:
// option.WithRequestBody replaces the body the SDK would encode from its
// (here empty) params, and WithResponseBodyInto hands back the answer
// undecoded.
func (m *Model) send(ctx context.Context, body []byte) (*http.Response, error) {
	var got capture
	var res *http.Response
	_, err := m.svc.New(ctx, openai.ChatCompletionNewParams{},
		option.WithRequestBody("application/json", body),
		option.WithResponseBodyInto(&res),
		option.WithMiddleware(got.middleware))
	switch {
	case ctx.Err() != nil:
		if res != nil && res.Body != nil {
			res.Body.Close()
		}
		return nil, m.cancelled(ctx)
	case got.status >= 400:
		return nil, m.statusError(&got)
	case err != nil:
		return nil, m.wireError(ctx, 0, "cannot reach "+m.cfg.BaseURL, err)
	case res == nil || res.Body == nil:
		return nil, m.errorf(llm.KindTransient, got.status, "no answer from %s", m.cfg.BaseURL)
	}
	return res, nil
}

// arguments returns a tool call's arguments as sent, "{}" when empty.
func arguments(s string) json.RawMessage {
	if strings.TrimSpace(s) == "" {
		return json.RawMessage("{}")
	}
	return json.RawMessage(s)
}

// stopReason maps a finish_reason. OpenAI does not tell a stop sequence
// from a natural end: both are "stop", and both map to [llm.StopEnd].
func stopReason(finish string) llm.StopReason {
	switch finish {
	case "stop", "eos", "end_turn":
		return llm.StopEnd
	case "length":
		return llm.StopMaxTokens
	case "tool_calls", "function_call":
		return llm.StopToolUse
	case "content_filter":
		return llm.StopContentLimit
	}
	return llm.StopOther
}

func isJSON(contentType string) bool {
	ct := strings.ToLower(contentType)
	return strings.Contains(ct, "application/json") || strings.Contains(ct, "+json")
}

// cancelled is the error for a call whose ctx ended.
func (m *Model) cancelled(ctx context.Context) *llm.Error {
	err := context.Cause(ctx)
	if err == nil {
		err = ctx.Err()
	}
	return &llm.Error{Kind: llm.KindCancelled, Provider: provider, Message: m.clean("call cancelled: " + err.Error()), Err: err}
}

// wireError classifies a failure to reach the server or read its answer.
func (m *Model) wireError(ctx context.Context, status int, what string, err error) *llm.Error {
	if ctx.Err() != nil {
		return m.cancelled(ctx)
	}
	inner := err
	var ue *url.Error
	if errors.As(err, &ue) && ue.Err != nil {
		// A *url.Error repeats the full URL; the message names it already.
		inner = ue.Err
	}
	return &llm.Error{Kind: llm.KindTransient, Provider: provider, Status: status, Message: m.clean(what + ": " + inner.Error()), Err: err}
}

func (m *Model) errorf(kind llm.Kind, status int, format string, args ...any) *llm.Error {
	return &llm.Error{Kind: kind, Provider: provider, Status: status, Message: m.clean(fmt.Sprintf(format, args...))}
}

// clean makes msg one line of bounded length without the API key.
func (m *Model) clean(msg string) string {
	if m.cfg.APIKey != "" {
		msg = strings.ReplaceAll(msg, m.cfg.APIKey, "[redacted]")
	}
	msg = strings.Join(strings.Fields(msg), " ")
	if len(msg) > 1000 {
		msg = msg[:1000] + "…"
	}
	return msg
}
