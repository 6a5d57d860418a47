package anthropic

import (
	"context"
	"encoding/json"
	"errors"
	"mime"
	"net/http"
	"net/url"
	"strings"
	"time"

	sdk "github.com/anthropics/anthropic-sdk-go"

	"github.com/hive-swarm/hive/internal/llm"
)

const provider = "anthropic"

// maxMessage caps the length of an error message taken from the wire.
const maxMessage = 512

// classify turns an error from the SDK into an [*llm.Error]. raw is the
// HTTP response when one arrived.
func (m *Model) classify(ctx context.Context, err error, raw *http.Response) error {
	if ctx.Err() != nil {
		return cancelled(ctx)
	}
	var apiErr *sdk.Error
	if errors.As(err, &apiErr) {
		return m.apiError(apiErr)
	}
	var uerr *url.Error
	if errors.As(err, &uerr) {
		if errors.Is(uerr.Err, context.Canceled) || errors.Is(uerr.Err, context.DeadlineExceeded) {
			// A deadline of the SDK's own, not the caller's.
			return &llm.Error{Kind: llm.KindTransient, Provider: provider,
				Message: m.oneLine("request to " + redactURL(uerr.URL) + " timed out"), Err: err}
		}
		return &llm.Error{Kind: llm.KindTransient, Provider: provider,
			Message: m.oneLine("request to " + redactURL(uerr.URL) + " failed: " + uerr.Err.Error()), Err: err}
	}
	if raw != nil && raw.StatusCode < 400 {
		// The answer arrived but could not be read as a message.
		ct := quoteType(raw.Header.Get("Content-Type"))
		if ct != "application/json" && !strings.HasSuffix(ct, "+json") {
			return m.wireError(raw, "server did not answer JSON (content type "+ct+")")
		}
		return m.wireError(raw, "server answered malformed JSON (content type "+ct+"): "+sdkDetail(err))
	}
	return &llm.Error{Kind: llm.KindTransient, Provider: provider, Message: m.oneLine(err.Error()), Err: err}
}

// apiError classifies an error status, or an error event in a stream.
func (m *Model) apiError(e *sdk.Error) *llm.Error {
	// The SDK's error is not kept as Err: it holds the request, whose
	// headers carry the API key, and the raw body, which may echo it.
	out := &llm.Error{Provider: provider}
	var h http.Header
	if e.Response != nil {
		h = e.Response.Header
	}
	raw := e.RawJSON()
	var body struct {
		Type  string `json:"type"`
		Error struct {
			Type    string `json:"type"`
			Message string `json:"message"`
		} `json:"error"`
	}
	isJSON := json.Unmarshal([]byte(raw), &body) == nil && body.Type == "error"
	errType, msg := body.Error.Type, body.Error.Message
	if e.StatusCode >= 400 {
		out.Status = e.StatusCode
		out.Kind = llm.StatusKind(e.StatusCode, errType, msg)
	} else {
		// An error event in a stream that had started with 200.
		out.Kind = typeKind(errType, msg)
	}
	switch {
	case !isJSON && e.StatusCode >= 400:
		msg = "server did not answer JSON (content type " + quoteType(h.Get("Content-Type")) + ")"
	case msg == "" && errType != "":
		msg = errType
	case msg == "":
		msg = http.StatusText(e.StatusCode)
	}
	if errType != "" && !strings.Contains(msg, errType) && isJSON {
		msg = errType + ": " + msg
	}
	if e.StatusCode < 400 {
		msg = "error event in stream: " + msg
	}
	out.Message = m.oneLine(msg)
	if h != nil {
		out.RetryAfter = llm.ParseRetryAfter(h, time.Now())
	}
	return out
}

// typeKind classifies an error by Anthropic's error type alone, as an
// error event inside a stream carries no status of its own.
func typeKind(errType, msg string) llm.Kind {
	status := map[string]int{
		"invalid_request_error": 400,
		"authentication_error":  401,
		"permission_error":      403,
		"not_found_error":       404,
		"request_too_large":     413,
		"rate_limit_error":      429,
		"api_error":             500,
		"timeout_error":         504,
		"overloaded_error":      529,
	}[errType]
	if status == 0 {
		return llm.KindTransient
	}
	return llm.StatusKind(status, errType, msg)
}

// wireError reports an answer that is not what the API sends.
func (m *Model) wireError(raw *http.Response, msg string) *llm.Error {
	e := &llm.Error{Kind: llm.KindTransient, Provider: provider, Message: m.oneLine(msg)}
	if raw != nil {
		e.Status = raw.StatusCode
	}
	return e
}

func cancelled(ctx context.Context) *llm.Error {
	return &llm.Error{Kind: llm.KindCancelled, Provider: provider,
		Message: "call cancelled: " + context.Cause(ctx).Error(), Err: ctx.Err()}
}

func badRequest(msg string) *llm.Error {
	return &llm.Error{Kind: llm.KindBadRequest, Provider: provider, Message: msg}
}

// oneLine makes msg fit an error message: one line, bounded, without the
// API key.
func (m *Model) oneLine(msg string) string {
	if m.cfg.APIKey != "" {
		msg = strings.ReplaceAll(msg, m.cfg.APIKey, "[redacted]")
	}
	msg = strings.Join(strings.Fields(msg), " ")
	if len(msg) > maxMessage {
		msg = msg[:maxMessage] + "…"
	}
	return msg
}

// sdkDetail returns the useful end of an SDK decoding error.
func sdkDetail(err error) string {
	s := err.Error()
	s = strings.TrimPrefix(s, "error parsing response json: ")
	return s
}

// quoteType names a content type for a message, "none" when absent.
func quoteType(ct string) string {
	if ct == "" {
		return "none"
	}
	if mt, _, err := mime.ParseMediaType(ct); err == nil {
		return mt
	}
	return ct
}

// redactURL drops credentials and the query from u, for messages.
func redactURL(u string) string {
	p, err := url.Parse(u)
	if err != nil {
		return "the API"
	}
	p.User = nil
	p.RawQuery = ""
	return p.String()
}
