package openai

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/hive-swarm/hive/internal/llm"
)

// maxErrorBody bounds how much of an error answer is kept.
const maxErrorBody = 1 << 20

// capture is a per-call SDK middleware that keeps what the adapter needs to
// classify a failed answer: its status, headers and, for an error status,
// its body. The SDK reads error bodies itself and loses them when they are
// not the JSON it expects (an HTML page, Ollama's {"error":"…"}, vLLM's
// top-level message); the adapter reads them here first.
type capture struct {
	status int
	header http.Header
	body   []byte // for status >= 400
}

func (c *capture) middleware(req *http.Request, next func(*http.Request) (*http.Response, error)) (*http.Response, error) {
	res, err := next(req)
	if err != nil || res == nil {
		return res, err
	}
	c.status = res.StatusCode
	c.header = res.Header
	if res.StatusCode >= 400 && res.Body != nil {
		c.body, _ = io.ReadAll(io.LimitReader(res.Body, maxErrorBody))
		res.Body.Close()
		res.Body = io.NopCloser(bytes.NewReader(c.body))
	}
	return res, nil
}

// apiErr is an error as OpenAI-compatible servers send it.
type apiErr struct {
	Message string
	Type    string
	Code    string
	// PromptTokens and ContextTokens are llama.cpp's n_prompt_tokens and
	// n_ctx, sent with its exceed_context_size_error (tools/server,
	// server_task_result_error::to_json); zero when absent.
	PromptTokens, ContextTokens int64
}

// bodyError reads an error body in the dialects servers use (see
// [errorFields]). It returns nil when body holds none or is not JSON.
func bodyError(body []byte) *apiErr {
	var f errorFields
	if json.Unmarshal(body, &f) != nil {
		return nil
	}
	return f.apiErr()
}

// errorFields are the top-level fields of an answer that may carry an
// error, in the dialects servers use: {"error":{"message","type","code"}}
// (OpenAI, vLLM, llama.cpp), {"error":"message"} (Ollama), and
// {"message","type","code"} at the top level (older vLLM). A whole
// answer decodes them along with its completion (see [wireCompletion]),
// so that a 200 carrying an error costs no second pass.
type errorFields struct {
	Error   json.RawMessage `json:"error"`
	Message json.RawMessage `json:"message"`
	Type    json.RawMessage `json:"type"`
	Code    json.RawMessage `json:"code"`
	Object  string          `json:"object"`
}

// apiErr returns the error the fields hold, or nil.
func (f *errorFields) apiErr() *apiErr {
	if e := bytes.TrimSpace(f.Error); len(e) > 0 && string(e) != "null" {
		if e[0] == '"' {
			var s string
			json.Unmarshal(e, &s)
			return &apiErr{Message: s}
		}
		var obj struct {
			Message       json.RawMessage `json:"message"`
			Type          json.RawMessage `json:"type"`
			Code          json.RawMessage `json:"code"`
			PromptTokens  int64           `json:"n_prompt_tokens"`
			ContextTokens int64           `json:"n_ctx"`
		}
		if json.Unmarshal(e, &obj) == nil {
			return &apiErr{Message: scalar(obj.Message), Type: scalar(obj.Type), Code: scalar(obj.Code),
				PromptTokens: obj.PromptTokens, ContextTokens: obj.ContextTokens}
		}
		return &apiErr{Message: string(e)}
	}
	if f.Object == "error" || (len(f.Message) > 0 && len(f.Type) > 0) {
		return &apiErr{Message: scalar(f.Message), Type: scalar(f.Type), Code: scalar(f.Code)}
	}
	return nil
}

// scalar renders a JSON string, number or bool as text; null as "".
func scalar(raw json.RawMessage) string {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 || string(raw) == "null" {
		return ""
	}
	var s string
	if json.Unmarshal(raw, &s) == nil {
		return s
	}
	return string(raw)
}

// statusError classifies an error status.
func (m *Model) statusError(c *capture) *llm.Error {
	ct := c.header.Get("Content-Type")
	e := bodyError(c.body)
	if e == nil {
		var msg string
		switch {
		case len(bytes.TrimSpace(c.body)) == 0:
			msg = http.StatusText(c.status)
		case !isJSON(ct):
			msg = "server did not answer JSON (content type " + quote(ct) + ")"
		default:
			msg = "server did not answer JSON: malformed error body"
		}
		return &llm.Error{
			Kind:       kindOf(c.status, "", "", ""),
			Provider:   provider,
			Status:     c.status,
			RetryAfter: llm.ParseRetryAfter(c.header, time.Now()),
			Message:    m.clean(msg),
		}
	}
	return m.apiError(c.status, c.header, e)
}

// apiError turns a provider error object into an *llm.Error.
func (m *Model) apiError(status int, h http.Header, e *apiErr) *llm.Error {
	msg := e.Message
	if msg == "" {
		msg = http.StatusText(status)
	}
	// A numeric code (llama.cpp's and vLLM's "code":400) repeats the
	// status, which the error shows already; a named one adds to it.
	if e.Code != "" && !isNumber(e.Code) && !strings.Contains(msg, e.Code) {
		msg += " (" + e.Code + ")"
	}
	switch {
	case e.PromptTokens > 0 && e.ContextTokens > 0:
		msg += fmt.Sprintf(" (prompt %d tokens, n_ctx %d)", e.PromptTokens, e.ContextTokens)
	case e.ContextTokens > 0:
		msg += fmt.Sprintf(" (n_ctx %d)", e.ContextTokens)
	}
	var ra time.Duration
	if h != nil {
		ra = llm.ParseRetryAfter(h, time.Now())
	}
	return &llm.Error{
		Kind:       kindOf(status, e.Type, e.Code, e.Message),
		Provider:   provider,
		Status:     status,
		RetryAfter: ra,
		Message:    m.clean(msg),
	}
}

// kindOf classifies an error answer.
//
// Beyond [llm.StatusKind]: the code context_length_exceeded is a context
// error whatever the type; a quota that has run out (insufficient_quota,
// sent as a 429) is [llm.KindAuth], since no wait will help; and a 5xx
// that says it is overloaded (OpenAI's engine_overloaded, a 503 whose
// message says "overloaded") is [llm.KindOverloaded], like a 529, so that
// package limit cuts concurrency instead of merely retrying. A bare 503 is
// [llm.KindTransient]. An error with no status (one sent inside a stream)
// that is otherwise unclassified is transient.
func kindOf(status int, typ, code, msg string) llm.Kind {
	switch code {
	case "context_length_exceeded", "string_above_max_length":
		return llm.KindContextTooLong
	case "insufficient_quota":
		return llm.KindAuth
	}
	k := llm.StatusKind(status, typ, msg)
	if (k == llm.KindTransient || status == 0) && k != llm.KindContextTooLong && overloaded(typ, code, msg) {
		return llm.KindOverloaded
	}
	if k == llm.KindUnknown {
		// No error status: an error object inside a stream or a 200.
		return llm.KindTransient
	}
	return k
}

func overloaded(typ, code, msg string) bool {
	for _, s := range []string{typ, code, msg} {
		if strings.Contains(strings.ToLower(s), "overloaded") {
			return true
		}
	}
	return false
}

// isNumber reports whether s is a decimal integer.
func isNumber(s string) bool {
	_, err := strconv.Atoi(s)
	return err == nil
}

func quote(s string) string {
	b, _ := json.Marshal(s)
	return string(b)
}
