package mcp

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"net/http"
	"net/url"
	"os/exec"
	"slices"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	sdk "github.com/modelcontextprotocol/go-sdk/mcp"
)

const (
	// maxStarts is how many times a server is started in a run: once, and
	// once more after it stopped.
	maxStarts = 2
	// closeGrace is how long a stdio server is given to exit once its
	// stdin is closed, and again after SIGTERM, before SIGKILL.
	closeGrace = time.Second
	// pipeGrace is how long its stderr may stay open (held by something
	// it started) once it has exited.
	pipeGrace = 500 * time.Millisecond
	// stderrTail is how much of a stdio server's stderr is kept, to say
	// why it stopped.
	stderrTail = 2 << 10
	// maxSchema bounds a tool's input schema; a larger one is left out.
	maxSchema = 64 << 10
)

// hostEnv is what a stdio server gets of Hive's environment besides the
// variables it names: what programs need to run, and no secret.
var hostEnv = []string{"PATH", "HOME", "LANG", "LC_ALL", "TMPDIR"}

// server is one configured MCP server and its current session.
type server struct {
	m   *Manager
	cfg ServerConfig
	// transport, when set, replaces the configured one (tests).
	transport func() sdk.Transport
	// net is the host's network as the proxy of a server with a list of
	// destinations sees it; zero: the real one (tests replace it).
	net netHooks

	// gate holds a token while a session is being started, so that
	// concurrent callers start the server once; a waiter watches its ctx.
	gate chan struct{}

	mu     sync.Mutex // guards the fields below
	sess   *session   // the current session; it may have ended
	listed bool       // tools and remote are set (at the first start)
	tools  []Tool
	remote map[string]string // Hive name → the tool's name on the server
	starts int               // sessions started, or tried
	ended  string            // how the last session ended
	down   error             // set when the server is given up
	closed bool
}

// session is one connection to a server: for stdio, one process.
type session struct {
	cs     *sdk.ClientSession
	cmd    *exec.Cmd       // stdio: the server's process
	stderr *tailBuffer     // stdio: the end of its stderr
	http   *http.Transport // HTTP: its connections
	proxy  *proxy          // stdio with a list of destinations: its way out
	done   chan struct{}   // closed when the session has ended
	err    error           // why it ended, if it says; set before done
}

// live returns the server's session, starting the server if it is not
// running: the first time, or once more after it stopped.
func (s *server) live(ctx context.Context) (*session, error) {
	select {
	case s.gate <- struct{}{}:
	case <-ctx.Done():
		return nil, s.m.ctxError(ctx, s.cfg.Name)
	}
	defer func() { <-s.gate }()

	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil, ErrClosed
	}
	if s.sess != nil {
		select {
		case <-s.sess.done:
			s.ended = s.sess.describeEnd()
			s.sess.close() // at once: it has ended; this kills what it left
			s.sess = nil
		default:
			sess := s.sess
			s.mu.Unlock()
			return sess, nil
		}
	}
	if s.down == nil && s.starts >= maxStarts {
		s.down = s.m.errorf(ErrUnavailable, "mcp server %s is down for the rest of the run (Hive starts a server at most twice a run; fix the server or its [mcp.%s] table): after its second start, %s", s.cfg.Name, s.cfg.Name, s.ended)
	}
	if s.down != nil {
		s.mu.Unlock()
		return nil, s.down
	}
	s.starts++
	first, restart, ended := !s.listed, s.starts > 1, s.ended
	s.mu.Unlock()

	if restart {
		s.m.log.Warn("mcp: restarting a server that stopped", "server", s.cfg.Name, "ended", s.m.redact(ended))
	}
	sess, tools, err := s.start(ctx, first)

	s.mu.Lock()
	defer s.mu.Unlock()
	if err != nil {
		if ctx.Err() != nil && s.m.ctx.Err() == nil {
			s.starts-- // the caller gave up; not the server's failure
			return nil, s.m.ctxError(ctx, s.cfg.Name)
		}
		s.ended = "it could not be started: " + err.Error()
		if s.m.ctx.Err() != nil {
			return nil, ErrClosed
		}
		return nil, s.m.errorf(ErrUnavailable, "mcp server %s could not be started: %v", s.cfg.Name, err)
	}
	if s.closed {
		sess.close()
		return nil, ErrClosed
	}
	s.sess = sess
	if first {
		s.m.log.Info("mcp: server started", "server", s.cfg.Name, "tools", len(tools))
		s.listed = true
		s.tools = tools
		s.remote = make(map[string]string, len(tools))
		for _, t := range tools {
			s.remote[t.Name] = t.Remote
		}
	}
	return sess, nil
}

// start connects to the server, and lists its tools when first, within
// the server's timeout.
func (s *server) start(ctx context.Context, first bool) (*session, []Tool, error) {
	bctx, cancel := s.m.bound(ctx)
	defer cancel()
	tctx, cancelT := context.WithTimeout(bctx, s.cfg.Timeout)
	defer cancelT()
	timedOut := func(err error) error {
		if errors.Is(err, context.DeadlineExceeded) && bctx.Err() == nil {
			return fmt.Errorf("it did not finish starting within %s (the timeout of [mcp.%s]): %w", s.cfg.Timeout, s.cfg.Name, err)
		}
		return err
	}
	sess, err := s.connect(tctx)
	if err != nil {
		return nil, nil, timedOut(err)
	}
	if !first {
		return sess, nil, nil
	}
	tools, err := s.listTools(tctx, sess)
	if err != nil {
		sess.close()
		return nil, nil, fmt.Errorf("list its tools: %w%s", timedOut(err), sess.stderrNote())
	}
	return sess, tools, nil
}

// connect starts a session with the configured transport.
func (s *server) connect(ctx context.Context) (*session, error) {
	sess := &session{done: make(chan struct{})}
	var t sdk.Transport
	switch {
	case s.transport != nil:
		t = s.transport()
	case s.cfg.URL != "":
		hdr, err := s.headers()
		if err != nil {
			return nil, err
		}
		sess.http = http.DefaultTransport.(*http.Transport).Clone()
		origin, _ := url.Parse(s.cfg.URL)
		var base http.RoundTripper = sess.http
		if s.cfg.Network.Mode == NetworkAllow {
			dests, err := parseDests(s.cfg.Network.Allow)
			if err != nil {
				return nil, err // validated: unreachable
			}
			base = &allowTransport{base: base, dests: dests, server: s.cfg.Name}
		}
		t = &sdk.StreamableClientTransport{
			Endpoint: s.cfg.URL,
			HTTPClient: &http.Client{Transport: &headerTransport{
				base: base, scheme: origin.Scheme, host: origin.Host, header: hdr}},
			// Hive does not follow a server's changes of its tool list
			// (a run's tools are fixed, for the prompt caches), so it
			// needs no stream of the server's own messages.
			DisableStandaloneSSE: true,
		}
	default:
		cmd := exec.Command(s.cfg.Command, s.cfg.Args...)
		cmd.Env = s.environ()
		sess.stderr = &tailBuffer{max: stderrTail}
		cmd.Stderr = sess.stderr
		cmd.WaitDelay = pipeGrace
		ownGroup(cmd)
		sess.cmd = cmd
		ct := &sdk.CommandTransport{Command: cmd, TerminateDuration: closeGrace}
		t = ct
		if s.cfg.Network.Isolated() {
			var err error
			if t, err = s.isolate(sess, ct); err != nil {
				return nil, err
			}
		}
	}
	cs, err := s.m.client.Connect(ctx, t, nil)
	if err != nil {
		if sess.cmd != nil {
			killGroup(sess.cmd)
		}
		if sess.http != nil {
			sess.http.CloseIdleConnections()
		}
		if sess.proxy != nil {
			sess.proxy.Close()
		}
		return nil, fmt.Errorf("%w%s", err, sess.stderrNote())
	}
	sess.cs = cs
	go func() {
		sess.err = cs.Wait()
		close(sess.done)
	}()
	return sess, nil
}

// listTools lists the server's tools and keeps those its allow list names,
// under their Hive names.
// Bounds on what a server's tools add to every request of the models
// offered them: a description is cut at maxDescription bytes (or the
// server's max_output, if less), and a server offers at most maxTools
// tools of at most maxToolBytes of descriptions and schemas in all, in
// name order. Of a longer list, maxListed tools are read.
const (
	maxDescription = 2 << 10
	maxTools       = 64
	maxToolBytes   = 256 << 10
	maxListed      = 4096
)

// capDescription cuts a tool's description at max bytes.
func capDescription(d string, limit int) string {
	if len(d) <= limit {
		return d
	}
	cut := max(limit-len("…"), 0)
	for cut > 0 && !utf8.RuneStart(d[cut]) {
		cut--
	}
	return d[:cut] + "…"
}

func (s *server) listTools(ctx context.Context, sess *session) ([]Tool, error) {
	byName := map[string][]Tool{}
	offered := map[string]bool{}
	listed := 0
	for t, err := range sess.cs.Tools(ctx, nil) {
		if err != nil {
			return nil, err
		}
		if listed++; listed > maxListed {
			s.m.log.Warn("mcp: a server lists too many tools; the rest are left out", "server", s.cfg.Name, "listed", maxListed)
			break
		}
		offered[t.Name] = true
		if !s.cfg.allows(t.Name) {
			continue
		}
		if t.Name == "" {
			s.m.log.Warn("mcp: a server offers a tool without a name; left out", "server", s.cfg.Name)
			continue
		}
		schema, err := inputSchema(t.InputSchema)
		if err != nil {
			s.m.log.Warn("mcp: a tool's input schema is unusable; tool left out", "server", s.cfg.Name, "tool", t.Name, "err", err)
			continue
		}
		name := toolName(s.cfg.Name, t.Name)
		byName[name] = append(byName[name], Tool{
			Name:        name,
			Server:      s.cfg.Name,
			Remote:      t.Name,
			Description: s.m.redact(capDescription(t.Description, min(maxDescription, int(s.cfg.MaxOutput)))),
			Schema:      json.RawMessage(s.m.redact(string(schema))),
		})
	}
	var tools []Tool
	size := 0
	for _, name := range slices.Sorted(maps.Keys(byName)) {
		if ts := byName[name]; len(ts) > 1 {
			remotes := make([]string, len(ts))
			for i, t := range ts {
				remotes[i] = t.Remote
			}
			s.m.log.Warn("mcp: tools whose names collide as Hive names are left out", "server", s.cfg.Name, "name", name, "tools", remotes)
			continue
		}
		t := byName[name][0]
		if !json.Valid(t.Schema) {
			continue // redaction broke it
		}
		// Every request of a model that may call them carries them all.
		if size += len(t.Description) + len(t.Schema); len(tools) == maxTools || size > maxToolBytes {
			s.m.log.Warn("mcp: a server offers more tools than a request can carry; the rest are left out (name the ones models need in allow)",
				"server", s.cfg.Name, "kept", len(tools), "max_tools", maxTools, "max_bytes", maxToolBytes)
			break
		}
		tools = append(tools, t)
	}
	for _, a := range s.cfg.Allow {
		if a != "*" && !offered[a] {
			s.m.log.Warn("mcp: the allow list names a tool the server does not offer", "server", s.cfg.Name, "tool", a)
		}
	}
	return tools, nil
}

// inputSchema returns a tool's input schema as a JSON object of type
// "object" (what model APIs take), with its keys in a fixed order.
func inputSchema(v any) ([]byte, error) {
	if v == nil {
		return []byte(`{"type":"object"}`), nil
	}
	b, err := json.Marshal(v)
	if err != nil {
		return nil, err
	}
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil || m == nil {
		return nil, errors.New("it is not a JSON object")
	}
	switch typ, ok := m["type"]; {
	case !ok:
		m["type"] = "object"
	case typ != "object":
		return nil, fmt.Errorf("its type is %v, not object", typ)
	}
	if b, err = json.Marshal(m); err == nil && len(b) > maxSchema {
		err = fmt.Errorf("it has %d bytes, more than %d", len(b), maxSchema)
	}
	return b, err
}

// environ returns a stdio server's environment: hostEnv and the variables
// its env names, from Hive's environment, and its set values. Never nil,
// which would give it all of Hive's.
func (s *server) environ() []string {
	vars := map[string]string{}
	for _, k := range hostEnv {
		if v := s.m.getenv(k); v != "" {
			vars[k] = v
		}
	}
	for _, k := range s.cfg.Env {
		v := s.m.getenv(k)
		if v == "" {
			s.m.log.Warn("mcp: a server's env names a variable that is not set", "server", s.cfg.Name, "var", k)
			continue
		}
		vars[k] = v
	}
	maps.Copy(vars, s.cfg.Set)
	env := make([]string, 0, len(vars))
	for _, k := range slices.Sorted(maps.Keys(vars)) {
		env = append(env, k+"="+vars[k])
	}
	return env
}

// headers returns the headers an HTTP server is sent, read from Hive's
// environment.
func (s *server) headers() (http.Header, error) {
	h := http.Header{}
	if e := s.cfg.BearerEnv; e != "" {
		v := s.m.getenv(e)
		if v == "" {
			return nil, fmt.Errorf("bearer_env names %s, which is not set in Hive's environment: set it, or remove bearer_env from [mcp.%s]", e, s.cfg.Name)
		}
		h.Set("Authorization", "Bearer "+v)
	}
	for _, k := range slices.Sorted(maps.Keys(s.cfg.HeadersEnv)) {
		e := s.cfg.HeadersEnv[k]
		v := s.m.getenv(e)
		if v == "" {
			return nil, fmt.Errorf("headers_env names %s for header %s, and it is not set in Hive's environment: set it, or remove the header from [mcp.%s]", e, k, s.cfg.Name)
		}
		h.Set(k, v)
	}
	return h, nil
}

// close ends the session: a stdio server is sent EOF, then SIGTERM, then
// SIGKILL (closeGrace apart) and reaped, and what is left of its process
// group is killed. It returns once the session's goroutines are done.
func (sess *session) close() {
	_ = sess.cs.Close()
	if sess.cmd != nil {
		killGroup(sess.cmd)
	}
	if sess.http != nil {
		sess.http.CloseIdleConnections()
	}
	if sess.proxy != nil {
		sess.proxy.Close()
	}
	<-sess.done
}

// describeEnd says how an ended session ended. Call it after done.
func (sess *session) describeEnd() string {
	if sess.cmd == nil {
		if sess.err != nil {
			return "its session ended: " + sess.err.Error()
		}
		return "its session ended"
	}
	how := "it stopped answering"
	if ps := sess.cmd.ProcessState; ps != nil {
		how = "it " + strings.Replace(ps.String(), "exit status", "exited with status", 1)
	}
	return how + sess.stderrNote()
}

// stderrNote is the end of a stdio server's stderr, to append to an error.
func (sess *session) stderrNote() string {
	if sess.stderr == nil || sess.cmd.Process == nil {
		return "" // it did not start
	}
	tail := strings.TrimSpace(sess.stderr.String())
	if tail == "" {
		return "; it wrote nothing to stderr"
	}
	return "; the end of its stderr:\n" + tail
}

// headerTransport adds the configured headers to requests to the server's
// own origin, and to no other (a redirect elsewhere gets no secret).
type headerTransport struct {
	base         http.RoundTripper
	scheme, host string
	header       http.Header
}

func (t *headerTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	if len(t.header) == 0 || req.URL.Scheme != t.scheme || req.URL.Host != t.host {
		return t.base.RoundTrip(req)
	}
	req = req.Clone(req.Context())
	for k, v := range t.header {
		req.Header[k] = v
	}
	return t.base.RoundTrip(req)
}

// allowTransport sends the requests of a server over HTTP to the
// destinations its network lists, and no other (a redirect elsewhere
// fails).
type allowTransport struct {
	base   http.RoundTripper
	dests  dests
	server string
}

func (t *allowTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	if dest := urlDest(req.URL); !t.dests.allowsName(dest) {
		if req.Body != nil {
			req.Body.Close()
		}
		return nil, fmt.Errorf("%s is not a destination that mcp.%s.network lists", dest, t.server)
	}
	return t.base.RoundTrip(req)
}

// tailBuffer keeps the last max bytes written to it.
type tailBuffer struct {
	max int
	mu  sync.Mutex // guards buf
	buf []byte
}

func (b *tailBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if len(p) >= b.max {
		b.buf = append(b.buf[:0], p[len(p)-b.max:]...)
		return len(p), nil
	}
	b.buf = append(b.buf, p...)
	if over := len(b.buf) - b.max; over > 0 {
		b.buf = append(b.buf[:0], b.buf[over:]...)
	}
	return len(p), nil
}

func (b *tailBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return string(b.buf)
}
