package mcp

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"net"
	"net/http"
	"net/netip"
	"strconv"
	"strings"
	"sync"
	"time"
)

// A stdio server with a list of destinations (network = [...]) runs in a
// network namespace of its own, where it can reach only its loopback. On
// it, at 127.0.0.1:PORT, listens a socket that Hive holds (see
// netns_linux.go): the server's HTTP_PROXY, HTTPS_PROXY and ALL_PROXY. A
// [proxy] serves it from Hive's side: it takes CONNECT host:port (HTTPS and
// any other TCP), and plain-HTTP requests with an absolute URL, to the
// listed destinations only; it resolves names itself, on the host, and
// dials the addresses it checked; everything else is answered 403, and
// logged with the server's name and the destination.

const (
	// proxyHeaderTimeout bounds the reading of a request's header.
	proxyHeaderTimeout = 30 * time.Second
	// proxyMaxHeader bounds its size.
	proxyMaxHeader = 64 << 10
	// proxyDialTimeout bounds a name's resolution and the dial.
	proxyDialTimeout = 15 * time.Second
	// proxyMaxConns bounds the connections of a server in flight; more
	// wait in the listen queue.
	proxyMaxConns = 128
)

// netHooks are the host's network as a proxy sees it; tests replace them.
type netHooks struct {
	// resolve returns the addresses of a host name.
	resolve func(ctx context.Context, host string) ([]netip.Addr, error)
	// own returns the host's own addresses.
	own func() []netip.Addr
}

func (h netHooks) withDefaults() netHooks {
	if h.resolve == nil {
		h.resolve = func(ctx context.Context, host string) ([]netip.Addr, error) {
			return net.DefaultResolver.LookupNetIP(ctx, "ip", host)
		}
	}
	if h.own == nil {
		h.own = hostAddrs
	}
	return h
}

// hostAddrs returns the addresses of the host's interfaces.
func hostAddrs() []netip.Addr {
	addrs, _ := net.InterfaceAddrs()
	var out []netip.Addr
	for _, a := range addrs {
		if p, err := netip.ParsePrefix(a.String()); err == nil {
			out = append(out, p.Addr().Unmap())
		}
	}
	return out
}

// proxy is the HTTP proxy of one session of a server with a list of
// destinations. It owns its goroutines: newProxy starts them, Close ends
// them.
type proxy struct {
	server string
	dests  dests
	log    *slog.Logger
	redact func(string) string
	net    netHooks
	ln     net.Listener

	ctx    context.Context // cancelled by Close
	cancel context.CancelFunc
	wg     sync.WaitGroup

	mu    sync.Mutex // guards conns
	conns map[net.Conn]struct{}
}

// newProxy serves ln for server, whose network lists dests.
func newProxy(ln net.Listener, server string, ds dests, log *slog.Logger, redact func(string) string, h netHooks) *proxy {
	p := &proxy{server: server, dests: ds, log: log, redact: redact, net: h.withDefaults(), ln: ln,
		conns: map[net.Conn]struct{}{}}
	p.ctx, p.cancel = context.WithCancel(context.Background())
	p.wg.Go(p.accept)
	return p
}

// Close stops the proxy: it closes its socket and every connection in
// flight, and waits for their goroutines.
func (p *proxy) Close() {
	p.cancel()
	p.ln.Close()
	p.mu.Lock()
	for c := range p.conns {
		c.Close()
	}
	p.mu.Unlock()
	p.wg.Wait()
}

func (p *proxy) accept() {
	slots := make(chan struct{}, proxyMaxConns)
	for {
		select {
		case slots <- struct{}{}:
		case <-p.ctx.Done():
			return
		}
		c, err := p.ln.Accept()
		if err != nil {
			<-slots
			if p.ctx.Err() != nil || errors.Is(err, net.ErrClosed) {
				return
			}
			// Out of descriptors, or a connection reset while queued:
			// the next may do.
			p.log.Warn("mcp: a server's proxy could not accept a connection", "server", p.server, "err", err)
			select {
			case <-time.After(50 * time.Millisecond):
			case <-p.ctx.Done():
				return
			}
			continue
		}
		if !p.track(c) {
			return
		}
		p.wg.Go(func() {
			defer func() { <-slots }()
			defer p.untrack(c)
			p.serve(c)
		})
	}
}

// track adds c to the connections Close closes; false (and c closed) once
// the proxy is closing.
func (p *proxy) track(c net.Conn) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.ctx.Err() != nil {
		c.Close()
		return false
	}
	p.conns[c] = struct{}{}
	return true
}

func (p *proxy) untrack(c net.Conn) {
	c.Close()
	p.mu.Lock()
	delete(p.conns, c)
	p.mu.Unlock()
}

// serve answers one connection of the server: one CONNECT, or one
// plain-HTTP request.
func (p *proxy) serve(c net.Conn) {
	c.SetReadDeadline(time.Now().Add(proxyHeaderTimeout))
	lr := &io.LimitedReader{R: c, N: proxyMaxHeader}
	br := bufio.NewReader(lr)
	req, err := http.ReadRequest(br)
	if err != nil {
		reply(c, http.StatusBadRequest, "Hive's proxy takes CONNECT host:port, or a request for an absolute http:// URL")
		return
	}
	c.SetReadDeadline(time.Time{})
	lr.N = math.MaxInt64 // the body, or the tunnel

	var target string
	switch {
	case req.Method == http.MethodConnect:
		target = req.Host
	case req.URL.IsAbs() && req.URL.Scheme == "http" && req.URL.Host != "":
		target = urlDest(req.URL)
	default:
		dest := req.Host
		if req.URL.IsAbs() {
			dest = req.URL.Scheme + "://" + req.URL.Host
		}
		p.refuse(c, dest, "not a proxy request (CONNECT host:port, or an absolute http:// URL)")
		return
	}
	ctx, cancel := context.WithTimeout(p.ctx, proxyDialTimeout)
	defer cancel()
	addrs, port, why := p.check(ctx, target)
	if why != "" {
		p.refuse(c, target, why)
		return
	}
	up, err := p.dial(ctx, addrs, port)
	if err != nil {
		p.log.Info("mcp: a server's proxy could not reach a listed destination", "server", p.server, "destination", p.redact(target), "err", err)
		reply(c, http.StatusBadGateway, fmt.Sprintf("Hive's proxy could not reach %s: %v", target, err))
		return
	}
	if !p.track(up) {
		return
	}
	defer p.untrack(up)
	if req.Method == http.MethodConnect {
		if _, err := io.WriteString(c, "HTTP/1.1 200 Connection established\r\n\r\n"); err != nil {
			return
		}
		if n := br.Buffered(); n > 0 {
			b, _ := br.Peek(n)
			if _, err := up.Write(b); err != nil {
				return
			}
		}
		splice(c, up)
		return
	}
	p.forward(c, up, req)
}

// forward sends a plain-HTTP request on to up, and its answer back; one
// request a connection.
func (p *proxy) forward(c, up net.Conn, req *http.Request) {
	for _, h := range hopHeaders(req.Header) {
		req.Header.Del(h)
	}
	req.Close = true
	req.Host = "" // the URL's: what was checked and dialed
	if err := req.Write(up); err != nil {
		reply(c, http.StatusBadGateway, "Hive's proxy could not send the request: "+err.Error())
		return
	}
	resp, err := http.ReadResponse(bufio.NewReader(up), req)
	if err != nil {
		reply(c, http.StatusBadGateway, "Hive's proxy could not read the answer: "+err.Error())
		return
	}
	defer resp.Body.Close()
	for _, h := range hopHeaders(resp.Header) {
		resp.Header.Del(h)
	}
	resp.Close = true
	resp.Write(c)
}

// hopHeaders are the headers of h that concern one connection only.
func hopHeaders(h http.Header) []string {
	hop := []string{"Connection", "Proxy-Connection", "Keep-Alive", "Proxy-Authenticate", "Proxy-Authorization", "Te", "Trailer", "Upgrade"}
	for _, v := range h.Values("Connection") {
		for f := range strings.SplitSeq(v, ",") {
			if f = strings.TrimSpace(f); f != "" {
				hop = append(hop, f)
			}
		}
	}
	return hop
}

// check returns the addresses at which target (host:port) may be dialed,
// or why it is refused.
func (p *proxy) check(ctx context.Context, target string) (addrs []netip.Addr, port uint16, why string) {
	host, ps, err := net.SplitHostPort(target)
	if err != nil {
		return nil, 0, "not host:port"
	}
	if port, err = parsePort(ps); err != nil {
		return nil, 0, "not a port"
	}
	host = strings.TrimSuffix(strings.ToLower(host), ".")
	if ip, err := netip.ParseAddr(host); err == nil {
		if ip.Zone() != "" || !p.dests.listsAddr(ip.Unmap(), port) {
			return nil, 0, "the server's network does not list it"
		}
		return []netip.Addr{ip.Unmap()}, port, "" // listed as an address: reached, whatever it is
	}
	if !validHostName(host) {
		return nil, 0, "not a host name"
	}
	if !p.dests.allowsName(net.JoinHostPort(host, ps)) {
		return nil, 0, "the server's network does not list it"
	}
	resolved, err := p.net.resolve(ctx, host)
	if err != nil {
		return nil, 0, "it cannot be resolved: " + err.Error()
	}
	var refused []string
	own := p.net.own()
	for _, a := range resolved {
		a = a.Unmap()
		if why := localAddr(a, own); why != "" && !p.dests.listsAddr(a, port) {
			refused = append(refused, a.String()+" ("+why+")")
			continue
		}
		addrs = append(addrs, a)
	}
	if len(addrs) == 0 {
		return nil, 0, fmt.Sprintf("it resolves to %s, which only the address itself, listed with the port, would allow", strings.Join(refused, ", "))
	}
	return addrs, port, ""
}

// localAddr says why a is an address of this machine or its link (which
// a listed name may not lead to), or "".
func localAddr(a netip.Addr, own []netip.Addr) string {
	switch {
	case a.IsLoopback():
		return "loopback"
	case a.IsUnspecified() || a.Is4() && a.As4()[0] == 0:
		return "unspecified"
	case a.IsLinkLocalUnicast() || a.IsLinkLocalMulticast():
		return "link-local"
	case a.IsMulticast():
		return "multicast"
	}
	for _, o := range own {
		if a == o {
			return "an address of this machine"
		}
	}
	return ""
}

// dial connects to the first of addrs that answers.
func (p *proxy) dial(ctx context.Context, addrs []netip.Addr, port uint16) (net.Conn, error) {
	var d net.Dialer
	var errs []error
	for _, a := range addrs {
		c, err := d.DialContext(ctx, "tcp", netip.AddrPortFrom(a, port).String())
		if err == nil {
			return c, nil
		}
		errs = append(errs, err)
	}
	return nil, errors.Join(errs...)
}

// refuse answers 403 and logs it.
func (p *proxy) refuse(c net.Conn, dest, why string) {
	p.log.Warn("mcp: refused a connection of a server: its network does not allow the destination",
		"server", p.server, "destination", p.redact(dest), "why", p.redact(why))
	reply(c, http.StatusForbidden, fmt.Sprintf("Hive refused %s: %s (see network in [mcp.%s])", dest, why, p.server))
}

// reply writes a short answer of status and closes the connection's
// writing half.
func reply(c net.Conn, status int, text string) {
	text = strings.Map(func(r rune) rune {
		if r < ' ' {
			return ' '
		}
		return r
	}, text) + "\n"
	fmt.Fprintf(c, "HTTP/1.1 %d %s\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: %s\r\nConnection: close\r\n\r\n%s",
		status, http.StatusText(status), strconv.Itoa(len(text)), text)
	closeWrite(c)
}

// splice copies a to b and b to a until both have ended.
func splice(a, b net.Conn) {
	var wg sync.WaitGroup
	wg.Go(func() {
		io.Copy(b, a)
		closeWrite(b)
	})
	io.Copy(a, b)
	closeWrite(a)
	wg.Wait()
}

func closeWrite(c net.Conn) {
	if cw, ok := c.(interface{ CloseWrite() error }); ok {
		cw.CloseWrite()
	}
}
