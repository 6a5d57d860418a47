// Package llmtest serves the Anthropic Messages and OpenAI Chat Completions
// wire protocols from local httptest servers, so that every test in Hive
// talks to a real HTTP peer through the real SDKs instead of the network.
//
// A [Server] parses each request into a [Call], asks a [Handler] for the
// [Reply], and writes it as the provider would: JSON bodies, SSE event
// sequences for streams, error bodies with retry-after headers, or broken
// answers (HTML, malformed JSON, a stream cut short) on demand. It counts
// every request and the requests in flight.
//
// OpenAI-compatible servers differ where it hurts: [NewLlamaCpp],
// [NewVLLM] and [NewOllama] speak their dialects of [NewOpenAI]'s
// protocol (tool_choice, history they refuse, context overflow, error
// bodies), each departure documented with its source, and
// [Server.ContextTokens] gives the model a context size.
//
// [Server.SimulateCache] gives a server the provider's prompt cache, as
// documented: Anthropic's cache_control breakpoints, OpenAI's automatic
// prefix caching. Usage then reports cache reads and writes, and
// [Server.CacheStats] sums them, so that tests and benchmarks measure
// cache hits and what they save.
//
// [NewAnthropic] also serves the Message Batches API and [NewOpenAI] the
// Batch API with its files: each item of a batch is answered by the
// [Handler] as a direct call would be, when the batch ends
// ([BatchRules]); [TestBatcher] is the conformance suite of the adapters'
// [llm.Batcher].
package llmtest

import (
	"io"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hive-swarm/hive/internal/llm"
)

// A Call is one request as the server received it, parsed back into
// provider-neutral types.
type Call struct {
	N         int    // 1-based order of arrival
	Path      string // URL path
	Model     string
	System    string
	Messages  []llm.Message
	Tools     []string // tool names offered
	Stream    bool
	MaxTokens int
	// ToolChoice is the tool choice the server went by: "auto", "none",
	// "required", or "tool:NAME" for a named function; empty when the
	// request named none and the server has no default.
	ToolChoice string
	// Warnings are what the server logged about the request, e.g.
	// llama.cpp's "Wrong type supplied for parameter 'tool_choice'".
	Warnings []string
	Header   http.Header
	Body     []byte
	// Batch is the id of the batch the call came in, empty for a direct
	// call; CustomID is its custom id there.
	Batch    string
	CustomID string

	// cache is what the request reads from and writes to the simulated
	// cache; nil when caching is off.
	cache *cacheUse
}

// LastUserText returns the text of the last user message.
func (c *Call) LastUserText() string {
	for i := len(c.Messages) - 1; i >= 0; i-- {
		if c.Messages[i].Role == llm.RoleUser {
			return c.Messages[i].Text()
		}
	}
	return ""
}

// ToolResults returns the tool results carried by the last user message.
func (c *Call) ToolResults() []llm.ToolResult {
	for i := len(c.Messages) - 1; i >= 0; i-- {
		m := c.Messages[i]
		if m.Role != llm.RoleUser {
			continue
		}
		var out []llm.ToolResult
		for _, p := range m.Parts {
			if r, ok := p.(llm.ToolResult); ok {
				out = append(out, r)
			}
		}
		return out
	}
	return nil
}

// A ToolCall in a scripted reply. Input is sent verbatim, so a test can
// send malformed arguments.
type ToolCall struct {
	ID    string // generated when empty
	Name  string
	Input string
}

// A Reply scripts the answer to one request.
type Reply struct {
	Text      string
	ToolCalls []ToolCall
	// StopReason defaults to tool_use when there are tool calls, else
	// end_turn.
	StopReason llm.StopReason
	// Usage defaults to a count of about four bytes a token of the request
	// body and the reply, the prompt split into uncached input, cache
	// reads and cache writes when the server simulates a cache.
	Usage *llm.Usage
	// Latency is waited before the answer starts (the request's context
	// ends it early).
	Latency time.Duration
	// EventDelay is waited between SSE events of a stream.
	EventDelay time.Duration

	// Status, when non-zero and not 200, answers with the provider's error
	// body: ErrorType (defaulted from the status) and ErrorMessage.
	Status       int
	ErrorType    string
	ErrorMessage string
	// RetryAfter is sent as the retry-after header when not empty.
	RetryAfter string
	// HTML answers a 200 (or Status) with an HTML page, as a misconfigured
	// proxy does.
	HTML bool
	// Malformed answers a 200 with a JSON body cut in half.
	Malformed bool
	// TruncateAfter, when positive, closes a stream after that many SSE
	// events, without the terminating events.
	TruncateAfter int
}

// A Handler scripts the server: it returns the reply to a call. It is
// called concurrently.
type Handler func(c *Call) Reply

// Sequence returns a handler answering the nth request with replies[n-1];
// past the end it repeats the last reply.
func Sequence(replies ...Reply) Handler {
	var n atomic.Int64
	return func(*Call) Reply {
		i := int(n.Add(1)) - 1
		if i >= len(replies) {
			i = len(replies) - 1
		}
		return replies[i]
	}
}

// protocol is one wire format.
type protocol interface {
	// path is the endpoint path, e.g. /v1/messages.
	path() string
	// authorized reports whether the request carries key.
	authorized(r *http.Request, key string) bool
	// parse decodes a request body.
	parse(body []byte, c *Call) error
	// writeError writes an error status with the provider's error body.
	writeError(w http.ResponseWriter, status int, errType, message string)
	// write writes a successful reply, whole or as a stream.
	write(w http.ResponseWriter, c *Call, rep Reply)
	// refuse writes the error the server answers a request it will
	// never serve (longer than contextTokens, when positive; a history
	// it cannot render), before the handler is asked, and reports whether
	// it did.
	refuse(w http.ResponseWriter, c *Call, contextTokens int) bool
	// cachePrompt reads a parsed request as the provider's prompt cache
	// sees it; an error is the 400 the provider answers (too many
	// breakpoints).
	cachePrompt(c *Call, r CacheRules) (*cachePrompt, error)
}

// A Server is a local model API server.
type Server struct {
	*httptest.Server
	// APIKey, when set, is required on every request; requests without it
	// get the provider's 401.
	APIKey string
	// ContextTokens, when positive, is the model's context size (llama.cpp's
	// n_ctx, vLLM's max_model_len): a request whose body holds more tokens,
	// counted as four bytes each, is answered with the server's context
	// error without asking the handler. Ollama cuts the prompt instead and
	// answers.
	ContextTokens int
	// Slots, when positive, is how many requests are answered at once
	// (llama-server's --parallel); the rest wait their turn in a queue,
	// as llama.cpp's server queues tasks when every slot is busy
	// (tools/server, server_queue) rather than answering 429. Set it
	// before the first request.
	Slots int

	proto   protocol
	handler Handler
	slots   chan struct{} // made at the first request when Slots > 0
	once    sync.Once
	cache   atomic.Pointer[promptCache] // nil unless SimulateCache

	requests atomic.Int64
	inFlight atomic.Int64
	maxIn    atomic.Int64

	mu    sync.Mutex
	calls []*Call // guarded by mu

	batches batchState
}

func newServer(p protocol, h Handler) *Server {
	s := &Server{proto: p, handler: h}
	s.Server = httptest.NewServer(http.HandlerFunc(s.serve))
	return s
}

// Requests returns how many model calls arrived, whatever their answer:
// direct calls and the items of batches that ran, not the requests that
// manage batches and files.
func (s *Server) Requests() int { return int(s.requests.Load()) }

// InFlight returns how many requests are being answered now.
func (s *Server) InFlight() int { return int(s.inFlight.Load()) }

// MaxInFlight returns the most requests ever answered at once.
func (s *Server) MaxInFlight() int { return int(s.maxIn.Load()) }

// Calls returns the parsed requests in order of arrival.
func (s *Server) Calls() []*Call {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]*Call(nil), s.calls...)
}

func (s *Server) serve(w http.ResponseWriter, r *http.Request) {
	// The model list is not a model call: it is neither counted nor
	// recorded.
	if o, ok := s.proto.(*openAI); ok && r.Method == http.MethodGet && r.URL.Path == "/v1/models" {
		o.models(w)
		return
	}
	if s.serveBatch(w, r) {
		return
	}
	s.answer(w, r, nil)
}

// answer serves a model call: a direct one, or the item of a batch when
// item is not nil.
func (s *Server) answer(w http.ResponseWriter, r *http.Request, item *batchItem) {
	n := s.requests.Add(1)
	in := s.inFlight.Add(1)
	defer s.inFlight.Add(-1)
	for {
		m := s.maxIn.Load()
		if in <= m || s.maxIn.CompareAndSwap(m, in) {
			break
		}
	}
	if r.Method != http.MethodPost || r.URL.Path != s.proto.path() {
		s.proto.writeError(w, http.StatusNotFound, "not_found_error", "no route for "+r.Method+" "+r.URL.Path)
		return
	}
	if s.APIKey != "" && !s.proto.authorized(r, s.APIKey) {
		s.proto.writeError(w, http.StatusUnauthorized, "authentication_error", wrongKey)
		return
	}
	body, err := io.ReadAll(r.Body)
	if err != nil {
		return
	}
	c := &Call{N: int(n), Path: r.URL.Path, Header: r.Header.Clone(), Body: body}
	if item != nil {
		c.Batch, c.CustomID = item.batch, item.customID
	}
	if err := s.proto.parse(body, c); err != nil {
		s.proto.writeError(w, http.StatusBadRequest, "invalid_request_error", err.Error())
		return
	}
	cache := s.cache.Load()
	var prompt *cachePrompt
	if cache != nil {
		if prompt, err = s.proto.cachePrompt(c, cache.rules); err != nil {
			s.proto.writeError(w, http.StatusBadRequest, "invalid_request_error", err.Error())
			return
		}
	}
	s.mu.Lock()
	s.calls = append(s.calls, c)
	s.mu.Unlock()
	if s.proto.refuse(w, c, s.ContextTokens) {
		return
	}

	if s.once.Do(func() {
		if s.Slots > 0 {
			s.slots = make(chan struct{}, s.Slots)
		}
	}); s.slots != nil {
		select {
		case s.slots <- struct{}{}:
			defer func() { <-s.slots }()
		case <-r.Context().Done():
			return
		}
	}
	if cache != nil {
		// The prompt is looked up when its processing starts (past the
		// slot queue), and its entries written when its answer starts: a
		// request arriving in between misses them.
		c.cache = cache.lookup(prompt)
		c.cache.clamp(promptTotal(c))
	}
	rep := s.handler(c)
	if !sleep(r, rep.Latency) {
		return
	}
	if rep.RetryAfter != "" {
		w.Header().Set("Retry-After", rep.RetryAfter)
	}
	switch {
	case rep.HTML:
		status := rep.Status
		if status == 0 {
			status = http.StatusOK
		}
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		w.WriteHeader(status)
		io.WriteString(w, "<!DOCTYPE html><html><head><title>502 Bad Gateway</title></head><body><h1>Bad Gateway</h1></body></html>\n")
	case rep.Status != 0 && rep.Status != http.StatusOK:
		typ := rep.ErrorType
		if typ == "" {
			typ = defaultErrorType(rep.Status)
		}
		msg := rep.ErrorMessage
		if msg == "" {
			msg = http.StatusText(rep.Status)
		}
		s.proto.writeError(w, rep.Status, typ, msg)
	case rep.Malformed:
		w.Header().Set("Content-Type", "application/json")
		io.WriteString(w, `{"id":"broken","choices":[{"mess`)
	default:
		if cache != nil {
			cache.commit(c.cache, promptTotal(c))
		}
		s.proto.write(w, c, rep)
	}
}

// wrongKey is the message of the server's own 401, when a request lacks
// [Server.APIKey]; a scripted 401 carries the handler's message.
const wrongKey = "invalid api key"

// sleep waits d or until the request ends; it reports whether to go on.
func sleep(r *http.Request, d time.Duration) bool {
	if d <= 0 {
		return true
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-r.Context().Done():
		return false
	}
}

func defaultErrorType(status int) string {
	switch status {
	case 400:
		return "invalid_request_error"
	case 401:
		return "authentication_error"
	case 403:
		return "permission_error"
	case 404:
		return "not_found_error"
	case 413:
		return "request_too_large"
	case 429:
		return "rate_limit_error"
	case 529:
		return "overloaded_error"
	}
	return "api_error"
}

// promptTokens estimates the tokens of a request: four bytes each.
func promptTokens(c *Call) int { return len(c.Body) / 4 }

// usageFor returns rep's usage, or an estimate from the sizes of the
// request body and the reply, the output at most the request's max
// tokens, as a real server counts it (a scripted reply may be longer than
// a model could have written).
func usageFor(c *Call, rep Reply) llm.Usage {
	if rep.Usage != nil {
		return *rep.Usage
	}
	out := len(rep.Text)
	for _, tc := range rep.ToolCalls {
		out += len(tc.Name) + len(tc.Input)
	}
	u := llm.Usage{InputTokens: promptTotal(c), OutputTokens: int64(out/4 + 1)}
	if c.MaxTokens > 0 {
		u.OutputTokens = min(u.OutputTokens, int64(c.MaxTokens))
	}
	if cu := c.cache; cu != nil {
		u.CacheReadTokens = cu.read
		u.CacheWriteTokens = cu.write5m + cu.write1h
		u.CacheWrite1hTokens = cu.write1h
		u.InputTokens = cu.uncached(u.InputTokens)
	}
	return u
}

// promptTotal is the input tokens usage reports for c's prompt, cached
// or not.
func promptTotal(c *Call) int64 { return int64(len(c.Body)/4 + 1) }

// stopReason returns rep's stop reason with its default.
func stopReason(rep Reply) llm.StopReason {
	switch {
	case rep.StopReason != "":
		return rep.StopReason
	case len(rep.ToolCalls) > 0:
		return llm.StopToolUse
	}
	return llm.StopEnd
}
