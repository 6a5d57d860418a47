package server

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/hive-swarm/hive/internal/llm/llmtest"
	"github.com/hive-swarm/hive/internal/swarm"
)

// serveLimited replaces e's server with one as hive serve runs it: the
// limits set (change them with edit), the http.Server configured from
// them, the listener capped.
func (e *testEnv) serveLimited(edit func(*Limits)) { e.serveLimitedProto(edit, false) }

// serveLimitedProto is serveLimited, over HTTPS and HTTP/2 when h2 is set
// (e.srv.Client() trusts it).
func (e *testEnv) serveLimitedProto(edit func(*Limits), h2 bool) {
	e.t.Helper()
	if edit != nil {
		edit(&e.server.Limits)
	}
	e.srv.Close()
	srv := httptest.NewUnstartedServer(e.server.Handler())
	e.server.Configure(srv.Config)
	srv.Listener = e.server.LimitListener(srv.Listener)
	if h2 {
		srv.EnableHTTP2 = true
		srv.StartTLS()
	} else {
		srv.Start()
	}
	e.t.Cleanup(srv.Close)
	e.srv = srv
}

// slowRun starts a run whose lead does not answer for a minute: its event
// streams stay open.
func slowEnv(t *testing.T, edit func(*Limits)) (*testEnv, string) {
	return slowEnvProto(t, edit, false)
}

func slowEnvProto(t *testing.T, edit func(*Limits), h2 bool) (*testEnv, string) {
	sc := &script{n: 1}
	sc.slow.Store(true)
	e := newTestEnv(t, sc.handle)
	e.serveLimitedProto(edit, h2)
	id := e.startRun("a SLOW job")
	t.Cleanup(func() { e.engine.Cancel(context.Background(), id) })
	return e, id
}

// openStream opens a run's event stream with the bearer token; the
// caller closes the body.
func (e *testEnv) openStream(c *http.Client, id string) *http.Response {
	e.t.Helper()
	req, _ := http.NewRequest("GET", e.srv.URL+"/v1/runs/"+id+"/events", nil)
	req.Header.Set("Authorization", "Bearer "+testToken)
	resp, err := c.Do(req)
	if err != nil {
		e.t.Fatal(err)
	}
	return resp
}

// wantTooMany checks a 429 answer and closes it.
func wantTooMany(t *testing.T, what string, resp *http.Response) {
	t.Helper()
	defer resp.Body.Close()
	var body errorJSON
	json.NewDecoder(resp.Body).Decode(&body)
	if resp.StatusCode != http.StatusTooManyRequests || body.Error.Code != "too_many_requests" {
		t.Fatalf("%s: %d %q, want 429 too_many_requests", what, resp.StatusCode, body.Error.Code)
	}
	if resp.Header.Get("Retry-After") == "" || !resp.Close {
		t.Errorf("%s: Retry-After %q, Connection: close %v; want both", what, resp.Header.Get("Retry-After"), resp.Close)
	}
}

// eventually retries f until it is true or 10 s have passed.
func eventually(t *testing.T, what string, f func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !f() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within 10s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// rawGet sends a GET over conn and reads the answer's head.
func rawGet(t *testing.T, conn net.Conn, br *bufio.Reader, path, header string) *http.Response {
	t.Helper()
	if _, err := io.WriteString(conn, "GET "+path+" HTTP/1.1\r\nHost: hive\r\n"+header+"\r\n"); err != nil {
		t.Fatal(err)
	}
	conn.SetReadDeadline(time.Now().Add(5 * time.Second))
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatalf("GET %s: %v", path, err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp
}

// wantClosed checks that the server closes conn within 5 s.
func wantClosed(t *testing.T, what string, conn net.Conn, br *bufio.Reader) {
	t.Helper()
	conn.SetReadDeadline(time.Now().Add(5 * time.Second))
	_, err := br.ReadByte()
	var ne net.Error
	if err == nil || errors.As(err, &ne) && ne.Timeout() {
		t.Errorf("%s: the connection is still open (%v)", what, err)
	}
}

func TestUnauthenticatedConnectionsClosed(t *testing.T) {
	e := newTestEnv(t, (&script{n: 1}).handle)
	e.serveLimited(func(l *Limits) { l.ReadHeaderTimeout = 200 * time.Millisecond })
	addr := strings.TrimPrefix(e.srv.URL, "http://")
	for _, c := range []struct{ path, header string }{
		{"/v1/runs", ""},
		{"/v1/runs", "Authorization: Bearer wrong\r\n"},
		{"/v1/runs", "Cookie: " + CookieName + "=wrong\r\n"},
		{"/", ""},
		{"/?token=wrong", ""},
	} {
		conn, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		br := bufio.NewReader(conn)
		resp := rawGet(t, conn, br, c.path, c.header)
		if resp.StatusCode != 401 || !resp.Close {
			t.Errorf("GET %s %q: %d, Connection: close %v; want 401 and close", c.path, c.header, resp.StatusCode, resp.Close)
		}
		wantClosed(t, "after a 401 to GET "+c.path, conn, br)
		conn.Close()
	}
	// A connection that sends nothing is closed after ReadHeaderTimeout.
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	wantClosed(t, "a silent connection", conn, bufio.NewReader(conn))
	// An authorized one is kept alive.
	conn2, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn2.Close()
	br := bufio.NewReader(conn2)
	for range 2 {
		if resp := rawGet(t, conn2, br, "/v1/runs", "Authorization: Bearer "+testToken+"\r\n"); resp.StatusCode != 200 || resp.Close {
			t.Fatalf("authorized: %d, close %v", resp.StatusCode, resp.Close)
		}
	}
}

func TestConnectionCap(t *testing.T) {
	const max = 4
	e := newTestEnv(t, (&script{n: 1}).handle)
	e.serveLimited(func(l *Limits) { l.MaxConns = max })
	addr := strings.TrimPrefix(e.srv.URL, "http://")
	type client struct {
		conn net.Conn
		br   *bufio.Reader
	}
	dial := func() client {
		conn, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { conn.Close() })
		return client{conn, bufio.NewReader(conn)}
	}
	var open []client
	for range max {
		c := dial()
		if resp := rawGet(t, c.conn, c.br, "/healthz", ""); resp.StatusCode != 200 {
			t.Fatalf("healthz: %d", resp.StatusCode)
		}
		open = append(open, c)
	}
	// One more is not served while the others stay open…
	extra := dial()
	io.WriteString(extra.conn, "GET /healthz HTTP/1.1\r\nHost: hive\r\n\r\n")
	extra.conn.SetReadDeadline(time.Now().Add(500 * time.Millisecond))
	if _, err := extra.br.ReadByte(); err == nil {
		t.Fatalf("connection %d was served", max+1)
	}
	// …and is when one closes.
	open[0].conn.Close()
	extra.conn.SetReadDeadline(time.Now().Add(5 * time.Second))
	resp, err := http.ReadResponse(extra.br, nil)
	if err != nil {
		t.Fatalf("after one closed: %v", err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("after one closed: %d", resp.StatusCode)
	}
}

func TestStreamCap(t *testing.T) {
	e, id := slowEnv(t, nil)
	max := e.server.Limits.StreamsPerToken
	if max != 64 {
		t.Fatalf("default StreamsPerToken %d, want 64", max)
	}
	c := &http.Client{Transport: &http.Transport{}}
	defer c.CloseIdleConnections()
	var streams []*http.Response
	defer func() {
		for _, r := range streams {
			r.Body.Close()
		}
	}()
	for i := range max {
		resp := e.openStream(c, id)
		if resp.StatusCode != 200 {
			resp.Body.Close()
			t.Fatalf("stream %d: %d", i+1, resp.StatusCode)
		}
		streams = append(streams, resp)
	}
	wantTooMany(t, "stream 65", e.openStream(c, id))
	// A streaming chat completion is a stream too.
	req, _ := http.NewRequest("POST", e.srv.URL+"/v1/chat/completions",
		strings.NewReader(`{"model": "hive", "stream": true, "messages": [{"role": "user", "content": "hi"}]}`))
	req.Header.Set("Authorization", "Bearer "+testToken)
	req.Header.Set("Content-Type", "application/json")
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != 429 {
		resp.Body.Close()
		t.Fatalf("streaming chat beyond the cap: %d", resp.StatusCode)
	}
	resp.Body.Close()
	// Other requests still pass.
	if resp := e.do("GET", "/v1/runs", testToken, nil, nil); resp.StatusCode != 200 {
		t.Fatalf("GET /v1/runs with the streams open: %d", resp.StatusCode)
	}
	streams[0].Body.Close()
	streams = streams[1:]
	eventually(t, "a stream after one closed", func() bool {
		resp := e.openStream(c, id)
		if resp.StatusCode != 200 {
			resp.Body.Close()
			return false
		}
		streams = append(streams, resp)
		return true
	})
}

func TestRequestCap(t *testing.T) {
	const max = 3
	e, id := slowEnv(t, func(l *Limits) { l.RequestsPerToken = max })
	c := &http.Client{Transport: &http.Transport{}}
	defer c.CloseIdleConnections()
	var streams []*http.Response
	defer func() {
		for _, r := range streams {
			r.Body.Close()
		}
	}()
	for range max {
		resp := e.openStream(c, id)
		if resp.StatusCode != 200 {
			t.Fatalf("stream: %d", resp.StatusCode)
		}
		streams = append(streams, resp)
	}
	req, _ := http.NewRequest("GET", e.srv.URL+"/v1/runs", nil)
	req.Header.Set("Authorization", "Bearer "+testToken)
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	wantTooMany(t, "request 4", resp)
	streams[0].Body.Close()
	streams = streams[1:]
	eventually(t, "a request after one ended", func() bool {
		return e.do("GET", "/v1/runs", testToken, nil, nil).StatusCode == 200
	})
}

// TestStreamsOutliveTimeouts: an event stream and a streaming chat
// completion live on past the server's read and write timeouts as long as
// their writes go through.
func TestStreamsOutliveTimeouts(t *testing.T) {
	for _, h2 := range []bool{false, true} {
		t.Run(map[bool]string{false: "HTTP/1.1", true: "HTTP/2"}[h2], func(t *testing.T) { testStreamsOutliveTimeouts(t, h2) })
	}
}

func testStreamsOutliveTimeouts(t *testing.T, h2 bool) {
	const timeout = 300 * time.Millisecond
	e, id := slowEnvProto(t, func(l *Limits) {
		l.ReadTimeout, l.WriteTimeout, l.IdleTimeout = timeout, timeout, timeout
	}, h2)
	e.server.PingInterval = 50 * time.Millisecond
	c := e.srv.Client()
	defer c.CloseIdleConnections()

	req, _ := http.NewRequest("POST", e.srv.URL+"/v1/chat/completions",
		strings.NewReader(`{"model": "hive", "stream": true, "messages": [{"role": "user", "content": "a SLOW question"}]}`))
	req.Header.Set("Authorization", "Bearer "+testToken)
	req.Header.Set("Content-Type", "application/json")
	chat, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer chat.Body.Close()
	events := e.openStream(c, id)
	defer events.Body.Close()
	for _, s := range []struct {
		name string
		resp *http.Response
		ping string
	}{{"event stream", events, ": ping"}, {"streaming chat", chat, ": working"}} {
		if s.resp.StatusCode != 200 || s.resp.ProtoMajor != map[bool]int{false: 1, true: 2}[h2] {
			t.Fatalf("%s: %d over %s", s.name, s.resp.StatusCode, s.resp.Proto)
		}
		start := time.Now()
		sc := bufio.NewScanner(s.resp.Body)
		pings := 0
		for time.Since(start) < 5*timeout && sc.Scan() {
			if sc.Text() == s.ping {
				pings++
			}
		}
		if time.Since(start) < 5*timeout {
			t.Fatalf("%s ended after %v (%v), %d pings; WriteTimeout is %v", s.name, time.Since(start), sc.Err(), pings, timeout)
		}
		if pings < 10 {
			t.Errorf("%s: %d pings in %v", s.name, pings, 5*timeout)
		}
	}
}

// TestStalledReaderDropped: a client that stops reading its stream is
// dropped when a write cannot complete within WriteTimeout.
func TestStalledReaderDropped(t *testing.T) {
	big := strings.Repeat("an answer nobody reads. ", 4<<20/24)
	h := func(c *llmtest.Call) llmtest.Reply {
		return llmtest.Reply{ToolCalls: []llmtest.ToolCall{toolCall("finish", map[string]any{"answer": big})}}
	}
	e := newTestEnv(t, h)
	id := e.startRun("answer at length")
	e.waitStatus(id, swarm.StatusDone)
	e.serveLimited(func(l *Limits) { l.WriteTimeout = 300 * time.Millisecond })

	conn, err := net.Dial("tcp", strings.TrimPrefix(e.srv.URL, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	conn.(*net.TCPConn).SetReadBuffer(4096)
	io.WriteString(conn, "GET /v1/runs/"+id+"/events HTTP/1.1\r\nHost: hive\r\nAuthorization: Bearer "+testToken+"\r\n\r\n")
	eventually(t, "the stream to open", func() bool { return e.server.counts.of("").streams.n.Load() == 1 })
	start := time.Now()
	eventually(t, "the stalled stream to be dropped", func() bool { return e.server.counts.of("").streams.n.Load() == 0 })
	t.Logf("dropped after %v", time.Since(start).Round(time.Millisecond))
	// What the server had sent is there, then the connection ends short
	// of the answer.
	conn.SetReadDeadline(time.Now().Add(5 * time.Second))
	n, err := io.Copy(io.Discard, conn)
	if n >= int64(len(big)) {
		t.Errorf("read %d bytes (%v): the whole answer came through", n, err)
	}
}

// TestChatOutlivesTimeouts: a chat completion that is not streamed waits
// for its run past the server's read and write timeouts and answers.
func TestChatOutlivesTimeouts(t *testing.T) {
	for _, h2 := range []bool{false, true} {
		t.Run(map[bool]string{false: "HTTP/1.1", true: "HTTP/2"}[h2], func(t *testing.T) { testChatOutlivesTimeouts(t, h2) })
	}
}

func testChatOutlivesTimeouts(t *testing.T, h2 bool) {
	const timeout = 300 * time.Millisecond
	h := func(c *llmtest.Call) llmtest.Reply {
		return llmtest.Reply{Latency: 4 * timeout, ToolCalls: []llmtest.ToolCall{toolCall("finish", map[string]any{"answer": "late but here"})}}
	}
	e := newTestEnv(t, h)
	e.serveLimitedProto(func(l *Limits) { l.ReadTimeout, l.WriteTimeout = timeout, timeout }, h2)
	var out struct {
		Choices []struct {
			Message struct{ Content string }
		}
	}
	start := time.Now()
	resp := e.do("POST", "/v1/chat/completions", testToken, map[string]any{
		"model": "hive", "messages": []map[string]string{{"role": "user", "content": "take your time"}}}, &out)
	if resp.StatusCode != 200 || len(out.Choices) != 1 || out.Choices[0].Message.Content != "late but here" {
		t.Fatalf("after %v: %d %+v", time.Since(start), resp.StatusCode, out)
	}
	if time.Since(start) < 4*timeout {
		t.Fatalf("answered after %v, before the model", time.Since(start))
	}
}
