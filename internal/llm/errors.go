package llm

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// Kind classifies a failed call by what the caller should do about it.
type Kind int

const (
	KindUnknown        Kind = iota
	KindRateLimited         // 429: wait RetryAfter (or back off) and retry
	KindOverloaded          // 529 / overloaded: back off and retry, cut concurrency
	KindContextTooLong      // the prompt does not fit the model's context
	KindAuth                // 401/403: the key is missing, wrong or lacks permission
	KindBadRequest          // 400/404/422/501, or a 500 that blames the request: retrying will not help
	KindTransient           // network error, other 5xx, malformed or truncated answer
	KindCancelled           // the caller's context ended, or the caller cancelled the batch that held the call
	KindExpired             // a batched call the provider did not run before its batch expired: submit it again
)

var kindNames = [...]string{"unknown", "rate_limited", "overloaded", "context_too_long", "auth", "bad_request", "transient", "cancelled", "expired"}

func (k Kind) String() string {
	if int(k) < len(kindNames) {
		return kindNames[k]
	}
	return fmt.Sprintf("kind(%d)", int(k))
}

// Retryable reports whether a call that failed this way may succeed if sent
// again unchanged. An expired batched call was never run: sent again, in a
// new batch or alone, it may succeed.
func (k Kind) Retryable() bool {
	return k == KindRateLimited || k == KindOverloaded || k == KindTransient || k == KindExpired
}

// Error is a classified model call failure.
type Error struct {
	Kind     Kind
	Provider string // "anthropic", "openai", …
	Status   int    // HTTP status, 0 when none arrived
	// RetryAfter is the wait the server asked for (retry-after header),
	// zero when it asked none.
	RetryAfter time.Duration
	// Message is the provider's error message, or a description of what
	// went wrong on the wire. It never contains credentials.
	Message string
	Err     error
}

func (e *Error) Error() string {
	s := e.Provider
	if s == "" {
		s = "model"
	}
	s += ": " + e.Kind.String()
	if e.Status != 0 {
		s += fmt.Sprintf(" (HTTP %d)", e.Status)
	}
	if e.Message != "" {
		s += ": " + e.Message
	} else if e.Err != nil {
		s += ": " + e.Err.Error()
	}
	return s
}

func (e *Error) Unwrap() error { return e.Err }

// Is makes errors.Is(err, llm.ErrRateLimited) and friends match by kind.
func (e *Error) Is(target error) bool {
	k, ok := target.(kindSentinel)
	return ok && Kind(k) == e.Kind
}

type kindSentinel Kind

func (k kindSentinel) Error() string { return Kind(k).String() }

// Sentinels for errors.Is.
var (
	ErrRateLimited    error = kindSentinel(KindRateLimited)
	ErrOverloaded     error = kindSentinel(KindOverloaded)
	ErrContextTooLong error = kindSentinel(KindContextTooLong)
	ErrAuth           error = kindSentinel(KindAuth)
	ErrBadRequest     error = kindSentinel(KindBadRequest)
	ErrTransient      error = kindSentinel(KindTransient)
	ErrCancelled      error = kindSentinel(KindCancelled)
	ErrExpired        error = kindSentinel(KindExpired)
)

// KindOf returns the kind of err: its [*Error]'s kind, KindCancelled for a
// context error, KindUnknown otherwise.
func KindOf(err error) Kind {
	var e *Error
	switch {
	case err == nil:
		return KindUnknown
	case errors.As(err, &e):
		return e.Kind
	case errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		return KindCancelled
	}
	return KindUnknown
}

// RetryAfter returns the wait the server asked for in err, or zero.
func RetryAfter(err error) time.Duration {
	var e *Error
	if errors.As(err, &e) {
		return e.RetryAfter
	}
	return 0
}
