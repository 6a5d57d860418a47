package telemetry

import (
	"context"
	"encoding/json"
	"log/slog"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/hive-swarm/hive/internal/llm"
	"github.com/hive-swarm/hive/internal/price"
	"github.com/hive-swarm/hive/internal/secret"
	"github.com/hive-swarm/hive/internal/telemetry/otlptest"
)

func envOf(m map[string]string) func(string) string { return func(k string) string { return m[k] } }

func quiet() *slog.Logger { return slog.New(slog.DiscardHandler) }

// TestOpenFromEnv: tracing is on only when a variable says where to send
// spans, and off whatever else when the SDK is disabled; a protocol or
// exporter Hive does not have is an error that says what it has.
func TestOpenFromEnv(t *testing.T) {
	const ep = "http://127.0.0.1:4318"
	tests := []struct {
		name    string
		env     map[string]string
		tracing bool
		err     string
	}{
		{"nothing set", nil, false, ""},
		{"other OTEL variables", map[string]string{"OTEL_SERVICE_NAME": "x", CaptureEnv: "true"}, false, ""},
		{"endpoint", map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": ep}, true, ""},
		{"traces endpoint", map[string]string{"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": ep + "/v1/traces"}, true, ""},
		{"otlp exporter named", map[string]string{"OTEL_TRACES_EXPORTER": "otlp"}, true, ""},
		{"grpc", map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:4317", "OTEL_EXPORTER_OTLP_PROTOCOL": "grpc"}, true, ""},
		{"sdk disabled", map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": ep, "OTEL_SDK_DISABLED": "true"}, false, ""},
		{"exporter none", map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": ep, "OTEL_TRACES_EXPORTER": "none"}, false, ""},
		{"http/json", map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": ep, "OTEL_EXPORTER_OTLP_PROTOCOL": "http/json"}, false, "http/protobuf"},
		{"zipkin", map[string]string{"OTEL_TRACES_EXPORTER": "zipkin"}, false, "OTLP only"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tel, err := Open(t.Context(), envOf(tt.env), quiet(), Options{})
			if tt.err != "" {
				if err == nil || !strings.Contains(err.Error(), tt.err) {
					t.Fatalf("error %v, want one saying %q", err, tt.err)
				}
			} else if err != nil {
				t.Fatal(err)
			}
			defer tel.Close(context.Background())
			if tel.Tracing() != tt.tracing {
				t.Errorf("tracing %v, want %v", tel.Tracing(), tt.tracing)
			}
			if want := tt.tracing && tt.env[CaptureEnv] == "true"; tel.Capturing() != want {
				t.Errorf("capturing %v, want %v", tel.Capturing(), want)
			}
		})
	}
}

// TestOff: a Telemetry that does not trace, and a nil one, start no span
// and hand back the context they were given.
func TestOff(t *testing.T) {
	ctx := t.Context()
	for _, tel := range []*Telemetry{nil, New(nil, Options{})} {
		c, s := tel.StartRun(ctx, "r1", false, "")
		c, n := tel.StartNode(c, Node{ID: "lead"})
		c, call := tel.StartCall(c, Call{Model: "m"})
		c, tool := tel.StartTool(c, "t", "id", nil, true)
		if c != ctx || s != nil || n != nil || call != nil || tool != nil {
			t.Errorf("%v made spans or contexts", tel)
		}
		call.EndCall(CallResult{})
		tool.EndTool("", false)
		n.End(Outcome{})
		s.End(Outcome{})
		tel.WorkerStarted()
		tel.WorkerDone()
		if n.Context(ctx) != ctx || s.TraceParent() != "" {
			t.Error("a nil span changed a context or has a traceparent")
		}
	}
}

// TestOffAllocs: without tracing and metrics, what the engine calls per
// node, model call and tool call allocates nothing.
func TestOffAllocs(t *testing.T) {
	ctx := t.Context()
	req := &llm.Request{MaxTokens: 10}
	for _, tel := range []*Telemetry{nil, New(nil, Options{})} {
		allocs := testing.AllocsPerRun(100, func() {
			c, n := tel.StartNode(ctx, Node{ID: "1", Role: "worker"})
			c, call := tel.StartCall(c, Call{Model: "m", Request: req})
			call.EndCall(CallResult{Usage: llm.Usage{InputTokens: 1}})
			_, tool := tel.StartTool(c, "submit", "id", nil, true)
			tool.EndTool("submitted", false)
			tel.WorkerStarted()
			tel.WorkerDone()
			n.End(Outcome{Status: "done"})
		})
		if allocs != 0 {
			t.Errorf("%v: %v allocations", tel, allocs)
		}
	}
}

// TestExport sends a run's spans to a real OTLP/HTTP receiver through the
// exporter that the standard variables configure, and reads them back:
// names, parents, the run's and node's ids on every span, the resource.
func TestExport(t *testing.T) {
	rcv := otlptest.NewReceiver()
	defer rcv.Close()
	t.Setenv("OTEL_EXPORTER_OTLP_ENDPOINT", rcv.URL)
	t.Setenv("OTEL_SERVICE_NAME", "hive-test")
	tel, err := Open(t.Context(), envOf(map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": rcv.URL}), quiet(), Options{})
	if err != nil {
		t.Fatal(err)
	}
	ctx, run := tel.StartRun(t.Context(), "r1", true, "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01")
	lctx, lead := tel.StartNode(ctx, Node{ID: "lead", Role: "lead", Name: "lead", Model: "sonnet", ModelID: "claude-sonnet-4-5", Provider: "anthropic", Tier: 1})
	// A worker's goroutine starts from a context of its own.
	wctx, worker := tel.StartNode(lead.Context(context.Background()), Node{ID: "1", Role: "worker", Name: "add", Model: "haiku", ModelID: "claude-haiku-4-5", Provider: "anthropic"})
	_, call := tel.StartCall(wctx, Call{Model: "haiku", ModelID: "claude-haiku-4-5", Provider: "anthropic", Request: &llm.Request{MaxTokens: 100}})
	call.EndCall(CallResult{ResponseModel: "claude-haiku-4-5-20251001", StopReason: llm.StopToolUse, Usage: llm.Usage{InputTokens: 10, CacheReadTokens: 5, OutputTokens: 7}, Cost: 3 * price.MicroDollar, RateLimited: 2, Waited: time.Second})
	_, tool := tel.StartTool(lctx, "delegate", "call_1", []byte(`{}`), true)
	tool.EndTool("ok", false)
	worker.End(Outcome{Status: "failed", Error: "no result after 3 model calls"})
	lead.End(Outcome{Status: "done"})
	run.End(Outcome{Status: "done", Cost: price.Dollar / 2})
	if err := tel.Close(t.Context()); err != nil {
		t.Fatal(err)
	}

	byName := map[string]otlptest.Span{}
	for _, s := range rcv.Spans() {
		byName[s.Name] = s
	}
	r, l, w, c, tl := byName["invoke_workflow hive"], byName["invoke_agent lead"], byName["invoke_agent worker"], byName["chat claude-haiku-4-5"], byName["execute_tool delegate"]
	if len(byName) != 5 || r.SpanID == "" || l.SpanID == "" || w.SpanID == "" || c.SpanID == "" || tl.SpanID == "" {
		t.Fatalf("spans: %v", byName)
	}
	for _, s := range byName {
		if s.TraceID != r.TraceID {
			t.Errorf("%s is in trace %s, not the run's %s", s.Name, s.TraceID, r.TraceID)
		}
		if s.Str("hive.run.id") != "r1" {
			t.Errorf("%s: hive.run.id %q", s.Name, s.Str("hive.run.id"))
		}
		if s.Resource["service.name"] != "hive-test" {
			t.Errorf("%s: resource %v", s.Name, s.Resource)
		}
	}
	for child, parent := range map[*otlptest.Span]otlptest.Span{&l: r, &w: l, &c: w, &tl: l} {
		if child.ParentID != parent.SpanID {
			t.Errorf("%s's parent is %s, want %s", child.Name, child.ParentID, parent.Name)
		}
	}
	if r.ParentID != "" || len(r.Links) != 1 || r.Links[0] != "0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331" || r.Attrs["hive.run.resumed"] != true {
		t.Errorf("run span: parent %q, links %v, attrs %v", r.ParentID, r.Links, r.Attrs)
	}
	if c.Str("hive.node.id") != "1" || w.Str("hive.node.id") != "1" || tl.Str("hive.node.id") != "lead" || r.Attrs["hive.node.id"] != nil {
		t.Errorf("node ids: call %q, worker %q, tool %q, run %v", c.Str("hive.node.id"), w.Str("hive.node.id"), tl.Str("hive.node.id"), r.Attrs["hive.node.id"])
	}
	want := map[string]any{"gen_ai.operation.name": "chat", "gen_ai.provider.name": "anthropic", "gen_ai.request.model": "claude-haiku-4-5",
		"gen_ai.response.model": "claude-haiku-4-5-20251001", "gen_ai.usage.input_tokens": int64(15), "gen_ai.usage.output_tokens": int64(7),
		"gen_ai.usage.cache_read.input_tokens": int64(5), "gen_ai.request.max_tokens": int64(100), "hive.cost.usd": 3e-6,
		"hive.rate_limited": int64(2), "hive.wait_ms": int64(1000), "hive.model": "haiku", "hive.tier": int64(0)}
	for k, v := range want {
		if c.Attrs[k] != v {
			t.Errorf("call span %s = %v (%T), want %v", k, c.Attrs[k], c.Attrs[k], v)
		}
	}
	if w.Status != 2 || w.Str("error.type") != "failed" || !strings.Contains(w.StatusMessage, "no result") {
		t.Errorf("failed worker: status %v %q, error.type %q", w.Status, w.StatusMessage, w.Str("error.type"))
	}
	if tl.Str("gen_ai.tool.name") != "delegate" || tl.Str("gen_ai.tool.call.id") != "call_1" || tl.Attrs["gen_ai.tool.call.arguments"] != nil {
		t.Errorf("tool span: %v", tl.Attrs)
	}
	if r.Attrs["hive.cost.usd"] != 0.5 || r.Str("gen_ai.operation.name") != "invoke_workflow" {
		t.Errorf("run span: %v", r.Attrs)
	}
}

// TestContent: captured content is redacted and bounded, and stays JSON,
// whatever a model wrote; without capture, none of it goes on a span.
func TestContent(t *testing.T) {
	const key = "sk-test-0123456789abcdef"
	red := secret.New(map[string]string{"OPENAI_API_KEY": key})
	tel := New(nil, Options{Redact: red, CaptureContent: true})
	big := strings.Repeat("é", MaxContent) // 2 bytes a rune: cut mid-rune if anywhere
	msgs := []llm.Message{llm.UserText("the oldest turn")}
	for range 20 {
		msgs = append(msgs, llm.Message{Role: llm.RoleAssistant, Parts: []llm.Part{llm.ToolCall{ID: "c", Name: strings.Repeat("n", 10000), Input: json.RawMessage(`{"code": "` + big + `"}`)}}})
		msgs = append(msgs, llm.Message{Role: llm.RoleUser, Parts: []llm.Part{llm.ToolResult{CallID: "c", Content: big}}})
	}
	msgs = append(msgs, llm.UserText("the key is "+key+", and \"quoted\" "+key))
	in := tel.inputJSON(msgs)
	if len(in) > MaxContent || !json.Valid([]byte(in)) {
		t.Fatalf("input messages: %d bytes, valid JSON %v", len(in), json.Valid([]byte(in)))
	}
	if strings.Contains(in, key) || !strings.Contains(in, "[redacted OPENAI_API_KEY]") || strings.Contains(in, "the oldest turn") {
		t.Errorf("input messages: %s", cut(in, 500))
	}
	var decoded []message
	if err := json.Unmarshal([]byte(in), &decoded); err != nil || len(decoded) == 0 || !strings.Contains(decoded[len(decoded)-1].Parts[0].Content, "the key is") {
		t.Errorf("the newest message is not last: %v", err)
	}
	out := tel.outputJSON([]llm.Part{llm.Text{Text: big}, llm.Text{Text: big}, llm.Text{Text: big}, llm.Text{Text: big}, llm.Text{Text: key}, llm.ToolCall{ID: "x", Name: "submit", Input: json.RawMessage(`{"report": "` + key + `"}`)}}, llm.StopToolUse)
	if len(out) > MaxContent || !json.Valid([]byte(out)) || strings.Contains(out, key) || !strings.Contains(out, `"finish_reason":"tool_call"`) {
		t.Errorf("output messages: %d bytes, valid %v: %s", len(out), json.Valid([]byte(out)), cut(out, 300))
	}
	if c := tel.content(strings.Repeat("x", 10*MaxContent) + key); len(c) > MaxContent || strings.Contains(c, key) {
		t.Errorf("content: %d bytes", len(c))
	}
}

// TestCut: names a model chose are cut to valid UTF-8 of bounded size.
func TestCut(t *testing.T) {
	for _, s := range []string{"", "submit", strings.Repeat("x", 1<<20), strings.Repeat("é", 200), "bad \xff\xfe bytes" + strings.Repeat("\xff", 500)} {
		c := cut(s, MaxName)
		if len(c) > MaxName || !strings.HasPrefix(s, strings.TrimSuffix(c, "…")) && !strings.ContainsRune(c, '\uFFFD') {
			t.Errorf("cut(%.20q) = %.40q (%d bytes)", s, c, len(c))
		}
		if !json.Valid([]byte(`"` + strings.ReplaceAll(c, `"`, "") + `"`)) {
			t.Errorf("cut(%.20q) is not valid UTF-8", s)
		}
	}
	if cut("submit", MaxName) != "submit" {
		t.Error("a short name was changed")
	}
}

// TestExportFailureQuiet: a collector that is down loses the spans, is
// logged once, and costs the run nothing else.
func TestExportFailureQuiet(t *testing.T) {
	down := httptest.NewServer(nil)
	url := down.URL
	down.Close()
	t.Setenv("OTEL_EXPORTER_OTLP_ENDPOINT", url)
	t.Setenv("OTEL_EXPORTER_OTLP_TIMEOUT", "500")
	var logged strings.Builder
	log := slog.New(slog.NewTextHandler(&logged, nil))
	tel, err := Open(t.Context(), envOf(map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": url}), log, Options{})
	if err != nil {
		t.Fatal(err)
	}
	for range 3 {
		_, s := tel.StartRun(t.Context(), "r", false, "")
		s.End(Outcome{Status: "done"})
	}
	start := time.Now()
	tel.Close(t.Context())
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("close took %v", d)
	}
	if n := strings.Count(logged.String(), "not being exported"); n != 1 {
		t.Errorf("logged %d times: %s", n, logged.String())
	}
}
