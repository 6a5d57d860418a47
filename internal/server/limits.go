package server

import (
	"net"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
)

// Limits bound what clients may hold open on the server. A zero field
// means no limit (for the timeouts, as in [http.Server]); [New] fills in
// the defaults of [DefaultLimits].
//
// The per-token caps count the requests of each token; a server has one
// token, so they bound everything its holder (or a page signed in with
// it) may run at once.
type Limits struct {
	// MaxConns bounds the connections open at once: [Server.LimitListener]
	// accepts no more until one closes (the rest wait in the kernel's
	// backlog). Default 1024.
	MaxConns int
	// StreamsPerToken bounds the concurrent event streams and streaming
	// chat completions of a token. Default 64.
	StreamsPerToken int
	// RequestsPerToken bounds the concurrent requests of a token, streams
	// included. Default 256.
	RequestsPerToken int

	// ReadHeaderTimeout, ReadTimeout, WriteTimeout and IdleTimeout are
	// set on the http.Server by [Server.Configure]. Defaults 10 s, 1 min,
	// 1 min, 1 min. A stream is not bound by ReadTimeout and WriteTimeout
	// as a whole: each of its writes must complete within WriteTimeout,
	// so a client that stops reading is dropped.
	ReadHeaderTimeout time.Duration
	ReadTimeout       time.Duration
	WriteTimeout      time.Duration
	IdleTimeout       time.Duration
}

// DefaultLimits returns the limits a new server starts with.
func DefaultLimits() Limits {
	return Limits{
		MaxConns:          1024,
		StreamsPerToken:   64,
		RequestsPerToken:  256,
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       time.Minute,
		WriteTimeout:      time.Minute,
		IdleTimeout:       time.Minute,
	}
}

// Configure sets hs's timeouts from s.Limits. Call it after changing
// Limits and before serving.
func (s *Server) Configure(hs *http.Server) {
	hs.ReadHeaderTimeout = s.Limits.ReadHeaderTimeout
	hs.ReadTimeout = s.Limits.ReadTimeout
	hs.WriteTimeout = s.Limits.WriteTimeout
	hs.IdleTimeout = s.Limits.IdleTimeout
}

// LimitListener returns ln accepting at most s.Limits.MaxConns
// connections open at once (ln itself when MaxConns is 0).
func (s *Server) LimitListener(ln net.Listener) net.Listener {
	if s.Limits.MaxConns <= 0 {
		return ln
	}
	return &limitListener{Listener: ln, slots: make(chan struct{}, s.Limits.MaxConns), done: make(chan struct{})}
}

// limitListener is golang.org/x/net/netutil.LimitListener: Accept takes a
// slot before accepting, the connection's Close gives it back.
type limitListener struct {
	net.Listener
	slots     chan struct{}
	done      chan struct{} // closed by Close
	closeOnce sync.Once
}

func (l *limitListener) Accept() (net.Conn, error) {
	select {
	case l.slots <- struct{}{}:
	case <-l.done:
		return nil, net.ErrClosed
	}
	c, err := l.Listener.Accept()
	if err != nil {
		<-l.slots
		return nil, err
	}
	return &limitConn{Conn: c, release: func() { <-l.slots }}, nil
}

func (l *limitListener) Close() error {
	err := l.Listener.Close()
	l.closeOnce.Do(func() { close(l.done) })
	return err
}

type limitConn struct {
	net.Conn
	once    sync.Once
	release func()
}

func (c *limitConn) Close() error {
	err := c.Conn.Close()
	c.once.Do(c.release)
	return err
}

// slots counts what a token holds against a cap.
type slots struct{ n atomic.Int64 }

// take takes a slot unless max are taken (max 0: no limit); the caller
// gives it back with put.
func (c *slots) take(max int) bool {
	if n := c.n.Add(1); max > 0 && n > int64(max) {
		c.n.Add(-1)
		return false
	}
	return true
}

func (c *slots) put() { c.n.Add(-1) }

// tooMany answers 429 and closes the connection: a client over its cap
// gets no connection to keep.
func tooMany(w http.ResponseWriter, what string, max int) {
	w.Header().Set("Retry-After", "1")
	w.Header().Set("Connection", "close")
	writeError(w, http.StatusTooManyRequests, "too_many_requests",
		"over "+strconv.Itoa(max)+" concurrent "+what+" for this token: close one and retry")
}

// stream writes a long-lived response (Server-Sent Events). The server's
// WriteTimeout would end it after a minute (HTTP/2 resets the stream, and
// once passed a deadline cannot be extended there), so it is lifted;
// instead each write must complete within WriteTimeout, and a client that
// stops reading is dropped when one does not.
type stream struct {
	w       http.ResponseWriter
	rc      *http.ResponseController
	timeout time.Duration
}

// startStream answers 200 with the headers of a Server-Sent Events
// stream (not cached, not buffered by a proxy) and sends them.
func (s *Server) startStream(w http.ResponseWriter) (*stream, error) {
	h := w.Header()
	h.Set("Content-Type", "text/event-stream")
	h.Set("Cache-Control", "no-store")
	h.Set("X-Accel-Buffering", "no")
	st := &stream{w: w, rc: http.NewResponseController(w), timeout: s.Limits.WriteTimeout}
	// The request was read: lift its read deadline (HTTP/2 keeps one per
	// stream).
	st.rc.SetReadDeadline(time.Time{})
	st.deadline()
	w.WriteHeader(http.StatusOK)
	return st, st.flush()
}

// deadline gives the next write WriteTimeout to complete.
func (st *stream) deadline() {
	if st.timeout > 0 {
		st.rc.SetWriteDeadline(time.Now().Add(st.timeout))
	} else {
		st.rc.SetWriteDeadline(time.Time{})
	}
}

// write buffers p (it may block when the buffer fills, within the
// deadline).
func (st *stream) write(p []byte) error {
	st.deadline()
	_, err := st.w.Write(p)
	return err
}

// flush sends what is buffered, then lifts the deadline while the stream
// is idle.
func (st *stream) flush() error {
	st.deadline()
	if err := st.rc.Flush(); err != nil {
		return err
	}
	return st.rc.SetWriteDeadline(time.Time{})
}

// send writes p and flushes.
func (st *stream) send(p []byte) error {
	if err := st.write(p); err != nil {
		return err
	}
	return st.flush()
}
