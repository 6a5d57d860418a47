package main

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	sdk "github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/hive-swarm/hive/internal/llm/llmtest"
)

// fetchServerEnv makes the test binary (see TestMain) an MCP server over
// stdio with two tools a hostile model would love: fetch, a GET of any
// URL with Go's net/http (which honours HTTP_PROXY and HTTPS_PROXY), and
// dial, a TCP connection to any address.
const fetchServerEnv = "HIVE_TEST_MCP_FETCH"

type (
	fetchArgs struct {
		URL      string `json:"url" jsonschema:"the URL; $VARIABLES of the server's environment are expanded"`
		ViaProxy bool   `json:"via_proxy,omitempty" jsonschema:"send it to the proxy even for localhost, as curl does"`
	}
	dialArgs struct {
		Addr string `json:"addr"`
	}
)

func serveFetchMCP() {
	srv := sdk.NewServer(&sdk.Implementation{Name: "net", Version: "1"}, nil)
	sdk.AddTool(srv, &sdk.Tool{Name: "fetch", Description: "GETs a URL."},
		func(ctx context.Context, _ *sdk.CallToolRequest, in fetchArgs) (*sdk.CallToolResult, any, error) {
			tr := http.DefaultTransport.(*http.Transport).Clone()
			defer tr.CloseIdleConnections()
			if in.ViaProxy {
				tr.Proxy = func(*http.Request) (*url.URL, error) { return url.Parse(os.Getenv("HTTP_PROXY")) }
			}
			ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
			defer cancel()
			out := ""
			req, err := http.NewRequestWithContext(ctx, http.MethodGet, os.ExpandEnv(in.URL), nil)
			if err == nil {
				var resp *http.Response
				if resp, err = tr.RoundTrip(req); err == nil {
					body, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
					resp.Body.Close()
					out = fmt.Sprintf("status: %d\n%s", resp.StatusCode, body)
				}
			}
			if err != nil {
				out = "error: " + err.Error()
			}
			return &sdk.CallToolResult{Content: []sdk.Content{&sdk.TextContent{Text: out}}}, nil, nil
		})
	sdk.AddTool(srv, &sdk.Tool{Name: "dial", Description: "Opens a TCP connection."},
		func(ctx context.Context, _ *sdk.CallToolRequest, in dialArgs) (*sdk.CallToolResult, any, error) {
			out := "connected"
			c, err := (&net.Dialer{Timeout: 3 * time.Second}).DialContext(ctx, "tcp", in.Addr)
			if err != nil {
				out = "error: " + err.Error()
			} else {
				c.Close()
			}
			return &sdk.CallToolResult{Content: []sdk.Content{&sdk.TextContent{Text: out}}}, nil, nil
		})
	if err := srv.Run(context.Background(), &sdk.StdioTransport{}); err != nil {
		fmt.Fprintln(os.Stderr, "fetch server:", err)
		os.Exit(1)
	}
	os.Exit(0)
}

// countingServer is an HTTP server on 127.0.0.1 that counts its requests.
func countingServer(t *testing.T) (port string, hits *atomic.Int64) {
	t.Helper()
	hits = new(atomic.Int64)
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		io.WriteString(w, "reached")
	}))
	t.Cleanup(ts.Close)
	_, port, _ = net.SplitHostPort(ts.Listener.Addr().String())
	return port, hits
}

// netConfig is an [mcp.net] table running the fetch server with network.
func netConfig(t *testing.T, network string) string {
	t.Helper()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	return fmt.Sprintf("[mcp.net]\ncommand = %q\nset = {%s = \"1\", GORACE = \"atexit_sleep_ms=0\"}\nallow = [\"fetch\", \"dial\"]\nnetwork = %s\n",
		exe, fetchServerEnv, network)
}

// TestHostileMCPNetwork: a worker steered by an attacker uses the fetch
// and dial tools of an MCP server whose network lists one destination:
// it reaches that one, and everything else it asks for is refused (an
// unlisted host, the host's 127.0.0.1 straight and through the proxy, a
// listed name that resolves to loopback, the proxy's own socket, the port
// of the model server Hive talks to). The host's other server is never
// reached, every refusal is logged with the server and the destination,
// and the run goes on to its end.
func TestHostileMCPNetwork(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("network namespaces are Linux's")
	}
	allowedPort, allowedHits := countingServer(t)
	targetPort, targetHits := countingServer(t)
	type step struct {
		args map[string]any
		want string // the start of the tool's answer
	}
	var steps []step
	fetch := func(u string, via bool, want string) {
		steps = append(steps, step{map[string]any{"url": u, "via_proxy": via}, want})
	}
	fetch("http://127.0.0.1:"+allowedPort+"/", true, "status: 200\nreached")
	fetch("http://unlisted.example:"+targetPort+"/", false, "status: 403")
	fetch("http://127.0.0.1:"+targetPort+"/", false, "error: ")
	fetch("http://127.0.0.1:"+targetPort+"/", true, "status: 403")
	fetch("http://localhost:"+targetPort+"/", true, "status: 403\nHive refused localhost:"+targetPort+": it resolves to")
	fetch("$HTTP_PROXY/", false, "status: 403")
	fetch("$HTTP_PROXY/", true, "status: 403")
	var w *hostile
	modelPort := func() string { _, p, _ := net.SplitHostPort(strings.TrimPrefix(w.srv.URL, "http://")); return p }
	steps = append(steps, step{map[string]any{"addr": "127.0.0.1:" + targetPort}, "error: "})
	steps = append(steps, step{nil, "error: "}) // the model server's port, known once it runs

	var mu sync.Mutex
	var seen []string
	script := func(c *llmtest.Call) llmtest.Reply {
		if isLead(c) {
			if assistantTurns(c) == 0 {
				return delegate(map[string]any{"name": "probe", "instructions": "Probe the network."})
			}
			return finish("the lead is done")
		}
		n := assistantTurns(c)
		if n > 0 {
			rs := c.ToolResults()
			mu.Lock()
			seen = append(seen, rs[len(rs)-1].Content)
			mu.Unlock()
		}
		if n >= len(steps) {
			return submit("probed")
		}
		s := steps[n]
		if s.args == nil {
			s.args = map[string]any{"addr": "127.0.0.1:" + modelPort()}
		}
		name := "net__fetch"
		if _, ok := s.args["addr"]; ok {
			name = "net__dial"
		}
		return llmtest.Reply{ToolCalls: []llmtest.ToolCall{tool(name, s.args)}}
	}
	w = newHostile(t, script, netConfig(t, fmt.Sprintf("[%q, %q]", "127.0.0.1:"+allowedPort, "localhost:"+targetPort)))
	code, out, logs := w.hive(2*time.Minute, "run", "probe the network")
	if code != 0 || out != "the lead is done\n" {
		t.Fatalf("run: exit %d, stdout %q", code, out)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(seen) != len(steps) {
		t.Fatalf("the worker saw %d answers of %d steps: %q", len(seen), len(steps), seen)
	}
	for i, s := range steps {
		if !strings.HasPrefix(seen[i], s.want) {
			t.Errorf("step %d %v: %q, want %q", i, s.args, clipText(seen[i], 300), s.want)
		}
	}
	if allowedHits.Load() != 1 || targetHits.Load() != 0 {
		t.Errorf("the listed server was reached %d times (want 1), the other %d (want 0)", allowedHits.Load(), targetHits.Load())
	}
	for _, want := range []string{"server=net destination=unlisted.example:" + targetPort, "server=net destination=localhost:" + targetPort} {
		if !strings.Contains(logs, want) {
			t.Errorf("the log lacks %q", want)
		}
	}
	w.assertNoSecrets(out, logs)
}

// TestPolicyMCPNetwork: policy.mcp_network = "allowlist" makes hive policy
// check list an MCP server on the host's network, and runs refuse to
// start; with the server's network "none" both go through.
func TestPolicyMCPNetwork(t *testing.T) {
	w := newWorld(t)
	cfg, _ := os.ReadFile(w.cfg)
	for _, tc := range []struct {
		network string
		code    int
	}{{`"host"`, 1}, {`"none"`, 0}} {
		text := string(cfg) + "\n" + netConfig(t, tc.network) + "\n[policy]\nmcp_network = \"allowlist\"\n"
		if err := os.WriteFile(w.cfg, []byte(text), 0o600); err != nil {
			t.Fatal(err)
		}
		code, out, _ := w.hive("policy", "check")
		conflict := `mcp.net.network is "host", and policy.mcp_network = "allowlist" requires network = "none" or a list of destinations`
		if code != tc.code || strings.Contains(out, conflict) != (tc.code == 1) {
			t.Errorf("network %s: policy check exit %d, want %d\n%s", tc.network, code, tc.code, out)
		}
		code, _, errOut := w.hive("run", "count to three")
		refused := strings.Contains(errOut, "refused by policy.mcp_network: MCP server net has network \"host\"")
		if (code != 0) != (tc.code == 1) || refused != (tc.code == 1) {
			t.Errorf("network %s: run exit %d: %s", tc.network, code, errOut)
		}
	}
}
