package llm

import (
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
	case status == http.StatusRequestTimeout || status == http.StatusConflict || status >= 500:
		return KindTransient
	case status >= 400:
		return KindBadRequest
	}
	return KindUnknown
}

func contextTooLong(errType, message string) bool {
	if errType == "context_length_exceeded" {
		return true
	}
	m := strings.ToLower(message)
	return strings.Contains(m, "context length") || strings.Contains(m, "context_length") ||
		strings.Contains(m, "context window") || strings.Contains(m, "prompt is too long") ||
		strings.Contains(m, "maximum context")
}

// ParseRetryAfter reads the wait a server asked for: retry-after-ms, then
// retry-after in seconds or as an HTTP date. It returns zero when there is
// none or it cannot be read.
func ParseRetryAfter(h http.Header, now time.Time) time.Duration {
	if v := h.Get("Retry-After-Ms"); v != "" {
		if ms, err := strconv.ParseFloat(v, 64); err == nil && ms > 0 {
			return time.Duration(ms * float64(time.Millisecond))
		}
	}
	v := h.Get("Retry-After")
	if v == "" {
		return 0
	}
	if s, err := strconv.ParseFloat(v, 64); err == nil {
		if s <= 0 {
			return 0
		}
		return time.Duration(s * float64(time.Second))
	}
	if t, err := http.ParseTime(v); err == nil && t.After(now) {
		return t.Sub(now)
	}
	return 0
}
