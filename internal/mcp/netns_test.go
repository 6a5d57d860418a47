//go:build linux

package mcp

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// destination is an HTTP server on the host's 127.0.0.1 that counts the
// requests it receives.
type destination struct {
	*httptest.Server
	hits atomic.Int64
	port string
}

func newDestination(t *testing.T, tls bool) *destination {
	t.Helper()
	d := &destination{}
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		d.hits.Add(1)
		fmt.Fprintf(w, "hello from %s", r.Host)
	})
	if tls {
		d.Server = httptest.NewTLSServer(h)
	} else {
		d.Server = httptest.NewServer(h)
	}
	t.Cleanup(d.Close)
	_, d.port, _ = net.SplitHostPort(d.Listener.Addr().String())
	return d
}

// fakeNet resolves every name under ".test" to 127.0.0.1, but those under
// "own.test" to ownAddr, which it calls an address of the host.
var ownAddr = netip.MustParseAddr("198.51.100.7")

func fakeNet() netHooks {
	return netHooks{
		resolve: func(_ context.Context, host string) ([]netip.Addr, error) {
			switch {
			case strings.HasSuffix(host, ".own.test"):
				return []netip.Addr{ownAddr}, nil
			case strings.HasSuffix(host, ".test"):
				return []netip.Addr{netip.MustParseAddr("127.0.0.1")}, nil
			}
			return nil, errors.New("no such host")
		},
		own: func() []netip.Addr { return append(hostAddrs(), ownAddr) },
	}
}

// logBuffer is a log written to the test's and kept.
type logBuffer struct {
	t  *testing.T
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *logBuffer) Write(p []byte) (int, error) {
	l.t.Log(strings.TrimRight(string(p), "\n"))
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *logBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// netManager starts this test binary as a server called kid with network
// n, on the fake network, and returns it with its log.
func netManager(t *testing.T, n Network) (*Manager, *logBuffer) {
	t.Helper()
	cfg := stdioConfig(t, "tools")
	cfg.Network = n
	logs := &logBuffer{t: t}
	m, err := New(map[string]*ServerConfig{"kid": &cfg}, slog.New(slog.NewTextHandler(logs, nil)), Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Close() })
	m.servers["kid"].net = fakeNet()
	start(t, m)
	return m, logs
}

func fetchText(t *testing.T, m *Manager, args string) string {
	t.Helper()
	r := call(t, m, "kid__fetch", args)
	t.Logf("fetch %s: %s", args, r.Text)
	return r.Text
}

// TestNetworkModes: a server's fetch tool (Go's net/http, which honours
// HTTP(S)_PROXY) against two servers of the host. With "host" it reaches
// both; with "none" neither, and nothing reaches them; with a list, the
// listed one by its name, over HTTP and over HTTPS, and the other is
// refused with 403, logged, and never reached.
func TestNetworkModes(t *testing.T) {
	allowed, other, secure := newDestination(t, false), newDestination(t, false), newDestination(t, true)
	check := goroutines(t)

	t.Run("host", func(t *testing.T) {
		m, _ := netManager(t, Network{})
		for _, d := range []*destination{allowed, other} {
			if got := fetchText(t, m, `{"url": "`+d.URL+`/"}`); !strings.HasPrefix(got, "status: 200\nhello") {
				t.Errorf("host network: %s", got)
			}
		}
		if allowed.hits.Load() != 1 || other.hits.Load() != 1 {
			t.Errorf("hits %d and %d, want 1 and 1", allowed.hits.Load(), other.hits.Load())
		}
		m.Close()
	})
	allowed.hits.Store(0)
	other.hits.Store(0)

	t.Run("none", func(t *testing.T) {
		m, _ := netManager(t, Network{Mode: NetworkNone})
		for _, args := range []string{
			`{"url": "` + allowed.URL + `/"}`,
			`{"url": "http://allowed.test:` + allowed.port + `/"}`,
			`{"url": "http://localhost:` + other.port + `/"}`,
			`{"url": "https://example.org/"}`,
		} {
			if got := fetchText(t, m, args); !strings.HasPrefix(got, "error: ") {
				t.Errorf("no network: %s", got)
			}
		}
		if got := call(t, m, "kid__env", `{"name": "HTTPS_PROXY"}`).Text; got != "HTTPS_PROXY is not set" {
			t.Errorf("no network: %s", got)
		}
		m.Close()
	})
	if n := allowed.hits.Load() + other.hits.Load(); n != 0 {
		t.Errorf("a server without network reached the host's servers %d times", n)
	}

	t.Run("list", func(t *testing.T) {
		m, logs := netManager(t, Network{Mode: NetworkAllow, Allow: []string{
			// The fake DNS says 127.0.0.1, which a name may lead to only
			// where the address is listed too.
			"allowed.test:" + allowed.port, "127.0.0.1:" + allowed.port,
			"secure.test:" + secure.port, "127.0.0.1:" + secure.port,
		}})
		if got := fetchText(t, m, `{"url": "http://allowed.test:`+allowed.port+`/x"}`); got != "status: 200\nhello from allowed.test:"+allowed.port {
			t.Errorf("the listed destination: %s", got)
		}
		if got := fetchText(t, m, `{"url": "https://secure.test:`+secure.port+`/", "insecure": true}`); got != "status: 200\nhello from secure.test:"+secure.port {
			t.Errorf("the listed destination over HTTPS: %s", got)
		}
		got := fetchText(t, m, `{"url": "http://other.test:`+other.port+`/"}`)
		if !strings.HasPrefix(got, "status: 403\nHive refused other.test:"+other.port+": the server's network does not list it") {
			t.Errorf("an unlisted destination: %s", got)
		}
		if got := fetchText(t, m, `{"url": "https://other.test:`+other.port+`/"}`); !strings.Contains(got, "Forbidden") {
			t.Errorf("an unlisted destination over HTTPS: %s", got)
		}
		for _, v := range []string{"HTTP_PROXY", "https_proxy", "ALL_PROXY"} {
			if got := call(t, m, "kid__env", `{"name": "`+v+`"}`).Text; !strings.HasPrefix(got, v+"=http://127.0.0.1:") {
				t.Errorf("%s", got)
			}
		}
		if log := logs.String(); !strings.Contains(log, "server=kid destination=other.test:"+other.port) {
			t.Errorf("no log line names the server and the refused destination:\n%s", log)
		}
		m.Close()
	})
	if allowed.hits.Load() != 1 || secure.hits.Load() != 1 || other.hits.Load() != 0 {
		t.Errorf("hits: listed %d and %d, unlisted %d; want 1, 1 and 0", allowed.hits.Load(), secure.hits.Load(), other.hits.Load())
	}
	check()
}

// TestNetworkHostile: what a model steered by an attacker would ask the
// fetch tool of a server with a list: an unlisted host, the host's
// 127.0.0.1 (straight, and through the proxy), a listed wildcard whose
// DNS leads to 127.0.0.1 or to an address of the host, the proxy's own
// socket (as a server and as a destination), a request that is not a
// proxy's. All are refused, and nothing reaches the host's servers.
func TestNetworkHostile(t *testing.T) {
	allowed, target := newDestination(t, false), newDestination(t, false)
	check := goroutines(t)
	m, logs := netManager(t, Network{Mode: NetworkAllow, Allow: []string{
		"allowed.test:" + allowed.port, "127.0.0.1:" + allowed.port,
		"*.evil.test:" + target.port, "*.own.test:" + target.port,
	}})
	for _, tc := range []struct {
		args, want string
	}{
		{`{"url": "http://elsewhere.example:` + target.port + `/"}`, "status: 403"},
		{`{"url": "http://other.test:` + allowed.port + `/"}`, "status: 403"},
		{`{"url": "http://allowed.test:` + target.port + `/"}`, "status: 403"},
		// Go's net/http goes straight to 127.0.0.1: the namespace's own.
		{`{"url": "http://127.0.0.1:` + target.port + `/"}`, "error: "},
		{`{"url": "http://127.0.0.1:` + target.port + `/", "via_proxy": true}`, "status: 403"},
		{`{"url": "https://127.0.0.1:` + target.port + `/", "via_proxy": true}`, "error: "}, // CONNECT refused
		{`{"url": "http://[::1]:` + target.port + `/", "via_proxy": true}`, "status: 403"},
		{`{"url": "http://0.0.0.0:` + target.port + `/", "via_proxy": true}`, "status: 403"},
		{`{"url": "http://localhost:` + target.port + `/", "via_proxy": true}`, "status: 403"},
		{`{"url": "http://rebind.evil.test:` + target.port + `/"}`, "status: 403\nHive refused rebind.evil.test:" + target.port + ": it resolves to 127.0.0.1 (loopback)"},
		{`{"url": "https://rebind.evil.test:` + target.port + `/"}`, "error: "},
		{`{"url": "http://host.own.test:` + target.port + `/"}`, "status: 403\nHive refused host.own.test:" + target.port + ": it resolves to 198.51.100.7 (an address of this machine)"},
		// The proxy's socket, asked as a server (not a proxy request) and
		// as a destination through itself.
		{`{"url": "$HTTP_PROXY/"}`, "status: 403\nHive refused 127.0.0.1:"},
		{`{"url": "$HTTP_PROXY/", "via_proxy": true}`, "status: 403\nHive refused 127.0.0.1:"},
	} {
		if got := fetchText(t, m, tc.args); !strings.HasPrefix(got, tc.want) {
			t.Errorf("fetch %s: %q, want %q", tc.args, got, tc.want)
		}
	}
	// The namespace has no way to the host's listening sockets.
	for _, addr := range []string{"127.0.0.1:" + target.port, "127.0.0.1:" + allowed.port, "[::1]:" + target.port} {
		if got := call(t, m, "kid__dial", `{"addr": "`+addr+`"}`).Text; !strings.HasPrefix(got, "error: ") {
			t.Errorf("dial %s from inside: %s", addr, got)
		}
	}
	if n := target.hits.Load() + allowed.hits.Load(); n != 0 {
		t.Errorf("the host's servers were reached %d times", n)
	}
	if n := strings.Count(logs.String(), "refused a connection of a server"); n < 12 {
		t.Errorf("%d refusals logged, want one a refused fetch:\n%s", n, logs.String())
	}
	m.Close()
	check()
}

// TestNetworkOutlivesNoHive: a server in its own namespace dies with the
// process that started it, even one killed with SIGKILL, which closes
// nothing.
func TestNetworkOutlivesNoHive(t *testing.T) {
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	holder := exec.Command(exe, "-test.run=^$")
	holder.Env = append(os.Environ(), holderEnv+"=1")
	holder.Stderr = os.Stderr
	out, err := holder.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := holder.Start(); err != nil {
		t.Fatal(err)
	}
	defer holder.Process.Kill()
	line := make([]byte, 32)
	n, _ := out.Read(line)
	p, err := strconv.Atoi(strings.TrimSpace(string(line[:n])))
	if err != nil {
		holder.Process.Kill()
		t.Fatalf("the holder said %q", line[:n])
	}
	if err := syscall.Kill(p, 0); err != nil {
		t.Fatalf("the server %d is not running: %v", p, err)
	}
	holder.Process.Signal(syscall.SIGKILL)
	holder.Wait()
	waitGone(t, p)
}

// holderEnv makes the test binary hold a manager of one server with
// network "none", print the server's pid, and wait to be killed.
const holderEnv = "HIVE_MCP_TEST_HOLDER"

func init() {
	if os.Getenv(holderEnv) != "" {
		holdServer()
	}
}

func holdServer() {
	exe, _ := os.Executable()
	cfg := &ServerConfig{Command: exe, Allow: []string{"*"}, Network: Network{Mode: NetworkNone},
		Set: map[string]string{serverEnv: "tools", "GORACE": "atexit_sleep_ms=0"}}
	m, err := New(map[string]*ServerConfig{"kid": cfg}, nil, Options{})
	if err == nil {
		err = m.Start(context.Background())
	}
	if err != nil {
		fmt.Println(err)
		os.Exit(1)
	}
	sess := m.servers["kid"].sess
	fmt.Println(sess.cmd.Process.Pid)
	time.Sleep(time.Minute)
	os.Exit(1)
}

// TestNetworkNamespaceError: a machine that cannot make the namespaces
// gets an error that says so and how to go on; never the host's network.
func TestNetworkNamespaceError(t *testing.T) {
	err := namespaceError(ServerConfig{Name: "kid", Network: Network{Mode: NetworkNone}}, &os.SyscallError{Syscall: "clone", Err: syscall.EPERM})
	for _, w := range []string{`network = "none" needs a user and a network namespace of its own`, "operation not permitted", `give [mcp.kid] network = "host"`} {
		if !strings.Contains(err.Error(), w) {
			t.Errorf("%v\nlacks %q", err, w)
		}
	}
	if !errors.Is(err, syscall.EPERM) {
		t.Errorf("%v is not EPERM", err)
	}
}

// BenchmarkStart is the time to start a stdio server (this test binary)
// and list its tools, on each network.
func BenchmarkStart(b *testing.B) {
	exe, _ := os.Executable()
	for _, n := range []Network{{}, {Mode: NetworkNone}, {Mode: NetworkAllow, Allow: []string{"example.org:443"}}} {
		b.Run(strings.Trim(n.String(), `"[]`), func(b *testing.B) {
			for b.Loop() {
				cfg := &ServerConfig{Command: exe, Allow: []string{"*"}, Network: n,
					Set: map[string]string{serverEnv: "tools", "GORACE": "atexit_sleep_ms=0"}}
				m, err := New(map[string]*ServerConfig{"kid": cfg}, nil, Options{})
				if err != nil {
					b.Fatal(err)
				}
				if err := m.Start(context.Background()); err != nil {
					b.Fatal(err)
				}
				m.Close()
			}
		})
	}
}

// TestNetworkClients: other programs a server may be, or run, in a
// namespace with a list: curl and Python's urllib honour the proxy
// variables and reach the listed destination by its name; Node.js's fetch
// ignores them (before Node 22.21 and 24 with NODE_USE_ENV_PROXY=1) and
// has no network at all: it fails closed.
func TestNetworkClients(t *testing.T) {
	allowed := newDestination(t, false)
	m, _ := netManager(t, Network{Mode: NetworkAllow, Allow: []string{"allowed.test:" + allowed.port, "127.0.0.1:" + allowed.port}})
	u := "http://allowed.test:" + allowed.port + "/"
	hits := int64(0)
	for _, tc := range []struct {
		argv    []string
		reached bool
	}{
		{[]string{"curl", "-sS", u}, true},
		{[]string{"python3", "-c", "import urllib.request; print(urllib.request.urlopen('" + u + "').read().decode())"}, true},
		{[]string{"node", "-e", "fetch('" + u + "').then(r => r.text()).then(console.log, e => { console.log('error: ' + e.cause); process.exit(1) })"}, false},
	} {
		if _, err := exec.LookPath(tc.argv[0]); err != nil {
			t.Logf("%s is not installed", tc.argv[0])
			continue
		}
		got := call(t, m, "kid__run", `{"argv": `+string(must(json.Marshal(tc.argv)))+`}`).Text
		t.Logf("%s: %s", tc.argv[0], got)
		if tc.reached {
			hits++
			if !strings.HasPrefix(got, "hello from allowed.test:") {
				t.Errorf("%s did not reach the listed destination: %s", tc.argv[0], got)
			}
		} else if !strings.HasPrefix(got, "error: ") {
			t.Errorf("%s reached %s: %s", tc.argv[0], u, got)
		}
		if allowed.hits.Load() != hits {
			t.Errorf("after %s, %d hits; want %d", tc.argv[0], allowed.hits.Load(), hits)
		}
	}
}
