package llm

import (
	"math"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// StatusKind classifies an HTTP error status with the provider's error
// type and message, the way both Anthropic and OpenAI-compatible servers
// report failures.
func StatusKind(status int, errType, message string) Kind {
	if contextTooLong(errType, message) {
		return KindContextTooLong
	}
	switch {
	case status == http.StatusTooManyRequests:
		return KindRateLimited
	case status == 529 || errType == "overloaded_error":
		return KindOverloaded
	case status == http.StatusUnauthorized || status == http.StatusForbidden:
		return KindAuth
	case status == http.StatusNotImplemented || (status == http.StatusInternalServerError && requestRejected(message)):
		return KindBadRequest
	case status == http.StatusRequestTimeout || status == http.StatusConflict || status >= 500:
		return KindTransient
	case status >= 400:
		return KindBadRequest
	}
	return KindUnknown
}

// contextTooLong reports whether an error says the prompt does not fit:
// OpenAI's code context_length_exceeded, llama.cpp's type
// exceed_context_size_error ("the request exceeds the available context
// size, try increasing it", tools/server/utils.hpp format_error_response,
// now server-common.cpp),
// vLLM's "This model's maximum context length is N tokens. However, you
// requested …" (vllm/entrypoints/openai/serving_engine.py
// _validate_input), Anthropic's "prompt is too long".
func contextTooLong(errType, message string) bool {
	if errType == "context_length_exceeded" || errType == "exceed_context_size_error" {
		return true
	}
	m := strings.ToLower(message)
	return strings.Contains(m, "context length") || strings.Contains(m, "context_length") ||
		strings.Contains(m, "context window") || strings.Contains(m, "prompt is too long") ||
		strings.Contains(m, "maximum context") || strings.Contains(m, "available context size")
}

// rejectedPhrases are what a 500 says when the server failed on the
// request itself, not on its own state: the same request fails the same
// way however often it is sent. llama.cpp's server answers every
// exception it does not map to invalid_request_error with 500 server_error
// (tools/server/server.cpp, ex_wrapper): "Failed to parse tool call
// arguments as JSON: [json.exception.parse_error.101] …" when an assistant
// message in the history carries arguments that are not JSON, a chat
// template's error ("… at row 11, column 37"), "Invalid diff", a message
// list the template cannot render, a schema the grammar cannot take.
var rejectedPhrases = []string{
	"failed to parse",
	"unable to parse",
	"parse error",
	"does not match the expected",
	"invalid request",
	"invalid argument",
	"invalid json",
	"invalid diff",
	"invalid tool",
	"template",
	"json.exception",
	"not supported",
	"unsupported",
}

// requestRejected reports whether a 500's message says the request itself
// cannot be served (see [rejectedPhrases]), so that a retry cannot help.
func requestRejected(message string) bool {
	m := strings.ToLower(message)
	for _, p := range rejectedPhrases {
		if strings.Contains(m, p) {
			return true
		}
	}
	return false
}

// ParseRetryAfter reads the wait a server asked for: retry-after-ms, then
// retry-after in seconds or as an HTTP date. It returns zero when there is
// none or it cannot be read: not a number or a date, not positive, not
// finite, or too long for a [time.Duration] (292 years, which no server
// means). How much of a readable wait to honour is the caller's call.
func ParseRetryAfter(h http.Header, now time.Time) time.Duration {
	if v := h.Get("Retry-After-Ms"); v != "" {
		if ms, err := strconv.ParseFloat(v, 64); err == nil {
			if d, ok := duration(ms, time.Millisecond); ok {
				return d
			}
		}
	}
	v := h.Get("Retry-After")
	if v == "" {
		return 0
	}
	if s, err := strconv.ParseFloat(v, 64); err == nil {
		d, _ := duration(s, time.Second)
		return d
	}
	if t, err := http.ParseTime(v); err == nil && t.After(now) {
		return t.Sub(now)
	}
	return 0
}

// duration returns n units as a Duration, and false when n is not a
// positive finite number or the product does not fit: converting such a
// float to an integer gives whatever the platform gives.
func duration(n float64, unit time.Duration) (time.Duration, bool) {
	d := n * float64(unit)
	if !(d > 0) || d >= math.MaxInt64 { // NaN fails d > 0; +Inf is >= MaxInt64
		return 0, false
	}
	return time.Duration(d), true
}
