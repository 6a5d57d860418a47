package telemetry

import (
	"context"
	"fmt"
	"strings"
	"time"
	"unicode/utf8"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"

	"github.com/hive-swarm/hive/internal/llm"
	"github.com/hive-swarm/hive/internal/price"
)

// Attribute keys: the GenAI semantic conventions' and Hive's own.
const (
	keyOperation  = "gen_ai.operation.name"
	keyProvider   = "gen_ai.provider.name"
	keyReqModel   = "gen_ai.request.model"
	keyRespModel  = "gen_ai.response.model"
	keyMaxTokens  = "gen_ai.request.max_tokens"
	keyInTokens   = "gen_ai.usage.input_tokens"
	keyOutTokens  = "gen_ai.usage.output_tokens"
	keyCacheRead  = "gen_ai.usage.cache_read.input_tokens"
	keyCacheWrite = "gen_ai.usage.cache_creation.input_tokens"
	keyFinish     = "gen_ai.response.finish_reasons"
	keyAgentName  = "gen_ai.agent.name"
	keyAgentID    = "gen_ai.agent.id"
	keyWorkflow   = "gen_ai.workflow.name"
	keyToolName   = "gen_ai.tool.name"
	keyToolCallID = "gen_ai.tool.call.id"
	keyToolType   = "gen_ai.tool.type"
	keyToolArgs   = "gen_ai.tool.call.arguments"
	keyToolResult = "gen_ai.tool.call.result"
	keyInput      = "gen_ai.input.messages"
	keyOutput     = "gen_ai.output.messages"
	keySystem     = "gen_ai.system_instructions"
	keyErrorType  = "error.type"

	keyRunID       = "hive.run.id"
	keyResumed     = "hive.run.resumed"
	keyNodeID      = "hive.node.id"
	keyRole        = "hive.node.role"
	keyTier        = "hive.tier"
	keyModel       = "hive.model"
	keyCost        = "hive.cost.usd"
	keyStatus      = "hive.status"
	keyCalls       = "hive.calls"
	keyWaitMillis  = "hive.wait_ms"
	keyRetries     = "hive.retries"
	keyRateLimited = "hive.rate_limited"
	keyBatch       = "hive.batch"
	keyAnomaly     = "hive.anomaly"
	keyHedgeModel  = "hive.hedge.model"
	keyHedgeWon    = "hive.hedge.won"
	keyHedgeCost   = "hive.hedge.cost.usd"
	keyVerifyKind  = "hive.verify.kind"
	keyOutcome     = "hive.verify.outcome"
	keyLanguage    = "hive.code.language"
	keyCodeFailed  = "hive.code.failed"
	keyToolError   = "hive.tool.error"
)

// Bounds of what goes on a span. A model chooses tool names, tool
// arguments, task names and languages: each is cut, so that no answer
// makes a span (or the span name a backend indexes) large.
const (
	// MaxName bounds names and ids: span names, tool and task names.
	MaxName = 128
	// MaxText bounds error texts and the like.
	MaxText = 1 << 10
	// MaxContent bounds one attribute of captured content (a call's
	// messages, a tool's arguments or result).
	MaxContent = 32 << 10
)

// A Span is one operation of a run. A nil *Span does nothing; so does
// one of a Telemetry that does not trace, except for the metrics of a
// model call.
type Span struct {
	t    *Telemetry
	span trace.Span // nil when not tracing
	// The run and node the span belongs to (its own for run and node
	// spans, its parent's for the others), put on every span under it.
	runID, nodeID string
	tier          int // -1: none
	// A model call's, for its metrics.
	model string
	start time.Time
}

type scopeKey struct{}

// scopeOf returns the run or node span ctx is in, nil for none.
func scopeOf(ctx context.Context) *Span {
	s, _ := ctx.Value(scopeKey{}).(*Span)
	return s
}

// Context returns ctx in s: spans started with it are s's children, and
// carry its run and node. For work that does not inherit s's context (a
// worker that its delegating node's goroutine does not run).
func (s *Span) Context(ctx context.Context) context.Context {
	if s == nil || s.span == nil {
		return ctx
	}
	return context.WithValue(trace.ContextWithSpan(ctx, s.span), scopeKey{}, s)
}

// TraceParent returns s's W3C traceparent ("00-TRACE-SPAN-01"), empty
// when s records nothing.
func (s *Span) TraceParent() string {
	if s == nil || s.span == nil {
		return ""
	}
	sc := s.span.SpanContext()
	if !sc.IsValid() {
		return ""
	}
	return fmt.Sprintf("00-%s-%s-%s", sc.TraceID(), sc.SpanID(), sc.TraceFlags())
}

// start starts s, a span named name, under ctx's span. s belongs to the
// run and node of ctx's scope unless it names its own.
func (t *Telemetry) start(ctx context.Context, s *Span, name string, kind trace.SpanKind, attrs []attribute.KeyValue, opts ...trace.SpanStartOption) context.Context {
	if sc := scopeOf(ctx); sc != nil {
		if s.runID == "" {
			s.runID = sc.runID
		}
		if s.nodeID == "" {
			s.nodeID, s.tier = sc.nodeID, sc.tier
		}
	}
	if s.runID != "" {
		attrs = append(attrs, attribute.String(keyRunID, s.runID))
	}
	if s.nodeID != "" {
		attrs = append(attrs, attribute.String(keyNodeID, s.nodeID))
	}
	opts = append(opts, trace.WithSpanKind(kind), trace.WithAttributes(attrs...))
	ctx, s.span = t.tracer.Start(ctx, name, opts...)
	return ctx
}

// StartRun starts the root span of one execution of run runID: a new
// trace. A resumed run (resumed) starts a new trace too, linked to the
// root span of the execution before it when prev, that span's
// [Span.TraceParent], is given: an execution's trace is over when its
// process stops, and spans cannot be added to it later.
func (t *Telemetry) StartRun(ctx context.Context, runID string, resumed bool, prev string) (context.Context, *Span) {
	if !t.Tracing() {
		return ctx, nil
	}
	opts := []trace.SpanStartOption{trace.WithNewRoot()}
	if sc, ok := parseTraceParent(prev); ok {
		opts = append(opts, trace.WithLinks(trace.Link{SpanContext: sc, Attributes: []attribute.KeyValue{attribute.String("hive.link", "previous execution")}}))
	}
	s := &Span{t: t, runID: runID, tier: -1}
	ctx = t.start(ctx, s, "invoke_workflow hive", trace.SpanKindInternal, []attribute.KeyValue{
		attribute.String(keyOperation, "invoke_workflow"),
		attribute.String(keyWorkflow, "hive"),
		attribute.Bool(keyResumed, resumed),
	}, opts...)
	return context.WithValue(ctx, scopeKey{}, s), s
}

// Outcome is how a run or a node ended.
type Outcome struct {
	Status string // done, failed, cancelled, …
	Error  string
	Cost   price.Amount
	Usage  llm.Usage
	Calls  int
}

// End ends a run or node span with how it ended.
func (s *Span) End(o Outcome) {
	if s == nil || s.span == nil {
		return
	}
	attrs := append(usageAttrs(o.Usage),
		attribute.String(keyStatus, o.Status),
		attribute.Float64(keyCost, o.Cost.Dollars()),
	)
	if o.Calls > 0 {
		attrs = append(attrs, attribute.Int(keyCalls, o.Calls))
	}
	s.span.SetAttributes(attrs...)
	switch o.Status {
	case "done", "interrupted", "escalated":
	default:
		s.fail(o.Status, o.Error)
	}
	s.span.End()
}

// fail marks s as failed with error.type kind and the (redacted, cut)
// text.
func (s *Span) fail(kind, text string) {
	s.span.SetAttributes(attribute.String(keyErrorType, cut(kind, MaxName)))
	s.span.SetStatus(codes.Error, cut(s.t.opts.Redact.String(text), MaxText))
}

// Node is a node of a run's tree as its span shows it.
type Node struct {
	ID   string
	Role string // lead, worker, verifier
	Name string // the task's name (a model's choice: cut)
	// Model is Hive's name of the node's model, ModelID the provider's
	// and Provider the provider (anthropic, openai).
	Model, ModelID, Provider string
	Tier                     int
}

// StartNode starts the span of node n, under ctx's span: its run's, or
// the span of the node that delegated it (see [Span.Context]).
func (t *Telemetry) StartNode(ctx context.Context, n Node) (context.Context, *Span) {
	if !t.Tracing() {
		return ctx, nil
	}
	s := &Span{t: t, nodeID: n.ID, tier: n.Tier}
	ctx = t.start(ctx, s, "invoke_agent "+cut(n.Role, MaxName), trace.SpanKindInternal, []attribute.KeyValue{
		attribute.String(keyOperation, "invoke_agent"),
		attribute.String(keyProvider, provider(n.Provider)),
		attribute.String(keyReqModel, cut(n.ModelID, MaxName)),
		attribute.String(keyModel, cut(n.Model, MaxName)),
		attribute.String(keyAgentName, cut(n.Name, MaxName)),
		attribute.String(keyAgentID, n.ID),
		attribute.String(keyRole, n.Role),
		attribute.Int(keyTier, n.Tier),
	})
	return context.WithValue(ctx, scopeKey{}, s), s
}

// provider is gen_ai.provider.name for Hive's provider name: the same
// words for the providers Hive has, "_OTHER" for models without one
// (recorded replays).
func provider(p string) string {
	if p == "" {
		return "_OTHER"
	}
	return cut(p, MaxName)
}

// Call is a model call about to be sent.
type Call struct {
	// Model is Hive's name of the model (metrics go by it), ModelID the
	// provider's and Provider the provider.
	Model, ModelID, Provider string
	// Request is what is sent: its limits always, its content only when
	// content is captured.
	Request *llm.Request
}

// StartCall starts a model call's span (chat MODEL) and its clock, under
// ctx's span.
func (t *Telemetry) StartCall(ctx context.Context, c Call) (context.Context, *Span) {
	if t == nil || (t.tracer == nil && t.metrics == nil) {
		return ctx, nil
	}
	if t.tracer == nil {
		return ctx, &Span{t: t, model: c.Model, start: time.Now()}
	}
	attrs := []attribute.KeyValue{
		attribute.String(keyOperation, "chat"),
		attribute.String(keyProvider, provider(c.Provider)),
		attribute.String(keyReqModel, cut(c.ModelID, MaxName)),
		attribute.String(keyModel, cut(c.Model, MaxName)),
	}
	if c.Request != nil && c.Request.MaxTokens > 0 {
		attrs = append(attrs, attribute.Int(keyMaxTokens, c.Request.MaxTokens))
	}
	if sc := scopeOf(ctx); sc != nil && sc.tier >= 0 {
		attrs = append(attrs, attribute.Int(keyTier, sc.tier))
	}
	if t.opts.CaptureContent && c.Request != nil {
		if c.Request.System != "" {
			attrs = append(attrs, attribute.String(keySystem, t.systemJSON(c.Request.System)))
		}
		attrs = append(attrs, attribute.String(keyInput, t.inputJSON(c.Request.Messages)))
	}
	s := &Span{t: t, model: c.Model, start: time.Now()}
	return t.start(ctx, s, "chat "+cut(c.ModelID, MaxName), trace.SpanKindClient, attrs), s
}

// CallResult is how a model call ended.
type CallResult struct {
	// Err is why the call failed; nil when it was answered.
	Err error
	// Refused says the budget refused the call: it was not sent.
	Refused bool
	// ResponseModel is the model id the provider reported, if any.
	ResponseModel string
	StopReason    llm.StopReason
	// Usage and Cost are the answer's bill.
	Usage llm.Usage
	Cost  price.Amount
	// Output is the answer, put on the span when content is captured
	// (see [Telemetry.Capturing]: no need to build it otherwise).
	Output []llm.Part
	// What the model's limiter did to the call: how long it waited
	// (not counted in its latency), how many times it was sent again,
	// and how many 429s it was answered.
	Waited      time.Duration
	Retries     int
	RateLimited int
	// Batch marks a call sent through a batch API.
	Batch bool
	// Anomaly is what was wrong with the provider's bill, if anything.
	Anomaly string
	// Hedge is the call's second copy, when it had one.
	Hedge *Hedge
}

// Hedge is the second copy of a hedged call: sent to Model, whose answer
// was taken when Won; Usage and Cost are the bill of the copy whose
// answer was not taken (the first copy's when Won).
type Hedge struct {
	Model string
	Won   bool
	Usage llm.Usage
	Cost  price.Amount
}

// EndCall ends a model call's span and counts it in the metrics.
func (s *Span) EndCall(r CallResult) {
	if s == nil {
		return
	}
	s.t.metrics.call(s.model, r, time.Since(s.start))
	if s.span == nil {
		return
	}
	attrs := usageAttrs(r.Usage)
	cost := r.Cost
	if r.ResponseModel != "" {
		attrs = append(attrs, attribute.String(keyRespModel, cut(r.ResponseModel, MaxName)))
	}
	if r.StopReason != "" {
		attrs = append(attrs, attribute.StringSlice(keyFinish, []string{cut(string(r.StopReason), MaxName)}))
	}
	if r.Waited > 0 {
		attrs = append(attrs, attribute.Int64(keyWaitMillis, r.Waited.Milliseconds()))
	}
	if r.Retries > 0 {
		attrs = append(attrs, attribute.Int(keyRetries, r.Retries))
	}
	if r.RateLimited > 0 {
		attrs = append(attrs, attribute.Int(keyRateLimited, r.RateLimited))
	}
	if r.Batch {
		attrs = append(attrs, attribute.Bool(keyBatch, true))
	}
	if r.Anomaly != "" {
		attrs = append(attrs, attribute.String(keyAnomaly, cut(r.Anomaly, MaxText)))
	}
	if h := r.Hedge; h != nil {
		cost += h.Cost
		attrs = append(attrs, attribute.String(keyHedgeModel, cut(h.Model, MaxName)), attribute.Bool(keyHedgeWon, h.Won), attribute.Float64(keyHedgeCost, h.Cost.Dollars()))
	}
	attrs = append(attrs, attribute.Float64(keyCost, cost.Dollars()))
	if s.t.opts.CaptureContent && r.Err == nil && !r.Refused {
		attrs = append(attrs, attribute.String(keyOutput, s.t.outputJSON(r.Output, r.StopReason)))
	}
	s.span.SetAttributes(attrs...)
	switch {
	case r.Refused:
		s.fail("budget_exhausted", "the budget refused the call")
	case r.Err != nil:
		s.fail(outcome(r.Err), r.Err.Error())
	}
	s.span.End()
}

// usageAttrs are the gen_ai.usage attributes of u. Input tokens count
// every prompt token, cached ones included, as the conventions ask; the
// cache's share is given apart.
func usageAttrs(u llm.Usage) []attribute.KeyValue {
	attrs := make([]attribute.KeyValue, 0, 8)
	attrs = append(attrs,
		attribute.Int64(keyInTokens, u.InputTokens+u.CacheReadTokens+u.CacheWriteTokens),
		attribute.Int64(keyOutTokens, u.OutputTokens))
	if u.CacheReadTokens > 0 {
		attrs = append(attrs, attribute.Int64(keyCacheRead, u.CacheReadTokens))
	}
	if u.CacheWriteTokens > 0 {
		attrs = append(attrs, attribute.Int64(keyCacheWrite, u.CacheWriteTokens))
	}
	return attrs
}

// outcome names how a call ended, for error.type and the calls metric:
// "ok", or the kind of its error ([llm.Kind]).
func outcome(err error) string {
	if err == nil {
		return "ok"
	}
	if k := llm.KindOf(err); k != llm.KindUnknown {
		return k.String()
	}
	return "error"
}

// StartTool starts the span of a tool call (execute_tool NAME) under
// ctx's span. offered says the tool is one the model was given: the name
// of any other, which a model made up, stays out of the span's name.
// args go on the span only when content is captured.
func (t *Telemetry) StartTool(ctx context.Context, name, callID string, args []byte, offered bool) (context.Context, *Span) {
	if !t.Tracing() {
		return ctx, nil
	}
	name = cut(name, MaxName)
	span := "execute_tool"
	if offered {
		span += " " + name
	}
	attrs := []attribute.KeyValue{
		attribute.String(keyOperation, "execute_tool"),
		attribute.String(keyToolName, name),
		attribute.String(keyToolType, "function"),
	}
	if callID != "" {
		attrs = append(attrs, attribute.String(keyToolCallID, cut(callID, MaxName)))
	}
	if t.opts.CaptureContent {
		attrs = append(attrs, attribute.String(keyToolArgs, t.content(string(args))))
	}
	s := &Span{t: t}
	return t.start(ctx, s, span, trace.SpanKindInternal, attrs), s
}

// EndTool ends a tool call's span with its result, which goes on the span
// only when content is captured.
func (s *Span) EndTool(result string, isErr bool) {
	if s == nil || s.span == nil {
		return
	}
	if s.t.opts.CaptureContent {
		s.span.SetAttributes(attribute.String(keyToolResult, s.t.content(result)))
	}
	if isErr {
		// The model is told and may try again: the span says so, and is
		// not an error of Hive's.
		s.span.SetAttributes(attribute.Bool(keyToolError, true))
	}
	s.span.End()
}

// StartVerify starts the span of a verification of kind kind (verify
// KIND) under ctx's span; the model calls a verifier makes go under it.
func (t *Telemetry) StartVerify(ctx context.Context, kind string) (context.Context, *Span) {
	if !t.Tracing() {
		return ctx, nil
	}
	kind = cut(kind, MaxName)
	s := &Span{t: t}
	return t.start(ctx, s, "verify "+kind, trace.SpanKindInternal, []attribute.KeyValue{attribute.String(keyVerifyKind, kind)}), s
}

// EndVerify ends a verification's span with its outcome (pass, fail,
// unsure).
func (s *Span) EndVerify(outcome string) {
	if s == nil || s.span == nil {
		return
	}
	s.span.SetAttributes(attribute.String(keyOutcome, cut(outcome, MaxName)))
	s.span.End()
}

// StartCode starts the span of a run of model code in language lang
// (run_code LANG) under ctx's span.
func (t *Telemetry) StartCode(ctx context.Context, lang string) (context.Context, *Span) {
	if !t.Tracing() {
		return ctx, nil
	}
	lang = cut(lang, 32)
	s := &Span{t: t}
	return t.start(ctx, s, "run_code "+lang, trace.SpanKindInternal, []attribute.KeyValue{attribute.String(keyLanguage, lang)}), s
}

// EndCode ends a code run's span: failed is a non-zero exit (the model's
// business), err a failure to run it at all (Hive's).
func (s *Span) EndCode(failed bool, err error) {
	if s == nil || s.span == nil {
		return
	}
	s.span.SetAttributes(attribute.Bool(keyCodeFailed, failed || err != nil))
	if err != nil {
		s.fail("run_code", err.Error())
	}
	s.span.End()
}

// cut returns s as valid UTF-8 of at most n bytes, "…" marking a cut.
func cut(s string, n int) string {
	if len(s) <= n && utf8.ValidString(s) {
		return s
	}
	if len(s) > 4*n {
		s = s[:4*n] // bound the work on a huge string
	}
	s = strings.ToValidUTF8(s, "\uFFFD")
	if len(s) <= n {
		return s
	}
	const mark = "…"
	i := n - len(mark)
	for i > 0 && !utf8.RuneStart(s[i]) {
		i--
	}
	return s[:i] + mark
}

// parseTraceParent reads a W3C traceparent.
func parseTraceParent(s string) (trace.SpanContext, bool) {
	parts := strings.Split(s, "-")
	if len(parts) != 4 || parts[0] != "00" {
		return trace.SpanContext{}, false
	}
	tid, err := trace.TraceIDFromHex(parts[1])
	if err != nil {
		return trace.SpanContext{}, false
	}
	sid, err := trace.SpanIDFromHex(parts[2])
	if err != nil {
		return trace.SpanContext{}, false
	}
	sc := trace.NewSpanContext(trace.SpanContextConfig{TraceID: tid, SpanID: sid, TraceFlags: trace.FlagsSampled, Remote: true})
	return sc, sc.IsValid()
}
