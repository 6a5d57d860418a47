// Package server serves Hive's HTTP API and its live web view: runs are
// started, listed, inspected, cancelled and resumed over JSON; a run's
// events stream as Server-Sent Events that a client resumes with
// Last-Event-ID without missing one (they come from [swarm.Engine.Watch],
// which replays the journal and then follows the run live); and
// POST /v1/chat/completions lets any OpenAI client use a whole swarm as if
// it were one model (GET /v1/models lists the swarms it may name). A
// request that starts a run is not repeated by its client's retries: see
// [IdempotencyHeader] and [ShouldRetryHeader].
//
// GET /metrics serves Prometheus metrics, when the server is given them
// ([Server.Metrics]).
//
// Everything but /healthz needs the token: as a bearer token, or as the
// hive_token cookie that GET /?token=… sets so that the page (and its
// EventSource, which cannot send headers) works without the token staying
// in the URL. The server sends no CORS headers: only the page it serves
// may call it from a browser.
//
// A cookie goes with every request the browser makes to the server, from
// whatever page (SameSite does not tell ports of one host apart), so a
// request the cookie authenticates must come from the server's own page:
// a browser's cross-origin POST (a form another site submits) and its
// cross-origin GET of the API are refused with 403, told apart by the
// Sec-Fetch-Site and Origin headers browsers send ([http.CrossOriginProtection]).
// Bearer tokens are not sent by browsers on their own, so requests that
// carry one are not checked. Bodies must be declared application/json,
// which a form cannot.
//
// What a client may hold open is bounded by [Limits]: connections,
// concurrent requests and streams of a token, and the time a request may
// take to arrive, be answered, or sit idle.
package server

import (
	"bytes"
	"context"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"mime"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/hive-swarm/hive/internal/config"
	"github.com/hive-swarm/hive/internal/journal"
	"github.com/hive-swarm/hive/internal/swarm"
)

// MaxBody bounds a request body.
const MaxBody = 1 << 20

// CookieName is the cookie that carries the token for the page.
const CookieName = "hive_token"

// Server is the HTTP API over one engine and its journal.
type Server struct {
	engine *swarm.Engine
	store  *journal.Store
	cfg    *config.Config
	log    *slog.Logger
	token  string
	// Tokens are more API tokens, each a principal of its own: its runs
	// are its own (another token's are not found), bounded by the
	// policy's caps for it (swarm.RunPolicy.Principals). Set them before
	// [Server.Handler].
	Tokens []Token
	// started is when the server was made: the "created" of its models.
	started time.Time

	// PingInterval is how often an idle event stream sends a comment line
	// to keep proxies from closing it. Default 15 s.
	PingInterval time.Duration

	// RetryGrace is how long the run of a chat request with a key (an
	// Idempotency-Key, or an OpenAI SDK's numbered try) goes on after its
	// client left, for a retry to answer from. Default 10 s.
	RetryGrace time.Duration

	// Limits bound connections, concurrent requests and streams, and
	// timeouts. Set them before [Server.Handler], [Server.Configure] and
	// [Server.LimitListener]. Default [DefaultLimits].
	Limits Limits

	// Metrics, when set before [Server.Handler], is served at GET
	// /metrics (Prometheus's text format), behind the token like the API.
	Metrics http.Handler

	encoded eventCache // events encoded once for all their streams
	csrf    *http.CrossOriginProtection
	counts  tokenCounts // each token's requests and streams in flight
	keys    retryKeys   // the token's request keys and the runs they started
}

// A Token is an API token of its own ([serve.tokens.NAME]).
type Token struct {
	Name, Value string
	// Approve lets it decide approvals of its runs.
	Approve bool
}

// caller is who sent a request: the main token (Name empty, which sees
// every run) or one of [Server.Tokens].
type caller struct {
	Token
	main bool
}

type callerKey struct{}

// callerOf is who sent r (protect has checked).
func callerOf(r *http.Request) caller {
	c, _ := r.Context().Value(callerKey{}).(caller)
	return c
}

// sees reports whether c may see and act on the run jr.
func (c caller) sees(jr journal.Run) bool { return c.main || jr.Principal == c.Name }

// New returns a server for engine, whose journal is store. token is the
// secret every request but /healthz must carry.
func New(engine *swarm.Engine, store *journal.Store, cfg *config.Config, log *slog.Logger, token string) *Server {
	if cfg == nil {
		cfg = config.Default()
	}
	return &Server{engine: engine, store: store, cfg: cfg, log: log, token: token, started: time.Now(), PingInterval: 15 * time.Second, RetryGrace: 10 * time.Second,
		Limits: DefaultLimits(), csrf: http.NewCrossOriginProtection()}
}

// Handler returns the server's routes behind authentication, body limits
// and security headers.
func (s *Server) Handler() http.Handler {
	mux := http.NewServeMux()
	paths := map[string][]string{} // path pattern → methods, for 405 answers
	route := func(method, path string, h http.HandlerFunc) {
		mux.HandleFunc(method+" "+path, h)
		paths[path] = append(paths[path], method)
	}
	route("POST", "/v1/runs", s.createRun)
	route("GET", "/v1/runs", s.listRuns)
	route("GET", "/v1/runs/{id}", s.getRun)
	route("GET", "/v1/runs/{id}/nodes/{node...}", s.getNode)
	route("GET", "/v1/runs/{id}/artifacts/{artifact...}", s.getArtifact)
	route("POST", "/v1/runs/{id}/cancel", s.cancelRun)
	route("POST", "/v1/runs/{id}/resume", s.resumeRun)
	route("GET", "/v1/runs/{id}/events", s.events)
	route("GET", "/v1/runs/{id}/approvals", s.listApprovals)
	route("POST", "/v1/runs/{id}/approvals/{approval...}", s.decideApproval)
	route("POST", "/v1/chat/completions", s.chatCompletions)
	route("GET", "/v1/models", s.listModels)
	route("GET", "/v1/models/{id...}", s.getModel)
	if s.Metrics != nil {
		// Server-wide figures (every token's runs and spend): the main
		// token's only.
		route("GET", "/metrics", func(w http.ResponseWriter, r *http.Request) {
			if !callerOf(r).main {
				writeError(w, http.StatusForbidden, "forbidden", "/metrics shows every token's figures: only the main token reads it")
				return
			}
			s.Metrics.ServeHTTP(w, r)
		})
	}
	for path, methods := range paths {
		allow := strings.Join(methods, ", ")
		mux.HandleFunc(path, func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Allow", allow)
			writeError(w, http.StatusMethodNotAllowed, "method_not_allowed", r.Method+" is not allowed here; use "+allow)
		})
	}
	mux.HandleFunc("/v1/", func(w http.ResponseWriter, r *http.Request) {
		writeError(w, http.StatusNotFound, "not_found", "no such endpoint: "+r.URL.Path)
	})
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		w.Write([]byte("ok"))
	})
	mux.Handle("/mcp", s.mcpHandler())
	mux.Handle("/", s.page())
	return s.protect(mux)
}

// protect wraps h with the security headers, the token check, the
// same-origin rule for the cookie, the token's request cap and the body
// limit.
func (s *Server) protect(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hd := w.Header()
		hd.Set("X-Content-Type-Options", "nosniff")
		hd.Set("Referrer-Policy", "no-referrer")
		hd.Set("Content-Security-Policy", "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; frame-ancestors 'none'")
		if r.URL.Path == "/healthz" {
			h.ServeHTTP(w, r)
			return
		}
		api := strings.HasPrefix(r.URL.Path, "/v1/") || r.URL.Path == "/mcp" || r.URL.Path == "/metrics"
		if r.URL.Path == "/" && r.URL.Query().Has("token") {
			// The link hive serve printed: trade the token for a cookie
			// and take it out of the address bar (and the history).
			tok := r.URL.Query().Get("token")
			if _, ok := s.tokenCaller(tok); !ok {
				s.denyPage(w)
				return
			}
			http.SetCookie(w, &http.Cookie{Name: CookieName, Value: tok, Path: "/", HttpOnly: true,
				SameSite: http.SameSiteStrictMode, Secure: r.TLS != nil})
			http.Redirect(w, r, "/", http.StatusSeeOther)
			return
		}
		who, ok, byCookie := s.authorized(r)
		if !ok {
			// Nothing to keep the connection open for.
			hd.Set("Connection", "close")
			if api {
				writeError(w, http.StatusUnauthorized, "unauthorized", "missing or wrong token: send Authorization: Bearer TOKEN (hive serve says where the token is when it starts)")
			} else {
				s.denyPage(w)
			}
			return
		}
		if byCookie {
			if err := s.sameOrigin(r, api); err != nil {
				writeError(w, http.StatusForbidden, "forbidden", err.Error())
				return
			}
		}
		max := s.Limits.RequestsPerToken
		c := s.counts.of(who.Name)
		if !c.requests.take(max) {
			tooMany(w, "requests", max)
			return
		}
		defer c.requests.put()
		if r.ContentLength > MaxBody {
			writeError(w, http.StatusRequestEntityTooLarge, "too_large", "the request body is over 1 MiB")
			return
		}
		r.Body = http.MaxBytesReader(w, r.Body, MaxBody)
		h.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), callerKey{}, who)))
	})
}

// tokenCounts are the slots of each token (by name, "" for the main one):
// one token holding all of its own cannot starve another.
type tokenCounts struct {
	mu sync.Mutex
	m  map[string]*tokenSlots
}

type tokenSlots struct{ requests, streams slots }

func (t *tokenCounts) of(name string) *tokenSlots {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.m == nil {
		t.m = map[string]*tokenSlots{}
	}
	c := t.m[name]
	if c == nil {
		c = &tokenSlots{}
		t.m[name] = c
	}
	return c
}

// streams are the event streams and streaming chats r's token holds.
func (s *Server) streams(r *http.Request) *slots { return &s.counts.of(callerOf(r).Name).streams }

func (s *Server) denyPage(w http.ResponseWriter) {
	w.Header().Set("Connection", "close")
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.WriteHeader(http.StatusUnauthorized)
	w.Write([]byte("<!doctype html><title>Hive</title><p>Not signed in: open the link hive serve printed.</p>\n"))
}

// authorized reports who r is from, if it carries a token, as a bearer
// token or in the cookie (byCookie).
func (s *Server) authorized(r *http.Request) (who caller, ok, byCookie bool) {
	if a := r.Header.Get("Authorization"); a != "" {
		scheme, tok, ok := strings.Cut(a, " ")
		if !ok || !strings.EqualFold(scheme, "Bearer") {
			return caller{}, false, false
		}
		who, ok = s.tokenCaller(strings.TrimSpace(tok))
		return who, ok, false
	}
	if c, err := r.Cookie(CookieName); err == nil {
		who, ok = s.tokenCaller(c.Value)
		return who, ok, true
	}
	return caller{}, false, false
}

// tokenCaller is the caller whose token tok is. Every token is compared,
// each in constant time, whichever matches.
func (s *Server) tokenCaller(tok string) (caller, bool) {
	var who caller
	ok := false
	if s.validToken(tok) {
		who, ok = caller{main: true}, true
	}
	for _, t := range s.Tokens {
		if t.Value != "" && subtle.ConstantTimeCompare([]byte(tok), []byte(t.Value)) == 1 && !ok {
			who, ok = caller{Token: t}, true
		}
	}
	return who, ok
}

// sameOrigin refuses a browser's cross-origin request that changes state
// (any method but GET, HEAD and OPTIONS) and, on the API, any
// cross-origin request: its cookie came along without the page asking.
// A request a browser did not make (no Sec-Fetch-Site, no Origin) passes,
// as does one the user typed into the address bar (Sec-Fetch-Site: none).
func (s *Server) sameOrigin(r *http.Request, api bool) error {
	if err := s.csrf.Check(r); err != nil {
		return fmt.Errorf("a cross-origin %s with the page's cookie: only the page hive serve serves may send it (%v)", r.Method, err)
	}
	if !api {
		return nil
	}
	switch site := r.Header.Get("Sec-Fetch-Site"); site {
	case "same-origin", "none":
		return nil
	case "":
	default:
		return fmt.Errorf("a request from another page (Sec-Fetch-Site: %s) with the page's cookie: the API answers only its own page, or a bearer token", site)
	}
	if o := r.Header.Get("Origin"); o != "" && !sameHost(o, r.Host) {
		return fmt.Errorf("a request from %s with the page's cookie: the API answers only its own page, or a bearer token", o)
	}
	return nil
}

// sameHost reports whether origin (scheme://host[:port]) names host.
func sameHost(origin, host string) bool {
	_, h, ok := strings.Cut(origin, "://")
	return ok && h == host
}

// notJSON is the message of a 415 answer.
const notJSON = "send the body as JSON with Content-Type: application/json"

// isJSON reports whether r declares a JSON body.
func isJSON(r *http.Request) bool {
	mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type"))
	return err == nil && mt == "application/json"
}

// validToken compares in constant time (for equal lengths; the length of
// a random token is no secret).
func (s *Server) validToken(tok string) bool {
	return s.token != "" && subtle.ConstantTimeCompare([]byte(tok), []byte(s.token)) == 1
}

// apiError is the body of every error of the /v1 API but the OpenAI one.
type apiError struct {
	Error errorBody `json:"error"`
}

type errorBody struct {
	Code    string `json:"code"`
	Message string `json:"message"`
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(v)
}

func writeError(w http.ResponseWriter, status int, code, msg string) {
	writeJSON(w, status, apiError{Error: errorBody{Code: code, Message: msg}})
}

// readBody reads r's JSON body; on failure it answers (with fail) and
// returns false.
func readBody(w http.ResponseWriter, r *http.Request, fail func(status int, code, msg string)) ([]byte, bool) {
	if !isJSON(r) {
		fail(http.StatusUnsupportedMediaType, "unsupported_media_type", notJSON)
		return nil, false
	}
	body, err := io.ReadAll(r.Body)
	if err != nil {
		var tooLarge *http.MaxBytesError
		if errors.As(err, &tooLarge) {
			fail(http.StatusRequestEntityTooLarge, "too_large", "the request body is over 1 MiB")
		} else {
			fail(http.StatusBadRequest, "bad_request", "read the body: "+err.Error())
		}
		return nil, false
	}
	return body, true
}

// decodeBody reads r's JSON body into v, and returns it; on failure it
// answers and returns false.
func decodeBody(w http.ResponseWriter, r *http.Request, v any, strict bool) ([]byte, bool) {
	body, ok := readBody(w, r, func(status int, code, msg string) { writeError(w, status, code, msg) })
	if !ok {
		return nil, false
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	if strict {
		dec.DisallowUnknownFields()
	}
	if err := dec.Decode(v); err != nil {
		writeError(w, http.StatusBadRequest, "bad_request", "invalid JSON body: "+err.Error())
		return nil, false
	}
	return body, true
}

// lookupError answers a failed run lookup.
func (s *Server) lookupError(w http.ResponseWriter, id string, err error) {
	switch {
	case errors.Is(err, journal.ErrNotFound):
		writeError(w, http.StatusNotFound, "not_found", "no run "+id)
	case errors.Is(err, journal.ErrAmbiguous):
		writeError(w, http.StatusBadRequest, "bad_request", err.Error())
	default:
		s.internal(w, "look up run", err)
	}
}

func (s *Server) internal(w http.ResponseWriter, what string, err error) {
	s.log.Error(what, "err", err)
	writeError(w, http.StatusInternalServerError, "internal", what+" failed")
}
