// Package mcp is Hive's client of the Model Context Protocol: it runs the
// MCP servers hive.toml configures (its mcp.NAME tables, [ServerConfig]) and
// offers their tools to a run's models, through the official Go SDK
// (github.com/modelcontextprotocol/go-sdk).
//
// An MCP server is a program or service that acts on the world (reads a
// repository, queries a database), so what reaches it is chosen by the
// user, never by a model: hive.toml is trusted, and what a model writes and
// what a server answers are not. A [Manager] holds to that:
//
//   - Only the tools a server's allow list names are offered ([Manager.Tools])
//     or can be called ([Manager.Call]); a model naming any other tool gets
//     [ErrUnknownTool] and nothing reaches the server.
//   - Arguments must be a JSON object ([ErrBadArguments]), checked before
//     anything is sent.
//   - A stdio server gets an environment of its own: PATH, HOME, LANG,
//     LC_ALL, TMPDIR, the variables its env names and its set values;
//     never the rest of Hive's (no API key, no token). An HTTP server's
//     secrets come from the variables headers_env and bearer_env name, and
//     are sent to its own origin only.
//   - A stdio server's network is the host's unless its table says
//     otherwise ([Network]): with network = "none" it runs in a network
//     namespace of its own with only a loopback; with a list of host:port
//     destinations, its only way out is a proxy Hive runs for it, which
//     reaches those and refuses the rest (see proxy.go). Hive never falls
//     back to the host's network when it cannot make the namespace.
//   - Every call, and every start, ends within the server's timeout;
//     every text a server sends back (results, tool descriptions and
//     schemas, errors, its stderr) goes through the redactor
//     ([Options.Redact]) before it is returned; a result's text is capped
//     at max_output ([Result]).
//   - A server that stops (a process that exits, an HTTP session that
//     ends) is started again once, at the next call; if it stops again its
//     tools fail for the rest of the run with an error that says how it
//     ended and what it last wrote to stderr ([ErrUnavailable]).
//   - [Manager.Close] stops every server (EOF, SIGTERM, then SIGKILL to
//     its process group) and waits for them: no process or goroutine
//     outlives it.
//
// A tool is offered as SERVER__tool (the server's NAME, two underscores,
// the tool's name), which every model API Hive speaks accepts as a tool's
// name (^[a-zA-Z0-9_-]{1,64}$, a letter first). A tool whose own name has
// other characters ("admin.tools.list"), or is too long, is renamed the
// same way at every run: those characters become '_' and a hash of its name
// is appended. Names that still collide within a server are left out, with
// a warning in the log.
//
// A result is not a Go error when the tool says it failed ([Result.IsError]),
// nor when the server refuses the call (an unknown tool, arguments its schema
// rejects): the model can act on those. A Go error means the server could
// not be reached, stopped, or did not answer in time.
package mcp

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"os"
	"runtime/debug"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/modelcontextprotocol/go-sdk/jsonrpc"
	sdk "github.com/modelcontextprotocol/go-sdk/mcp"
)

// Errors a caller may branch on (with errors.Is). A call that runs past its
// server's timeout fails with an error that is context.DeadlineExceeded.
var (
	// ErrUnknownTool: the name is not one of [Manager.Tools].
	ErrUnknownTool = errors.New("mcp: unknown tool")
	// ErrBadArguments: the arguments are not a JSON object.
	ErrBadArguments = errors.New("mcp: arguments are not a JSON object")
	// ErrUnavailable: the server could not be started or reached, or it
	// stopped.
	ErrUnavailable = errors.New("mcp: server unavailable")
	// ErrClosed: the manager is closed.
	ErrClosed = errors.New("mcp: closed")
)

// Tool is a tool a model may call, as model APIs take it.
type Tool struct {
	// Name is Hive's name of the tool: SERVER__tool.
	Name string
	// Server is the NAME of the mcp.NAME table it comes from.
	Server string
	// Remote is the tool's name on its server.
	Remote      string
	Description string
	// Schema is the JSON Schema of the arguments object.
	Schema json.RawMessage
}

// Options are a [Manager]'s optional knobs; the zero value works.
type Options struct {
	// Redact is applied to every text the manager returns: results, tool
	// descriptions and schemas, error messages. (*secret.Redactor).String
	// fits. Nil redacts nothing.
	Redact func(string) string
	// Getenv reads the variables of Hive's environment that servers name
	// (and PATH, HOME, LANG, LC_ALL, TMPDIR for stdio servers); nil means
	// os.Getenv.
	Getenv func(string) string
}

// A Manager runs the MCP servers of one run: it starts each once (at
// [Manager.Start], or at its tools' first call), offers their allowed
// tools, calls them, and stops them at [Manager.Close]. It is safe for
// concurrent use.
type Manager struct {
	log     *slog.Logger
	redact  func(string) string
	getenv  func(string) string
	client  *sdk.Client
	servers map[string]*server // by name; fixed at New
	names   []string           // the servers' names, sorted

	ctx       context.Context // cancelled by Close: ends starts and calls
	cancel    context.CancelFunc
	closeOnce sync.Once
}

// New returns a manager of servers, keyed by the NAME of their mcp.NAME
// table, which it validates; it starts none.
func New(servers map[string]*ServerConfig, log *slog.Logger, opts Options) (*Manager, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	m := &Manager{
		log:     log,
		redact:  opts.Redact,
		getenv:  opts.Getenv,
		servers: make(map[string]*server, len(servers)),
		names:   slices.Sorted(maps.Keys(servers)),
	}
	if m.redact == nil {
		m.redact = func(s string) string { return s }
	}
	if m.getenv == nil {
		m.getenv = os.Getenv
	}
	for _, name := range m.names {
		c := servers[name]
		if c == nil {
			return nil, fmt.Errorf("mcp.%s: the table is empty", name)
		}
		cfg := *c
		cfg.Name = name
		cfg.Args, cfg.Env, cfg.Allow = slices.Clone(cfg.Args), slices.Clone(cfg.Env), slices.Clone(cfg.Allow)
		cfg.Roles, cfg.Tiers = slices.Clone(cfg.Roles), slices.Clone(cfg.Tiers)
		cfg.Set, cfg.HeadersEnv = maps.Clone(cfg.Set), maps.Clone(cfg.HeadersEnv)
		cfg.Network.Allow = slices.Clone(cfg.Network.Allow)
		if err := cfg.Validate(); err != nil {
			return nil, err
		}
		m.servers[name] = &server{m: m, cfg: cfg.withDefaults(), gate: make(chan struct{}, 1)}
	}
	m.client = sdk.NewClient(&sdk.Implementation{Name: "hive", Version: version()}, &sdk.ClientOptions{
		// Hive serves no roots, sampling or elicitation to servers.
		Capabilities: &sdk.ClientCapabilities{},
		Logger:       log,
	})
	m.ctx, m.cancel = context.WithCancel(context.Background())
	return m, nil
}

// Start starts every server not yet running and lists its tools. The
// servers start at once; the error joins those that failed, each named,
// and the others are ready. A server that failed is tried once more at its
// next use.
func (m *Manager) Start(ctx context.Context) error {
	errs := make([]error, len(m.names))
	var wg sync.WaitGroup
	for i, name := range m.names {
		wg.Go(func() { _, errs[i] = m.servers[name].live(ctx) })
	}
	wg.Wait()
	return errors.Join(errs...)
}

// Tools returns the tools models may call, by name, of the servers that
// have started. A server's tools are listed at its first start, and do not
// change when it is started again.
func (m *Manager) Tools() []Tool {
	var all []Tool
	for _, name := range m.names {
		s := m.servers[name]
		s.mu.Lock()
		all = append(all, s.tools...)
		s.mu.Unlock()
	}
	slices.SortFunc(all, func(a, b Tool) int { return strings.Compare(a.Name, b.Name) })
	return all
}

// Call calls tool name (as [Manager.Tools] names it) with args, a JSON
// object (empty means {}), starting its server if it is not running.
func (m *Manager) Call(ctx context.Context, name string, args json.RawMessage) (Result, error) {
	srv, _ := splitName(name)
	s := m.servers[srv]
	if s == nil {
		return Result{}, m.errorf(ErrUnknownTool, "mcp: no tool %q (an MCP tool is named SERVER__tool, and no server %q is configured)", name, srv)
	}
	args, err := objectArgs(args)
	if err != nil {
		return Result{}, m.errorf(ErrBadArguments, "mcp: tool %s: %v", name, err)
	}
	sess, err := s.live(ctx)
	if err != nil {
		return Result{}, err
	}
	s.mu.Lock()
	remote, ok := s.remote[name]
	s.mu.Unlock()
	if !ok {
		return Result{}, m.errorf(ErrUnknownTool, "mcp: no tool %q: server %s offers no such tool that [mcp.%s] allows", name, s.cfg.Name, s.cfg.Name)
	}

	bctx, cancel := m.bound(ctx)
	defer cancel()
	cctx, cancelCall := context.WithTimeout(bctx, s.cfg.Timeout)
	defer cancelCall()
	res, err := sess.cs.CallTool(cctx, &sdk.CallToolParams{Name: remote, Arguments: args})
	if err != nil {
		return m.callFailed(ctx, cctx, s, sess, name, err)
	}
	r, err := newResult(res, m.redact, int(s.cfg.MaxOutput))
	if err != nil {
		return Result{}, m.errorf(ErrUnavailable, "mcp server %s: tool %s answered what Hive cannot read: %v", s.cfg.Name, name, err)
	}
	return r, nil
}

// callFailed turns a failed call into a Result (the server refused it) or
// an error that says what happened and what comes next.
func (m *Manager) callFailed(ctx, cctx context.Context, s *server, sess *session, name string, err error) (Result, error) {
	var refused *jsonrpc.Error
	switch {
	case errors.As(err, &refused):
		text, full := capText(m.redact(fmt.Sprintf("the server refused the call: %s (JSON-RPC error %d)", refused.Message, refused.Code)), int(s.cfg.MaxOutput))
		return Result{Text: text, Full: full, IsError: true}, nil
	case m.ctx.Err() != nil:
		return Result{}, ErrClosed
	case ctx.Err() != nil:
		return Result{}, m.errorf(ctx.Err(), "mcp server %s: the call to %s was abandoned: %v", s.cfg.Name, name, ctx.Err())
	case errors.Is(cctx.Err(), context.DeadlineExceeded):
		return Result{}, m.errorf(context.DeadlineExceeded, "mcp server %s: tool %s did not answer within %s (the timeout of [mcp.%s]); the call was cancelled", s.cfg.Name, name, s.cfg.Timeout, s.cfg.Name)
	}
	// A transport's failure ends its session soon after: a stdio server
	// that stopped closed its stdout first, and is reaped after; an HTTP
	// session the server forgot fails its connection.
	wait := closeGrace
	if sess.cmd != nil {
		wait = 2*closeGrace + pipeGrace
	}
	t := time.NewTimer(wait)
	defer t.Stop()
	select {
	case <-sess.done:
	case <-t.C:
	case <-ctx.Done():
	}
	select {
	case <-sess.done:
	default:
		return Result{}, m.errorf(ErrUnavailable, "mcp server %s: the call to %s failed: %v", s.cfg.Name, name, err)
	}
	s.mu.Lock()
	next := "Hive starts it again at the next call, once a run"
	if s.starts >= maxStarts {
		next = "it was started again once already, so its tools fail for the rest of the run"
	}
	s.mu.Unlock()
	return Result{}, m.errorf(ErrUnavailable, "mcp server %s stopped during the call to %s (%s): %s", s.cfg.Name, name, next, sess.describeEnd())
}

// Close stops every server and waits for them (a few seconds at most, for
// a server that ignores EOF and SIGTERM). Calls in flight end with
// [ErrClosed]. It returns nil; the error is io.Closer's.
func (m *Manager) Close() error {
	m.closeOnce.Do(func() {
		m.cancel()
		var wg sync.WaitGroup
		for _, s := range m.servers {
			wg.Go(s.close)
		}
		wg.Wait()
	})
	return nil
}

// close ends the server's session, once a start in progress (cancelled by
// Close) has given up.
func (s *server) close() {
	s.gate <- struct{}{}
	defer func() { <-s.gate }()
	s.mu.Lock()
	sess := s.sess
	s.sess, s.closed = nil, true
	s.mu.Unlock()
	if sess != nil {
		sess.close()
	}
}

// bound returns ctx, also cancelled when the manager closes.
func (m *Manager) bound(ctx context.Context) (context.Context, context.CancelFunc) {
	ctx, cancel := context.WithCancel(ctx)
	stop := context.AfterFunc(m.ctx, cancel)
	return ctx, func() { stop(); cancel() }
}

// ctxError is the error of giving up on server because ctx is done.
func (m *Manager) ctxError(ctx context.Context, server string) error {
	if m.ctx.Err() != nil {
		return ErrClosed
	}
	return m.errorf(ctx.Err(), "mcp server %s: gave up waiting for it to start: %v", server, ctx.Err())
}

// errorf returns an error whose text is redacted and that is kind.
func (m *Manager) errorf(kind error, format string, args ...any) error {
	return &redactedError{msg: m.redact(fmt.Sprintf(format, args...)), kind: kind}
}

// redactedError carries a redacted text; what it unwraps to is a sentinel
// or a context error, never text from a server.
type redactedError struct {
	msg  string
	kind error
}

func (e *redactedError) Error() string { return e.msg }
func (e *redactedError) Unwrap() error { return e.kind }

// objectArgs checks that args is a JSON object ({} when empty).
func objectArgs(args json.RawMessage) (json.RawMessage, error) {
	t := bytes.TrimSpace(args)
	if len(t) == 0 {
		return json.RawMessage("{}"), nil
	}
	if !json.Valid(t) {
		return nil, errors.New("the arguments are not valid JSON; give a JSON object of the tool's parameters")
	}
	if t[0] != '{' {
		kind := map[byte]string{'[': "an array", '"': "a string", 'n': "null", 't': "a boolean", 'f': "a boolean"}[t[0]]
		if kind == "" {
			kind = "a number"
		}
		return nil, fmt.Errorf("the arguments are %s; give a JSON object of the tool's parameters", kind)
	}
	return t, nil
}

func version() string {
	if bi, ok := debug.ReadBuildInfo(); ok && bi.Main.Version != "" {
		return bi.Main.Version
	}
	return "dev"
}
