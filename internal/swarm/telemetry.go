package swarm

import (
	"context"

	"github.com/hive-swarm/hive/internal/limit"
	"github.com/hive-swarm/hive/internal/llm"
	"github.com/hive-swarm/hive/internal/price"
	"github.com/hive-swarm/hive/internal/provider"
	"github.com/hive-swarm/hive/internal/telemetry"
)

// What a run reports to [Options.Telemetry] (package telemetry), and
// where: a trace per execution of a run, its root span opened and closed
// with the workflow (runWorkflow, finish, interrupt); a span per node,
// under the span of the node that delegated it (the lead's under the
// run's; a verifier node's under the verification that made it); and,
// under a node's span by the context its loop runs in, its live model
// calls (traced), its tool calls (agent.loop), verifications (run.verify)
// and code runs (run.runCode). What a resumed run reads back from the
// journal instead of doing again is not reported again.

// traceKey is the journal step that holds the traceparent of the root
// span of a run's latest execution, which the next one links to.
const traceKey = "otel/trace"

func (r *run) tel() *telemetry.Telemetry { return r.e.opts.Telemetry }

// providerName is the provider of m for gen_ai.provider.name: Hive's
// providers are named as the conventions name them (anthropic, openai);
// a model made in code (a recorded replay) has none.
func providerName(m *provider.Model) string {
	if m.Config == nil {
		return ""
	}
	return m.Config.Provider
}

// setSpan and spanOf keep a node's span, which the spans of the nodes it
// delegates to go under.
func (r *run) setSpan(ns *nodeState, s *telemetry.Span) {
	r.mu.Lock()
	ns.span = s
	r.mu.Unlock()
}

func (r *run) spanOf(ns *nodeState) *telemetry.Span {
	r.mu.Lock()
	defer r.mu.Unlock()
	return ns.span
}

// startNode starts the span of ns, whose model is m, under ctx's span, or
// under its parent's when parent is set (a worker's goroutine does not
// run in its delegating node's context), and returns ctx in it.
func (r *run) startNode(ctx context.Context, ns *nodeState, m *provider.Model, parent *nodeState) context.Context {
	if !r.tel().Tracing() {
		return ctx
	}
	if parent != nil {
		ctx = r.spanOf(parent).Context(ctx)
	}
	n := ns.snapshot(r)
	ctx, s := r.tel().StartNode(ctx, telemetry.Node{ID: n.ID, Role: string(n.Role), Name: n.Name, Model: m.Name, ModelID: m.ID, Provider: providerName(m), Tier: n.Tier})
	r.setSpan(ns, s)
	return ctx
}

// endNode ends the span of ns with the node as it stands.
func (r *run) endNode(ns *nodeState) {
	s := r.spanOf(ns)
	if s == nil {
		return
	}
	n := ns.snapshot(r)
	s.End(telemetry.Outcome{Status: string(n.Status), Error: n.Error, Cost: n.Cost, Usage: n.Usage, Calls: n.Calls})
}

// endRun ends the span of the run's execution.
func (r *run) endRun(res Result) {
	r.span.End(telemetry.Outcome{Status: string(res.Status), Error: res.Error, Cost: res.Cost, Usage: res.Usage})
}

// traced runs call, a live call to model m of the node whose span ctx is
// in, with a limiter trace and in a span of its own, and notes on rec
// what the limiter did to it.
func (r *run) traced(ctx context.Context, m *provider.Model, req *llm.Request, call func(ctx context.Context) (callRecord, error)) (callRecord, error) {
	ctx, s := r.tel().StartCall(ctx, telemetry.Call{Model: m.Name, ModelID: m.ID, Provider: providerName(m), Request: req})
	var tr limit.Trace
	rec, err := call(limit.WithTrace(ctx, &tr))
	rec.WaitMillis, rec.Retries = tr.Waited().Milliseconds(), tr.Retries()
	if s != nil {
		res := telemetry.CallResult{Err: err, Refused: rec.Exhausted != "", ResponseModel: rec.Model, StopReason: rec.Stop,
			Usage: rec.Usage, Cost: price.Amount(rec.CostNanos), Waited: tr.Waited(), Retries: tr.Retries(), RateLimited: tr.RateLimited(),
			Batch: rec.Batch, Anomaly: rec.Anomaly}
		if h := rec.Hedge; h != nil {
			res.Hedge = &telemetry.Hedge{Model: h.Model, Won: h.Won, Usage: h.Usage, Cost: price.Amount(h.CostNanos)}
		}
		if err == nil && r.tel().Capturing() {
			if resp, err := rec.response(); err == nil {
				res.Output = resp.Parts
			}
		}
		s.EndCall(res)
	}
	return rec, err
}

// handleTraced runs the agent's tool call c in a span of its own.
func (a *agent) handleTraced(ctx context.Context, c llm.ToolCall) toolOutcome {
	tel := a.r.tel()
	if !tel.Tracing() {
		return a.handle(ctx, c)
	}
	ctx, s := tel.StartTool(ctx, c.Name, c.ID, c.Input, offered(a.req.Tools, c.Name))
	out := a.handle(ctx, c)
	s.EndTool(out.content, out.isErr)
	return out
}
