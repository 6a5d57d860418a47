package swarm

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/hive-swarm/hive/internal/budget"
	"github.com/hive-swarm/hive/internal/limit"
	"github.com/hive-swarm/hive/internal/llm"
	"github.com/hive-swarm/hive/internal/price"
	"github.com/hive-swarm/hive/internal/provider"
	"github.com/hive-swarm/hive/internal/secret"
)

// A stepper makes model calls durable: call returns key's journaled
// record, or runs fn and journals what it returns. live reports whether fn
// ran in this process.
type stepper interface {
	call(ctx context.Context, key string, fn func(ctx context.Context) (callRecord, error)) (rec callRecord, live bool, err error)
}

// errNoTool ends a node whose model keeps answering without a usable tool
// call.
var errNoTool = errors.New("no usable tool call")

// toolOutcome is what handling one tool call produced.
type toolOutcome struct {
	content string
	isErr   bool
	// done ends the conversation after this turn (submit, finish).
	done bool
	// malformed marks a call the model got wrong (unknown tool, bad
	// arguments): such turns count toward MaxToolErrors.
	malformed bool
}

// An agent is one node's conversation: a model in a tool loop.
type agent struct {
	r     *run
	ns    *nodeState
	model *provider.Model
	prio  limit.Priority
	steps stepper
	bud   *budget.Budget
	req   llm.Request // system, tools, max tokens; Messages unused
	msgs  []llm.Message
	turn  int
	// handle runs one tool call.
	handle func(ctx context.Context, call llm.ToolCall) toolOutcome
	// plain, when set, takes a model's text answer as its result: for
	// models that answer in plain text and call no tools.
	plain func(text string) toolOutcome
	// pending holds the tool results of the turn that ended the loop, so
	// that a repair can answer the same turn.
	pending []llm.Part
	// doneIdx is the index in pending of the call that ended the loop.
	doneIdx int
	// check, when set, is asked before each call whether to go on.
	check func() error
	// maxTurns and maxErrs bound the loop (default: the run's spec).
	maxTurns, maxErrs int
	// final marks the lead's last turn, when the budget is spent.
	final bool
	// force asks the next call for a tool call ("required"), after a turn
	// that answered without one: local servers (llama.cpp, vLLM) then
	// constrain the model's output to the tools' grammar.
	force bool
	// wave is the delegate call of a worker's task, whose first call to
	// each model goes ahead of the rest (cache.go); nil for the lead.
	wave *wave
	// lastCall is when the conversation's last call was sent.
	lastCall time.Time
	// batch sends the calls through the model's batch API (batch.go).
	batch bool
}

// loop runs turns until a tool call ends the conversation, the turn limit
// is reached, or the model fails MaxToolErrors times in a row.
func (a *agent) loop(ctx context.Context) error {
	if a.maxTurns == 0 {
		a.maxTurns = a.r.spec.MaxTurns
	}
	if a.maxErrs == 0 {
		a.maxErrs = a.r.spec.MaxToolErrors
	}
	bad := 0
	var lastBad string
	for {
		if err := context.Cause(ctx); err != nil && ctx.Err() != nil {
			return err
		}
		if a.check != nil {
			if err := a.check(); err != nil {
				return err
			}
		}
		if a.turn >= a.maxTurns {
			return fmt.Errorf("no result after %d model calls", a.maxTurns)
		}
		resp, err := a.call(ctx)
		if err != nil {
			return err
		}
		msg := resp.Message()
		if len(msg.Parts) == 0 {
			msg.Parts = []llm.Part{llm.Text{Text: "(empty answer)"}}
		}
		cut := cutCalls(&msg)
		a.msgs = append(a.msgs, msg)
		calls := resp.ToolCalls()
		a.force = len(calls) == 0
		if len(calls) == 0 && a.plain != nil {
			out := a.plain(resp.Text())
			if out.done {
				a.pending = nil
				a.journalConversation()
				return nil
			}
			bad++
			if bad >= a.maxErrs {
				return fmt.Errorf("%w: %s", errNoTool, out.content)
			}
			a.msgs = append(a.msgs, llm.UserText("Error: "+out.content))
			continue
		}
		if len(calls) == 0 {
			bad++
			lastBad = "answered without calling a tool: " + clip(resp.Text(), 300)
			if bad >= a.maxErrs {
				return fmt.Errorf("%w: the model answered without a tool call %s in a row (%s)", errNoTool, times(bad), lastBad)
			}
			a.msgs = append(a.msgs, llm.UserText("Error: you must answer by calling one of your tools ("+toolNames(a.req.Tools)+"). Call one now."))
			continue
		}
		results := make([]llm.Part, 0, len(calls))
		allBad, done := true, -1
		for i, c := range calls {
			var out toolOutcome
			if cut[c.ID] {
				out = toolOutcome{isErr: true, malformed: true, content: cutMessage(c.Name, resp)}
			} else {
				out = a.handleTraced(ctx, c)
			}
			if !out.malformed {
				allBad = false
			} else {
				lastBad = out.content
			}
			results = append(results, llm.ToolResult{CallID: c.ID, Content: out.content, IsError: out.isErr})
			if out.done && done < 0 {
				done = i
			}
		}
		if done >= 0 {
			a.pending, a.doneIdx = results, done
			a.journalConversation()
			return nil
		}
		if allBad {
			bad++
			if bad >= a.maxErrs {
				return fmt.Errorf("%w: %s in a row; last: %s", errNoTool, plural(bad, "malformed turn"), lastBad)
			}
		} else {
			bad = 0
		}
		a.msgs = append(a.msgs, llm.Message{Role: llm.RoleUser, Parts: results})
		a.journalConversation()
	}
}

// cutCalls replaces in msg, a copy, the arguments of tool calls that are
// not JSON with {}, and returns their ids. They are calls cut off at the
// output limit: echoed back, they poison the history (llama.cpp answers
// every later request with a 500, and Anthropic refuses them); the model
// is told instead.
func cutCalls(msg *llm.Message) map[string]bool {
	var cut map[string]bool
	for i, p := range msg.Parts {
		c, ok := p.(llm.ToolCall)
		if !ok || len(c.Input) == 0 || json.Valid(c.Input) {
			continue
		}
		if cut == nil {
			cut = map[string]bool{}
			msg.Parts = append([]llm.Part(nil), msg.Parts...)
		}
		cut[c.ID] = true
		c.Input = json.RawMessage(`{}`)
		msg.Parts[i] = c
	}
	return cut
}

// cutMessage tells the model what became of a call whose arguments were
// not JSON.
func cutMessage(tool string, resp *llm.Response) string {
	if resp.StopReason == llm.StopMaxTokens {
		return fmt.Sprintf("your call to %s was cut off at the output limit: its arguments are not valid JSON, and it was not run. Call it again, shorter: fewer words, or the work in parts.", tool)
	}
	return fmt.Sprintf("the arguments of your call to %s are not valid JSON, and it was not run; send a JSON object", tool)
}

// journalConversation records the node's conversation so far, for the
// web view's node panel (not needed to resume: calls are journaled one by
// one). Asynchronous: it costs the loop nothing.
func (a *agent) journalConversation() {
	a.r.e.store.PutStepAsync(a.r.id, a.ns.ID+"/conversation", conversationJSON(a.req.System, a.msgs))
}

// reject answers the call that ended the loop with an error (verification
// evidence), so that loop can go on with a repair.
func (a *agent) reject(text string) {
	if a.pending == nil {
		a.msgs = append(a.msgs, llm.UserText(text))
		return
	}
	parts := append([]llm.Part(nil), a.pending...)
	if tr, ok := parts[a.doneIdx].(llm.ToolResult); ok {
		tr.Content, tr.IsError = text, true
		parts[a.doneIdx] = tr
	}
	a.msgs = append(a.msgs, llm.Message{Role: llm.RoleUser, Parts: parts})
	a.pending = nil
}

// call makes one model call, journaled, reserved against the node's budget
// before it is sent and settled after.
func (a *agent) call(ctx context.Context) (*llm.Response, error) {
	if !a.r.e.opts.NoPromptCache && longGap(a.lastCall, time.Now()) {
		a.req.CacheTTL = time.Hour // from now on: see longGap
	}
	a.lastCall = time.Now()
	req := a.req
	req.Messages = redactMessages(a.msgs, a.r.e.opts.Redact)
	if !a.r.e.opts.NoPromptCache {
		req.Messages = cacheTail(req.Messages)
	}
	if a.force && req.ToolChoice.Mode == llm.ToolAuto && len(req.Tools) > 0 {
		req.ToolChoice = llm.ToolChoice{Mode: llm.ToolAny}
	}
	key := fmt.Sprintf("%s/call-%d", a.ns.ID, a.turn)
	var release func()
	if !a.batch { // a batch is answered when the provider gets to it
		release = a.staggered(ctx, &req)
	}
	if release != nil {
		defer release() // also when the call fails, or was journaled
	}
	a.turn++
	rec, live, err := a.steps.call(ctx, key, func(ctx context.Context) (callRecord, error) {
		return a.r.traced(ctx, a.model, &req, func(ctx context.Context) (callRecord, error) {
			if a.batch {
				return a.sendBatch(ctx, key, &req)
			}
			return a.send(&req, release)(ctx)
		})
	})
	if err != nil {
		return nil, err
	}
	if rec.Exhausted != "" {
		return nil, &exhaustedError{msg: rec.Exhausted}
	}
	if !live {
		cost, tokens := rec.billed()
		a.bud.Charge(cost, tokens, 1)
	}
	a.r.chargeCall(a.ns, a.model, &rec, live)
	return rec.response()
}

// send returns the step that sends req: reserved against the budget,
// admitted by the model's limiter, settled with the bill.
func (a *agent) send(req *llm.Request, release func()) func(ctx context.Context) (callRecord, error) {
	return func(ctx context.Context) (callRecord, error) {
		if err := a.r.priced(a.model); err != nil {
			return callRecord{}, err
		}
		usd, tokens, err := worstCase(a.model, req)
		if err != nil {
			return callRecord{}, err
		}
		res, rec, err := a.reserve(ctx, usd, tokens)
		if res == nil {
			return rec, err
		}
		if release == nil && a.model.Hedge != nil {
			if delay, ok := a.model.Latency.Delay(*a.model.Hedge); ok {
				return a.hedged(ctx, req, res, delay)
			}
		}
		var resp *llm.Response
		if release != nil {
			// The wave's first call: the rest of the wave goes once its
			// answer begins, when the provider has cached the prefix.
			resp, err = a.model.Admitted(a.prio).Stream(ctx, req, func(llm.Delta) { release() })
		} else {
			resp, err = a.model.Admitted(a.prio).Generate(ctx, req)
		}
		if err != nil {
			res.Release()
			return callRecord{}, err
		}
		return settle(res, a.model, req, resp, a.r.e.opts.Redact), nil
	}
}

// sendBatch sends req, the call of journal key key, in a batch of the
// model's (batch.go), reserved and billed at the batch price. The worker
// gives up its slot while it waits: a batch may take hours, and the
// rest of the run's workers may go on meanwhile.
//
// A call cancelled once its batch was sent is billed its reservation:
// the provider may still run it (Hive cancels a batch only when no call
// of the run waits on it, and what it had run by then is billed), and
// Hive no longer waits to learn what it cost.
func (a *agent) sendBatch(ctx context.Context, key string, req *llm.Request) (callRecord, error) {
	if err := a.r.priced(a.model); err != nil {
		return callRecord{}, err
	}
	in, out := requestBytes(req), int64(req.MaxTokens)
	var usd price.Amount
	if a.model.PriceKnown {
		usd = a.model.Price.BatchWorstCase(in, out, req.CacheTTL >= time.Hour)
	}
	res, rec, err := a.reserve(ctx, usd, in+out)
	if res == nil {
		return rec, err
	}
	a.r.release()
	resp, placed, err := a.r.batchesOf().do(ctx, a.model, key, req)
	switch {
	case err == nil:
		rec = settleAt(res, a.model, req, resp, a.r.e.opts.Redact, true)
		rec.Batch = true
	case placed && ctx.Err() != nil && !a.r.e.closing.Load():
		res.Settle(res.USD(), res.Tokens())
		a.r.chargeAbandoned(a.ns, res.USD())
	default:
		res.Release()
	}
	// The bill is settled before the worker takes a slot again: workers
	// holding slots may be waiting for the money this call held.
	a.r.acquire(context.WithoutCancel(ctx)) // the caller releases it
	return rec, err
}

// reserve holds a call's worst case on the agent's budget, waiting while
// only other calls in flight hold what it needs (see
// [budget.Budget.ReserveWait]). Without a reservation it returns what the
// call step returns instead: the budget's refusal as an Exhausted record,
// or the context's error when the call is cancelled while it waits.
func (a *agent) reserve(ctx context.Context, usd price.Amount, tokens int64) (*budget.Reservation, callRecord, error) {
	res, err := a.bud.ReserveWait(ctx, usd, tokens)
	switch {
	case err == nil:
		return res, callRecord{}, nil
	case errors.Is(err, budget.ErrExhausted):
		return nil, callRecord{Exhausted: err.Error()}, nil
	}
	return nil, callRecord{}, err
}

// settle ends a call's reservation with the bill the server reports. The
// reservation held the request's worst case (every prompt byte a token and
// all of MaxTokens), so usage beyond it, or a negative count, in any of
// its parts cannot be true: a broken or hostile server. The usage is then
// held to the request's bounds (boundUsage), the call billed for it and
// never more than the reservation, and the record carries an anomaly that
// says what the server claimed.
//
// Known secrets in the answer are redacted before anything else sees it.
func settle(res *budget.Reservation, m *provider.Model, req *llm.Request, resp *llm.Response, red *secret.Redactor) callRecord {
	return settleAt(res, m, req, resp, red, false)
}

// settleAt is settle at the batch price when batch is set.
func settleAt(res *budget.Reservation, m *provider.Model, req *llm.Request, resp *llm.Response, red *secret.Redactor, batch bool) callRecord {
	u, anomaly := boundUsage(resp.Usage, requestBytes(req), int64(req.MaxTokens))
	in := u.InputTokens + u.CacheWriteTokens + u.CacheReadTokens
	cost, _ := m.Cost(u)
	if batch {
		cost, _ = m.BatchCost(u)
	}
	if cost > res.USD() {
		if anomaly == "" {
			anomaly = fmt.Sprintf("the bill of %d input and %d output tokens came to more than the call's worst case", in, u.OutputTokens)
		}
		cost = res.USD()
	}
	tokens := min(u.Total(), res.Tokens())
	res.Settle(cost, tokens)
	rec := recordResponse(resp, int64(cost))
	rec.Usage = u
	if !red.Empty() {
		for i, p := range rec.Parts {
			p.Text = red.String(p.Text)
			if red.Contains(p.Input) {
				if p.Input = red.Bytes(p.Input); !json.Valid(p.Input) {
					p.Input = json.RawMessage(`{}`)
				}
			}
			rec.Parts[i] = p
		}
	}
	if anomaly != "" {
		rec.Anomaly = anomaly + fmt.Sprintf("; billed at the reservation (%s, %d tokens)", price.Amount(cost), u.Total())
	}
	return rec
}

// boundUsage holds the usage a server reported for a request of at most
// maxIn input and maxOut output tokens (maxOut 0: no cap) to what the
// request allows, and says what the server claimed when it did not. Each
// part is held on its own, not only their sum: -5e11 uncached tokens and
// 5e11+100 read from the cache add up to a plausible 100, and would be
// recorded as negative input and half a trillion cache reads. A part is
// held to [0, its bound]; parts that each fit but whose sum does not are
// taken as all uncached input, up to the bound, since which is true is
// unknown.
func boundUsage(u llm.Usage, maxIn, maxOut int64) (llm.Usage, string) {
	b := u
	for _, n := range []*int64{&b.InputTokens, &b.CacheWriteTokens, &b.CacheReadTokens} {
		*n = min(max(*n, 0), maxIn)
	}
	if b.InputTokens+b.CacheWriteTokens+b.CacheReadTokens > maxIn {
		b.InputTokens, b.CacheWriteTokens, b.CacheReadTokens = maxIn, 0, 0
	}
	b.CacheWrite1hTokens = min(max(b.CacheWrite1hTokens, 0), b.CacheWriteTokens)
	b.OutputTokens = max(b.OutputTokens, 0)
	if maxOut > 0 {
		b.OutputTokens = min(b.OutputTokens, maxOut)
	}
	if b == u {
		return u, ""
	}
	return b, fmt.Sprintf("the server reported %d uncached input, %d cache write (%d of them 1-hour) and %d cache read tokens and %d output tokens for a request of at most %d input and %d output tokens",
		u.InputTokens, u.CacheWriteTokens, u.CacheWrite1hTokens, u.CacheReadTokens, u.OutputTokens, maxIn, maxOut)
}

// exhaustedError reports that a budget refused a call.
type exhaustedError struct{ msg string }

func (e *exhaustedError) Error() string { return "budget exhausted: " + e.msg }

func isExhausted(err error) bool {
	var e *exhaustedError
	return errors.As(err, &e) || errors.Is(err, budget.ErrExhausted)
}

// priced refuses a call to m when m has no known price and the run has a
// dollar budget: the call would reserve $0 and be billed $0, outside the
// budget. Start refuses such models (hedge targets included) and
// checkModel those a verification names; this holds every call to that
// rule, whatever path led to it (a run resumed under a changed hive.toml).
func (r *run) priced(m *provider.Model) error {
	if !m.PriceKnown && r.spec.BudgetUSD > 0 {
		return fmt.Errorf("model %s has no known price, so it cannot be called under the run's dollar budget", m.Name)
	}
	return nil
}

// worstCase returns the most a request can cost: every prompt byte a token
// and the whole output allowance used. An unpriced model's dollars are
// unknown and held at zero (see [run.priced]).
func worstCase(m *provider.Model, req *llm.Request) (usd price.Amount, tokens int64, err error) {
	in := requestBytes(req)
	out := int64(req.MaxTokens)
	if !m.PriceKnown {
		// Under a dollar budget such a model is refused (run.priced);
		// without one, only tokens and calls are held.
		return 0, in + out, nil
	}
	if req.CacheTTL >= time.Hour {
		return m.Price.WorstCaseHour(in, out), in + out, nil
	}
	return m.Price.WorstCase(in, out), in + out, nil
}

func toolNames(tools []llm.Tool) string {
	names := make([]string, len(tools))
	for i, t := range tools {
		names[i] = t.Name
	}
	return strings.Join(names, ", ")
}

func clip(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}

// redactMessages returns msgs with known secrets replaced: msgs itself when
// none holds one (the usual case, and no copy), else a copy. It guards what
// is sent to a model server, whatever put the secret in the conversation.
func redactMessages(msgs []llm.Message, red *secret.Redactor) []llm.Message {
	if red.Empty() {
		return msgs
	}
	var out []llm.Message
	for i, m := range msgs {
		copied := false
		for j, p := range m.Parts {
			q := redactPart(p, red)
			if q == nil {
				continue
			}
			if out == nil {
				out = append([]llm.Message(nil), msgs...)
			}
			if !copied {
				out[i].Parts = append([]llm.Part(nil), m.Parts...)
				copied = true
			}
			out[i].Parts[j] = q
		}
	}
	if out == nil {
		return msgs
	}
	return out
}

// redactPart returns p with known secrets replaced, or nil when it holds
// none.
func redactPart(p llm.Part, red *secret.Redactor) llm.Part {
	switch p := p.(type) {
	case llm.Text:
		if t := red.String(p.Text); t != p.Text {
			return llm.Text{Text: t}
		}
	case llm.ToolResult:
		if c := red.String(p.Content); c != p.Content {
			p.Content = c
			return p
		}
	case llm.ToolCall:
		if red.Contains(p.Input) {
			in := red.Bytes(p.Input)
			if !json.Valid(in) {
				in = json.RawMessage(`{}`)
			}
			p.Input = in
			return p
		}
	}
	return nil
}

// times says n times in words: once, twice, 3 times.
func times(n int) string {
	switch n {
	case 1:
		return "once"
	case 2:
		return "twice"
	}
	return fmt.Sprintf("%d times", n)
}

// plural says n things: "1 malformed turn", "2 malformed turns".
func plural(n int, thing string) string {
	if n == 1 {
		return "1 " + thing
	}
	return fmt.Sprintf("%d %ss", n, thing)
}
