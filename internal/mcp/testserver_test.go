package mcp

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	sdk "github.com/modelcontextprotocol/go-sdk/mcp"
)

// serverEnv makes the test binary an MCP server over stdio: its value is
// the kind of server (see newTestServer).
const serverEnv = "HIVE_MCP_TEST_SERVER"

func TestMain(m *testing.M) {
	Init() // servers with network = "none" or a list start through this binary
	if kind := os.Getenv(serverEnv); kind != "" {
		srv := newTestServer(kind, true, nil)
		if err := srv.Run(context.Background(), &sdk.StdioTransport{}); err != nil {
			fmt.Fprintln(os.Stderr, "test server:", err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// hanging counts the calls of hang in this process that have not been
// cancelled yet.
var hanging atomic.Int64

// cancelled waits until the server has seen the calls of hang cancelled.
func cancelled(t *testing.T) {
	t.Helper()
	deadline := time.Now().Add(3 * time.Second)
	for hanging.Load() > 0 {
		if time.Now().After(deadline) {
			t.Fatal("the server never learnt that the call to hang was cancelled")
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// newTestServer returns a Go SDK server of kind "tools" or "names". In a
// child process (child), its hostile tools are as hostile as they get:
// hang ignores cancellation, crash exits. calls, if not nil, counts the
// tools/call requests it receives.
func newTestServer(kind string, child bool, calls *atomic.Int64) *sdk.Server {
	srv := sdk.NewServer(&sdk.Implementation{Name: "hive-test-" + kind, Version: "1"}, nil)
	if calls != nil {
		srv.AddReceivingMiddleware(func(next sdk.MethodHandler) sdk.MethodHandler {
			return func(ctx context.Context, method string, req sdk.Request) (sdk.Result, error) {
				if method == "tools/call" {
					calls.Add(1)
				}
				return next(ctx, method, req)
			}
		})
	}
	switch kind {
	case "tools":
		addTools(srv, child)
	case "names":
		addNames(srv)
	default:
		panic("unknown test server " + kind)
	}
	return srv
}

func text(s string) *sdk.CallToolResult {
	return &sdk.CallToolResult{Content: []sdk.Content{&sdk.TextContent{Text: s}}}
}

type (
	echoIn struct {
		Text string `json:"text" jsonschema:"what to echo"`
	}
	addIn struct {
		A float64 `json:"a"`
		B float64 `json:"b"`
	}
	addOut struct {
		Sum float64 `json:"sum"`
	}
	envIn struct {
		Name string `json:"name"`
	}
	bigIn struct {
		Bytes int `json:"bytes"`
	}
	fetchIn struct {
		URL string `json:"url" jsonschema:"the URL; $VARIABLES of the server's environment are expanded"`
		// ViaProxy sends every URL to the proxy of the environment, as
		// curl does, where Go's ProxyFromEnvironment would go straight to
		// localhost and 127.0.0.1.
		ViaProxy bool `json:"via_proxy,omitempty"`
		Insecure bool `json:"insecure,omitempty"`
	}
	dialIn struct {
		Addr string `json:"addr"`
	}
	runIn struct {
		Argv []string `json:"argv"`
	}
	noIn struct{}
)

func addTools(srv *sdk.Server, child bool) {
	sdk.AddTool(srv, &sdk.Tool{Name: "echo", Description: "Echoes its text."},
		func(_ context.Context, _ *sdk.CallToolRequest, in echoIn) (*sdk.CallToolResult, any, error) {
			return text("echo: " + in.Text), nil, nil
		})
	sdk.AddTool(srv, &sdk.Tool{Name: "add", Description: "Adds two numbers."},
		func(_ context.Context, _ *sdk.CallToolRequest, in addIn) (*sdk.CallToolResult, addOut, error) {
			return nil, addOut{Sum: in.A + in.B}, nil
		})
	sdk.AddTool(srv, &sdk.Tool{Name: "env", Description: "Says what a variable of its environment holds."},
		func(_ context.Context, _ *sdk.CallToolRequest, in envIn) (*sdk.CallToolResult, any, error) {
			v, ok := os.LookupEnv(in.Name)
			if !ok {
				return text(in.Name + " is not set"), nil, nil
			}
			return text(in.Name + "=" + v), nil, nil
		})
	sdk.AddTool(srv, &sdk.Tool{Name: "big", Description: "Answers that many bytes."},
		func(_ context.Context, _ *sdk.CallToolRequest, in bigIn) (*sdk.CallToolResult, any, error) {
			return text(strings.Repeat("x", in.Bytes)), nil, nil
		})
	sdk.AddTool(srv, &sdk.Tool{Name: "mixed", Description: "Answers every kind of content."},
		func(_ context.Context, _ *sdk.CallToolRequest, _ noIn) (*sdk.CallToolResult, any, error) {
			size := int64(4096)
			return &sdk.CallToolResult{Content: []sdk.Content{
				&sdk.TextContent{Text: "here it is"},
				&sdk.ImageContent{MIMEType: "image/png", Data: make([]byte, 100)},
				&sdk.AudioContent{MIMEType: "audio/wav", Data: make([]byte, 30)},
				&sdk.EmbeddedResource{Resource: &sdk.ResourceContents{URI: "file:///notes.txt", MIMEType: "text/plain", Text: "the notes"}},
				&sdk.EmbeddedResource{Resource: &sdk.ResourceContents{URI: "file:///blob.bin", MIMEType: "application/octet-stream", Blob: make([]byte, 7)}},
				&sdk.ResourceLink{URI: "file:///big.csv", Name: "big.csv", MIMEType: "text/csv", Size: &size},
			}}, nil, nil
		})
	sdk.AddTool(srv, &sdk.Tool{Name: "fail", Description: "Fails, as a tool."},
		func(_ context.Context, _ *sdk.CallToolRequest, _ noIn) (*sdk.CallToolResult, any, error) {
			r := text("the widget is broken")
			r.IsError = true
			return r, nil, nil
		})
	sdk.AddTool(srv, &sdk.Tool{Name: "hang", Description: "Never answers."},
		func(ctx context.Context, _ *sdk.CallToolRequest, _ noIn) (*sdk.CallToolResult, any, error) {
			if child {
				select {} // deaf to cancellation too
			}
			hanging.Add(1)
			defer hanging.Add(-1)
			<-ctx.Done()
			return nil, nil, ctx.Err()
		})
	if !child {
		return
	}
	sdk.AddTool(srv, &sdk.Tool{Name: "crash", Description: "Exits."},
		func(_ context.Context, _ *sdk.CallToolRequest, _ noIn) (*sdk.CallToolResult, any, error) {
			fmt.Fprintln(os.Stderr, "crash: the disk is on fire")
			os.Exit(3)
			return nil, nil, nil
		})
	sdk.AddTool(srv, &sdk.Tool{Name: "fetch", Description: "GETs a URL with Go's net/http, through the proxy of its environment."},
		func(ctx context.Context, _ *sdk.CallToolRequest, in fetchIn) (*sdk.CallToolResult, any, error) {
			return fetch(ctx, in), nil, nil
		})
	sdk.AddTool(srv, &sdk.Tool{Name: "dial", Description: "Opens a TCP connection to host:port."},
		func(ctx context.Context, _ *sdk.CallToolRequest, in dialIn) (*sdk.CallToolResult, any, error) {
			c, err := (&net.Dialer{Timeout: 3 * time.Second}).DialContext(ctx, "tcp", os.ExpandEnv(in.Addr))
			if err != nil {
				return text("error: " + err.Error()), nil, nil
			}
			c.Close()
			return text("connected"), nil, nil
		})
	sdk.AddTool(srv, &sdk.Tool{Name: "run", Description: "Runs a program with the server's environment; answers its output."},
		func(ctx context.Context, _ *sdk.CallToolRequest, in runIn) (*sdk.CallToolResult, any, error) {
			ctx, cancel := context.WithTimeout(ctx, 15*time.Second)
			defer cancel()
			out, err := exec.CommandContext(ctx, in.Argv[0], in.Argv[1:]...).CombinedOutput()
			if err != nil {
				return text(fmt.Sprintf("error: %v: %s", err, out)), nil, nil
			}
			return text(string(out)), nil, nil
		})
	sdk.AddTool(srv, &sdk.Tool{Name: "spawn", Description: "Starts a process that outlives it, unless its group is killed."},
		func(_ context.Context, _ *sdk.CallToolRequest, _ noIn) (*sdk.CallToolResult, any, error) {
			cmd := exec.Command("sleep", "120")
			if err := cmd.Start(); err != nil {
				return nil, nil, err
			}
			return text(strconv.Itoa(cmd.Process.Pid)), nil, nil
		})
}

// fetch answers "status: N" and the start of the body, or "error: ...".
func fetch(ctx context.Context, in fetchIn) *sdk.CallToolResult {
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.TLSClientConfig = &tls.Config{InsecureSkipVerify: in.Insecure}
	if in.ViaProxy {
		tr.Proxy = func(req *http.Request) (*url.URL, error) {
			p := os.Getenv("HTTPS_PROXY")
			if req.URL.Scheme == "http" {
				p = os.Getenv("HTTP_PROXY")
			}
			if p == "" {
				return nil, nil
			}
			return url.Parse(p)
		}
	}
	defer tr.CloseIdleConnections()
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, os.ExpandEnv(in.URL), nil)
	if err == nil {
		var resp *http.Response
		if resp, err = tr.RoundTrip(req); err == nil {
			defer resp.Body.Close()
			body, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
			return text(fmt.Sprintf("status: %d\n%s", resp.StatusCode, body))
		}
	}
	return text("error: " + err.Error())
}

// collider is named as toolName names "x.y" on a server called names, so
// that the two collide.
var collider = strings.TrimPrefix(toolName("names", "x.y"), "names__")

// addNames adds tools whose names model APIs would refuse, one that
// collides with another once renamed, and one with an unusable schema.
// Each answers its own name.
func addNames(srv *sdk.Server) {
	object := json.RawMessage(`{"type":"object"}`)
	for _, name := range []string{"plain", "a.b", "a/b", "a_b", "spaced name!", "ünï", "x.y", collider, strings.Repeat("long", 20)} {
		srv.AddTool(&sdk.Tool{Name: name, Description: "I am " + name, InputSchema: object},
			func(context.Context, *sdk.CallToolRequest) (*sdk.CallToolResult, error) {
				return text(name), nil
			})
	}
	// The SDK refuses to serve a tool whose arguments are not an object,
	// so it is slipped into the list on the way out.
	srv.AddReceivingMiddleware(func(next sdk.MethodHandler) sdk.MethodHandler {
		return func(ctx context.Context, method string, req sdk.Request) (sdk.Result, error) {
			res, err := next(ctx, method, req)
			if lr, ok := res.(*sdk.ListToolsResult); ok && err == nil {
				lr.Tools = append(lr.Tools, &sdk.Tool{Name: "array-schema", InputSchema: json.RawMessage(`{"type":"array"}`)})
			}
			return res, err
		}
	})
}
