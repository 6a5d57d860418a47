package server

import (
	"container/list"
	"context"
	"crypto/sha256"
	"errors"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"
)

// A request that starts a run must not start a second one when its client
// retries it. Two things see to that:
//
//   - An answer to a request whose retry would start another run (the run
//     failed, or could not be started) carries x-should-retry: false, which
//     the OpenAI SDKs obey before their default of retrying every 5xx.
//   - A retry is answered from the run its first try started. The request
//     names itself with an Idempotency-Key header (any client may send one);
//     the OpenAI SDKs send none, but they number their tries in
//     X-Stainless-Retry-Count, so a try numbered above 0 without a key is
//     matched with the latest request of the same body.
//
// [retryKeys] remembers the last [MaxRetryKeys] keys for [RetryKeyTTL], in
// memory: a retry reaching another process, or this one after a restart,
// starts a new run.

// ShouldRetryHeader tells the OpenAI SDKs whether to retry an answer.
const ShouldRetryHeader = "X-Should-Retry"

// IdempotencyHeader names a request, so that its retries do not repeat it.
const IdempotencyHeader = "Idempotency-Key"

// retryCountHeader numbers an OpenAI SDK's tries of one request from 0.
const retryCountHeader = "X-Stainless-Retry-Count"

// MaxRetryKeys and RetryKeyTTL bound what [retryKeys] remembers.
const (
	MaxRetryKeys = 10_000
	RetryKeyTTL  = 24 * time.Hour
)

// errKeyReused answers a key sent again with another body.
var errKeyReused = errors.New("this Idempotency-Key was sent before with another request body: use a new key for a new request")

// noRetry marks an answer whose retry would start another run.
func noRetry(w http.ResponseWriter) { w.Header().Set(ShouldRetryHeader, "false") }

// retryKeys maps the keys of requests that start runs to their runs.
type retryKeys struct {
	mu      sync.Mutex
	entries map[string]*keyed // guarded by mu
	order   list.List         // of *keyed, oldest first; guarded by mu
}

// keyed is one key's request: its body's hash and, once ready is closed,
// its run (id "" when the run did not start).
type keyed struct {
	key   string
	body  [32]byte
	at    time.Time
	elem  *list.Element // in retryKeys.order; nil once dropped
	ready chan struct{}
	id    string // set before ready is closed

	// waiters counts the chat requests answering from the run, and gone
	// is set when the run is cancelled for want of them; guarded by
	// retryKeys.mu. The run is cancelled only when the last waiter leaves
	// and no retry comes within [Server.RetryGrace].
	waiters int
	gone    bool
}

// requestKey returns the key of r for route, and whether r has one: its
// Idempotency-Key, or for a try of an OpenAI SDK without one, its body.
// fresh reports a first try, which never answers from an earlier run of
// the same body.
func requestKey(r *http.Request, route string, body []byte) (key string, fresh, ok bool) {
	if k := strings.TrimSpace(r.Header.Get(IdempotencyHeader)); k != "" {
		h := sha256.Sum256([]byte(k)) // a key may be long: keep its hash
		return route + "\x00key\x00" + string(h[:]), false, true
	}
	v := r.Header.Get(retryCountHeader)
	if v == "" {
		return "", false, false
	}
	n, err := strconv.Atoi(strings.TrimSpace(v))
	if err != nil || n < 0 {
		return "", false, false
	}
	h := sha256.Sum256(body)
	return route + "\x00body\x00" + string(h[:]), n == 0, true
}

// claim returns key's entry. owner reports that the caller is to start the
// run and [retryKeys.settle] the entry; otherwise the entry is another
// request's, whose run is known once its ready is closed. A fresh claim
// replaces an earlier entry.
func (k *retryKeys) claim(key string, body []byte, fresh bool, now time.Time) (e *keyed, owner bool, err error) {
	h := sha256.Sum256(body)
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.entries == nil {
		k.entries = map[string]*keyed{}
	}
	for f := k.order.Front(); f != nil && now.Sub(f.Value.(*keyed).at) > RetryKeyTTL; f = k.order.Front() {
		k.dropLocked(f.Value.(*keyed))
	}
	if e := k.entries[key]; e != nil && !fresh {
		if e.body != h {
			return nil, false, errKeyReused
		}
		return e, false, nil
	} else if e != nil {
		k.dropLocked(e)
	}
	for k.order.Len() >= MaxRetryKeys {
		k.dropLocked(k.order.Front().Value.(*keyed))
	}
	e = &keyed{key: key, body: h, at: now, ready: make(chan struct{})}
	e.elem = k.order.PushBack(e)
	k.entries[key] = e
	return e, true, nil
}

// settle records the run the owner of e started ("" for none: the key is
// forgotten, so that a retry tries again).
func (k *retryKeys) settle(e *keyed, id string) {
	k.mu.Lock()
	e.id = id
	if id == "" {
		k.dropLocked(e)
	} else {
		e.waiters++
	}
	k.mu.Unlock()
	close(e.ready)
}

// wait waits for the run of another request's entry: "" when it did not
// start or was cancelled for want of waiters. With join, the caller counts
// among the run's waiters.
func (k *retryKeys) wait(ctx context.Context, e *keyed, join bool) (string, error) {
	select {
	case <-e.ready:
	case <-ctx.Done():
		return "", ctx.Err()
	}
	k.mu.Lock()
	defer k.mu.Unlock()
	if e.gone {
		return "", nil
	}
	if join && e.id != "" {
		e.waiters++
	}
	return e.id, nil
}

// leave drops a waiter of e and reports whether any is left.
func (k *retryKeys) leave(e *keyed) (others bool) {
	k.mu.Lock()
	defer k.mu.Unlock()
	e.waiters--
	return e.waiters > 0
}

// forget drops e unless a waiter came back: its run was cancelled, so a
// retry must start a new one.
func (k *retryKeys) forget(e *keyed) (dropped bool) {
	k.mu.Lock()
	defer k.mu.Unlock()
	if e.waiters > 0 {
		return false
	}
	e.gone = true
	k.dropLocked(e)
	return true
}

func (k *retryKeys) dropLocked(e *keyed) {
	if e.elem != nil {
		k.order.Remove(e.elem)
		e.elem = nil
	}
	if k.entries[e.key] == e {
		delete(k.entries, e.key)
	}
}

// startOnce starts a run with start (which answers when it fails, and
// returns ""), unless r is a retry of a request that started one: then it
// returns that run, with retried set. e is r's key entry, nil without a
// key; with join, r counts among the waiters of its run (see
// [Server.abandon]). reused answers a key sent again with another body.
// It returns "" when it answered, or the client left.
func (s *Server) startOnce(w http.ResponseWriter, r *http.Request, route string, body []byte, join bool,
	start func() string, reused func()) (id string, e *keyed, retried bool) {
	key, fresh, ok := requestKey(r, route, body)
	if !ok {
		return start(), nil, false
	}
	// Each token's keys are its own: another token sending the same key
	// and body starts its own run, never gets this one's.
	if who := callerOf(r); !who.main {
		key = "token:" + who.Name + "\x00" + key
	}
	for {
		e, owner, err := s.keys.claim(key, body, fresh, time.Now())
		if err != nil {
			noRetry(w)
			reused()
			return "", nil, false
		}
		if owner {
			id := start()
			s.keys.settle(e, id)
			if id == "" {
				return "", nil, false
			}
			return id, e, false
		}
		id, err := s.keys.wait(r.Context(), e, join)
		if err != nil {
			return "", nil, false
		}
		if id != "" {
			return id, e, true
		}
		// That try started no run, or its run was cancelled: this one
		// starts its own.
	}
}
