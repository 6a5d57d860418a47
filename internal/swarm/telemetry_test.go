package swarm

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"os"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hive-swarm/hive/internal/llm"
	"github.com/hive-swarm/hive/internal/llm/llmtest"
	"github.com/hive-swarm/hive/internal/secret"
	"github.com/hive-swarm/hive/internal/telemetry"
	"github.com/hive-swarm/hive/internal/telemetry/otlptest"
	"github.com/hive-swarm/hive/internal/verify"
)

// traced is a harness whose engine exports its traces, through the
// exporter the standard variables configure, to a real OTLP receiver.
type traced struct {
	*harness
	rcv *otlptest.Receiver
	tel *telemetry.Telemetry
}

func newTraced(t *testing.T, h llmtest.Handler, opts Options, capture bool) *traced {
	t.Helper()
	rcv := otlptest.NewReceiver()
	t.Cleanup(rcv.Close)
	t.Setenv("OTEL_EXPORTER_OTLP_ENDPOINT", rcv.URL)
	t.Setenv(telemetry.CaptureEnv, fmt.Sprint(capture))
	tel, err := telemetry.Open(t.Context(), os.Getenv, testLogger(t), telemetry.Options{Redact: opts.Redact})
	if err != nil {
		t.Fatal(err)
	}
	if !tel.Tracing() || tel.Capturing() != capture {
		t.Fatalf("tracing %v, capturing %v", tel.Tracing(), tel.Capturing())
	}
	t.Cleanup(func() { tel.Close(context.Background()) })
	opts.Telemetry = tel
	return &traced{harness: newHarness(t, h, opts), rcv: rcv, tel: tel}
}

// spans stops the engine, flushes the exporter and returns what the
// receiver got.
func (tr *traced) spans() []otlptest.Span {
	tr.t.Helper()
	tr.close()
	if err := tr.tel.Close(context.Background()); err != nil {
		tr.t.Fatal(err)
	}
	return tr.rcv.Spans()
}

type fixedCode struct{ out string }

func (f fixedCode) RunCode(context.Context, string, string, string, Tree) (string, bool, error) {
	return f.out, false, nil
}

// usages answers each call with a usage of its own and remembers it.
type usages struct {
	mu  sync.Mutex
	all []llm.Usage
}

func (u *usages) next(c *llmtest.Call) *llm.Usage {
	u.mu.Lock()
	defer u.mu.Unlock()
	us := llm.Usage{InputTokens: int64(10*c.N + 3), OutputTokens: int64(c.N)}
	u.all = append(u.all, us)
	return &us
}

// TestTraceOfRun runs a swarm (a lead, two workers, one of which runs
// code and is verified by a vote of another model) with OTLP export on,
// and reads the trace a real receiver got: one trace, the run at its
// root, the lead under it, the workers under the lead, each model call
// under the node that made it with the tokens the model server reported
// and their price, the tool calls, the code run and the verification
// under theirs, and no message content (the capture variable is off).
func TestTraceOfRun(t *testing.T) {
	const task = "Add and multiply, please."
	var u usages
	h := func(c *llmtest.Call) llmtest.Reply {
		var rep llmtest.Reply
		switch {
		case isLead(c) && len(c.ToolResults()) == 0:
			rep = llmtest.Reply{ToolCalls: []llmtest.ToolCall{toolCall("delegate", delegateArgs{Tasks: []TaskSpec{
				{Name: "add", Instructions: "What is 40 + 2?", Verify: &verify.Spec{Kind: verify.KindVote, Models: []string{"strong"}, N: 1}},
				{Name: "mul", Instructions: "What is 6 * 7?"},
			}})}}
		case isLead(c):
			rep = finish("42 and 42")
		case len(c.Tools) == 0: // the vote's sample
			rep = llmtest.Reply{Text: "42"}
		case taskName(c) == "add" && len(c.ToolResults()) == 0:
			rep = llmtest.Reply{ToolCalls: []llmtest.ToolCall{toolCall("run_code", runCodeArgs{Language: "python", Code: "print(40 + 2)"})}}
		default:
			rep = submit("The answer is 42.")
		}
		rep.Usage = u.next(c)
		return rep
	}
	tr := newTraced(t, h, Options{Verifier: verify.New(nil, testLogger(t)), CodeRunner: fixedCode{"42\n"}}, false)
	res := tr.run(Spec{Task: task, BudgetUSD: 1e9, Repairs: -1})
	if res.Status != StatusDone {
		t.Fatalf("run %s: %s", res.Status, res.Error)
	}
	nodes := map[string]Node{}
	for _, n := range tr.nodes(res.RunID) {
		nodes[n.ID] = n
	}
	calls := len(tr.srv.Calls())
	spans := tr.spans()

	byID := map[string]otlptest.Span{}
	var root otlptest.Span
	nodeSpan := map[string]otlptest.Span{} // by hive node id
	var chats []otlptest.Span
	names := map[string]int{}
	for _, s := range spans {
		byID[s.SpanID] = s
		names[s.Name]++
		switch {
		case s.ParentID == "":
			if root.SpanID != "" {
				t.Errorf("two roots: %s and %s", root.Name, s.Name)
			}
			root = s
		case strings.HasPrefix(s.Name, "invoke_agent "):
			nodeSpan[s.Str("hive.node.id")] = s
		case strings.HasPrefix(s.Name, "chat "):
			chats = append(chats, s)
		}
	}
	t.Logf("spans: %v", names)
	parent := func(s otlptest.Span) otlptest.Span { return byID[s.ParentID] }

	if root.Name != "invoke_workflow hive" || root.Str("hive.run.id") != res.RunID || root.Str("hive.status") != "done" {
		t.Fatalf("root span %s: %v", root.Name, root.Attrs)
	}
	for _, s := range spans {
		if s.TraceID != root.TraceID {
			t.Errorf("%s is in trace %s, the run's is %s", s.Name, s.TraceID, root.TraceID)
		}
		if s.Str("hive.run.id") != res.RunID {
			t.Errorf("%s: hive.run.id %q", s.Name, s.Str("hive.run.id"))
		}
		if s.ParentID != "" && byID[s.ParentID].SpanID == "" {
			t.Errorf("%s's parent %s was not received", s.Name, s.ParentID)
		}
	}

	// A span per node, each under its parent's; the verifier under the
	// verification of the node it verifies.
	if len(nodeSpan) != len(nodes) {
		t.Errorf("%d node spans for %d nodes", len(nodeSpan), len(nodes))
	}
	lead := nodeSpan["lead"]
	if lead.Name != "invoke_agent lead" || parent(lead).SpanID != root.SpanID {
		t.Errorf("lead span %q under %q", lead.Name, parent(lead).Name)
	}
	var verifier Node
	for id, n := range nodes {
		s := nodeSpan[id]
		want := map[string]any{"gen_ai.operation.name": "invoke_agent", "gen_ai.agent.id": id, "gen_ai.agent.name": n.Name,
			"gen_ai.provider.name": "openai", "gen_ai.request.model": n.Model, "hive.status": string(n.Status),
			"hive.cost.usd": n.Cost.Dollars(), "gen_ai.usage.input_tokens": n.Usage.InputTokens, "gen_ai.usage.output_tokens": n.Usage.OutputTokens,
			"hive.tier": int64(n.Tier), "hive.calls": int64(n.Calls)}
		for k, v := range want {
			if s.Attrs[k] != v {
				t.Errorf("node %s: %s = %v, want %v", id, k, s.Attrs[k], v)
			}
		}
		switch n.Role {
		case RoleWorker:
			if s.Name != "invoke_agent worker" || parent(s).SpanID != lead.SpanID {
				t.Errorf("worker %s: span %q under %q", id, s.Name, parent(s).Name)
			}
		case RoleVerifier:
			verifier = n
			v := parent(s)
			if s.Name != "invoke_agent verifier" || v.Name != "verify vote" || parent(v).SpanID != nodeSpan[n.Parent].SpanID || v.Str("hive.verify.outcome") != verify.Pass {
				t.Errorf("verifier %s: span %q under %q (%v) under %q", id, s.Name, v.Name, v.Attrs, parent(v).Name)
			}
		}
	}
	if verifier.ID == "" {
		t.Fatal("no verifier node")
	}

	// Every model call, under the node that made it, with the tokens the
	// server reported and their price.
	if len(chats) != calls {
		t.Errorf("%d chat spans for %d calls", len(chats), calls)
	}
	prices := map[string][2]float64{"lead": {1, 2}, "cheap": {0.1, 0.2}, "strong": {1, 2}}
	var got []string
	perNode := map[string]llm.Usage{}
	for _, c := range chats {
		p := parent(c)
		id := c.Str("hive.node.id")
		if !strings.HasPrefix(p.Name, "invoke_agent ") || p.Str("hive.node.id") != id {
			t.Errorf("chat span of node %s under %q of node %s", id, p.Name, p.Str("hive.node.id"))
		}
		model := c.Str("gen_ai.request.model")
		in, _ := c.Int("gen_ai.usage.input_tokens")
		out, _ := c.Int("gen_ai.usage.output_tokens")
		got = append(got, fmt.Sprint(in, "/", out))
		perNode[id] = perNode[id].Add(llm.Usage{InputTokens: in, OutputTokens: out})
		want := (float64(in)*prices[model][0] + float64(out)*prices[model][1]) / 1e6
		if cost, _ := c.Attrs["hive.cost.usd"].(float64); math.Abs(cost-want) > 1e-12 {
			t.Errorf("chat %s: cost %v, want %v", model, cost, want)
		}
		if c.Str("gen_ai.operation.name") != "chat" || c.Str("gen_ai.provider.name") != "openai" || c.Str("gen_ai.response.model") != model || c.Name != "chat "+model || c.Str("hive.model") != model {
			t.Errorf("chat span %s: %v", c.Name, c.Attrs)
		}
	}
	var want []string
	for _, us := range u.all {
		want = append(want, fmt.Sprint(us.InputTokens, "/", us.OutputTokens))
	}
	sort.Strings(got)
	sort.Strings(want)
	if strings.Join(got, " ") != strings.Join(want, " ") {
		t.Errorf("tokens of the chat spans %v, the server reported %v", got, want)
	}
	for id, n := range nodes {
		if perNode[id] != n.Usage {
			t.Errorf("node %s: its chat spans have %+v, the journal %+v", id, perNode[id], n.Usage)
		}
	}
	if v := nodeSpan[verifier.ID]; perNode[verifier.ID].InputTokens == 0 || v.Str("gen_ai.request.model") != "strong" {
		t.Errorf("the verifier's calls: %+v on %v", perNode[verifier.ID], v.Attrs)
	}

	// Tool calls under their nodes; the code run under its tool call.
	for _, s := range spans {
		switch {
		case strings.HasPrefix(s.Name, "execute_tool "):
			tool := strings.TrimPrefix(s.Name, "execute_tool ")
			p := parent(s)
			if s.Str("gen_ai.tool.name") != tool || s.Str("gen_ai.operation.name") != "execute_tool" || s.Str("gen_ai.tool.call.id") == "" || p.Str("hive.node.id") != s.Str("hive.node.id") || !strings.HasPrefix(p.Name, "invoke_agent ") {
				t.Errorf("%s under %q: %v", s.Name, p.Name, s.Attrs)
			}
		case s.Name == "run_code python":
			if p := parent(s); p.Name != "execute_tool run_code" || s.Attrs["hive.code.failed"] != false || s.Str("hive.node.id") != "1" {
				t.Errorf("code run under %q: %v", p.Name, s.Attrs)
			}
		}
	}
	for name, n := range map[string]int{"execute_tool delegate": 1, "execute_tool finish": 1, "execute_tool submit": 2, "execute_tool run_code": 1, "run_code python": 1, "verify vote": 1} {
		if names[name] != n {
			t.Errorf("%d %q spans, want %d", names[name], name, n)
		}
	}

	// No content: the capture variable is off.
	for _, s := range spans {
		for k, v := range s.Attrs {
			if str, ok := v.(string); ok && (strings.Contains(str, "multiply") || strings.Contains(str, "40 + 2") || strings.Contains(str, "answer is")) {
				t.Errorf("%s: %s holds content: %.80q", s.Name, k, str)
			}
			switch k {
			case "gen_ai.input.messages", "gen_ai.output.messages", "gen_ai.system_instructions", "gen_ai.tool.call.arguments", "gen_ai.tool.call.result":
				t.Errorf("%s has %s without the capture variable", s.Name, k)
			}
		}
	}
}

// TestTraceContent: with the capture variable on, a call's span holds the
// messages sent and the answer, and a tool's its arguments and result, as
// JSON; a secret in the task, in a model's answer and in a tool's result
// is redacted everywhere.
func TestTraceContent(t *testing.T) {
	const key = "sk-hive-telemetry-0123456789"
	h := func(c *llmtest.Call) llmtest.Reply {
		switch {
		case isLead(c) && len(c.ToolResults()) == 0:
			return llmtest.Reply{ToolCalls: []llmtest.ToolCall{toolCall("delegate", delegateArgs{Tasks: []TaskSpec{{Name: "echo", Instructions: "Print the key."}}})}}
		case isLead(c):
			return finish("done")
		case len(c.ToolResults()) == 0:
			return llmtest.Reply{Text: "I will print " + key, ToolCalls: []llmtest.ToolCall{toolCall("run_code", runCodeArgs{Language: "shell", Code: "echo " + key})}}
		}
		return submit("the key is " + key)
	}
	red := secret.New(map[string]string{"HIVE_TEST_KEY": key})
	tr := newTraced(t, h, Options{Redact: red, CodeRunner: fixedCode{"printed " + key}}, true)
	res := tr.run(Spec{Task: "Find the key " + key + " and report it.", Tiers: []string{"cheap"}, BudgetUSD: 1e9})
	if res.Status != StatusDone {
		t.Fatalf("run %s: %s", res.Status, res.Error)
	}
	spans := tr.spans()
	seen := map[string]bool{}
	for _, s := range spans {
		for k, v := range s.Attrs {
			str, _ := v.(string)
			if strings.Contains(str, key) {
				t.Errorf("%s: %s holds the secret: %.200q", s.Name, k, str)
			}
			switch k {
			case "gen_ai.input.messages", "gen_ai.output.messages", "gen_ai.system_instructions", "gen_ai.tool.call.arguments", "gen_ai.tool.call.result":
				if !json.Valid([]byte(str)) && k != "gen_ai.tool.call.result" {
					t.Errorf("%s: %s is not JSON: %.200q", s.Name, k, str)
				}
				if strings.Contains(str, "[redacted HIVE_TEST_KEY]") {
					seen[s.Name+" "+k] = true
				}
			}
		}
	}
	for _, want := range []string{
		"chat lead gen_ai.input.messages",   // the task
		"chat cheap gen_ai.output.messages", // the worker's answer
		"chat cheap gen_ai.input.messages",  // the code's output, sent back
		"execute_tool run_code gen_ai.tool.call.arguments",
		"execute_tool run_code gen_ai.tool.call.result",
		"execute_tool submit gen_ai.tool.call.arguments",
	} {
		if !seen[want] {
			t.Errorf("no redacted secret in %s", want)
		}
	}
	for _, s := range spans {
		if s.Name == "chat lead" && strings.Contains(s.Str("gen_ai.input.messages"), "Find the key") && strings.Contains(s.Str("gen_ai.system_instructions"), "lead of Hive") {
			return
		}
	}
	t.Error("no lead call holds the task and the system prompt")
}

// TestTraceHostileTools: a model that calls a tool with a name of 100 KB,
// arguments of 1 MB and a language of 10 KB gets tool errors as ever; its
// spans stay small: names cut, a made-up tool's name kept out of its
// span's name, arguments cut to the content bound.
func TestTraceHostileTools(t *testing.T) {
	hugeName := strings.Repeat("evil", 25<<10)
	hugeArgs := `{"x": "` + strings.Repeat("A", 1<<20) + `"}`
	h := func(c *llmtest.Call) llmtest.Reply {
		switch {
		case isLead(c) && len(c.ToolResults()) == 0:
			return llmtest.Reply{ToolCalls: []llmtest.ToolCall{toolCall("delegate", delegateArgs{Tasks: []TaskSpec{{Name: strings.Repeat("t", 200), Instructions: "Be hostile."}}})}}
		case isLead(c):
			return finish("done")
		case len(c.ToolResults()) == 0:
			return llmtest.Reply{ToolCalls: []llmtest.ToolCall{
				{Name: hugeName, Input: hugeArgs},
				toolCall("run_code", runCodeArgs{Language: strings.Repeat("λ", 5<<10), Code: "1"}),
			}}
		}
		return submit("done")
	}
	tr := newTraced(t, h, Options{CodeRunner: fixedCode{"ok"}}, true)
	res := tr.run(Spec{Task: "hostile", Tiers: []string{"cheap"}, BudgetUSD: 1e9})
	if res.Status != StatusDone {
		t.Fatalf("run %s: %s", res.Status, res.Error)
	}
	var madeUp, code bool
	for _, s := range tr.spans() {
		if len(s.Name) > len("execute_tool ")+telemetry.MaxName {
			t.Errorf("span name of %d bytes: %.60q", len(s.Name), s.Name)
		}
		for k, v := range s.Attrs {
			if str, ok := v.(string); ok && len(str) > telemetry.MaxContent {
				t.Errorf("%s: %s of %d bytes", s.Name, k, len(str))
			}
		}
		switch {
		case s.Name == "execute_tool":
			madeUp = true
			if n := s.Str("gen_ai.tool.name"); len(n) > telemetry.MaxName || !strings.HasPrefix(n, "evilevil") {
				t.Errorf("made-up tool's name: %d bytes", len(n))
			}
			if a := s.Str("gen_ai.tool.call.arguments"); len(a) > telemetry.MaxContent || !strings.HasPrefix(a, `{"x": "AAAA`) {
				t.Errorf("made-up tool's arguments: %d bytes", len(a))
			}
		case strings.HasPrefix(s.Name, "run_code "):
			code = true
			if len(s.Name) > len("run_code ")+32 {
				t.Errorf("code run's span name: %d bytes", len(s.Name))
			}
		case s.Name == "invoke_agent worker":
			if n := s.Str("gen_ai.agent.name"); len(n) > telemetry.MaxName {
				t.Errorf("worker's name: %d bytes", len(n))
			}
		}
	}
	if !madeUp || !code {
		t.Errorf("made-up tool span %v, code run span %v", madeUp, code)
	}
}

// TestTraceResumed: a run interrupted while its workers work, then
// resumed, is two traces: the first execution's, ended "interrupted",
// and the second's, linked to it; the second does not report again the
// lead's call it read back from the journal.
func TestTraceResumed(t *testing.T) {
	var resumed atomic.Bool
	sent := make(chan struct{}, 2)
	h := func(c *llmtest.Call) llmtest.Reply {
		switch {
		case isLead(c) && len(c.ToolResults()) == 0:
			return llmtest.Reply{ToolCalls: []llmtest.ToolCall{toolCall("delegate", delegateArgs{Tasks: tasks(2, "t")})}}
		case isLead(c):
			return finish("done")
		case !resumed.Load():
			sent <- struct{}{}
			return llmtest.Reply{Latency: time.Minute} // until the engine stops
		}
		return submit("ok")
	}
	tr := newTraced(t, h, Options{}, false)
	ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second)
	defer cancel()
	id, err := tr.engine.Start(ctx, Spec{Task: "two", Lead: "lead", Tiers: []string{"cheap"}, BudgetUSD: 1e9})
	if err != nil {
		t.Fatal(err)
	}
	<-sent
	<-sent
	tr.close()
	resumed.Store(true)
	tr.open(Options{Telemetry: tr.tel})
	if _, err := tr.engine.Resume(ctx, id); err != nil {
		t.Fatal(err)
	}
	if res, err := tr.engine.Wait(ctx, id); err != nil || res.Status != StatusDone {
		t.Fatalf("resumed run: %v %v", res, err)
	}
	spans := tr.spans()
	var roots []otlptest.Span
	leadCalls := map[string]int{} // by trace
	for _, s := range spans {
		if s.ParentID == "" {
			roots = append(roots, s)
		}
		if s.Name == "chat lead" {
			leadCalls[s.TraceID]++
		}
	}
	if len(roots) != 2 {
		t.Fatalf("%d roots, want 2", len(roots))
	}
	first, second := roots[0], roots[1]
	if first.Attrs["hive.run.resumed"] == true {
		first, second = second, first
	}
	if first.Str("hive.status") != "interrupted" || first.Status == 2 || first.Attrs["hive.run.resumed"] != false {
		t.Errorf("first execution: status %v, %v", first.Status, first.Attrs)
	}
	if second.Str("hive.status") != "done" || second.Attrs["hive.run.resumed"] != true || second.TraceID == first.TraceID {
		t.Errorf("second execution: %v", second.Attrs)
	}
	if len(second.Links) != 1 || second.Links[0] != first.TraceID+"-"+first.SpanID {
		t.Errorf("second execution links to %v, want the first's %s-%s", second.Links, first.TraceID, first.SpanID)
	}
	if leadCalls[first.TraceID] != 1 || leadCalls[second.TraceID] != 1 {
		t.Errorf("lead calls by trace: %v (the first execution's delegate, the second's finish)", leadCalls)
	}
	for _, s := range spans {
		if s.Str("hive.run.id") != id {
			t.Errorf("%s: run %q", s.Name, s.Str("hive.run.id"))
		}
	}
}
