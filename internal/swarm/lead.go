package swarm

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/dbos-inc/dbos-transact-golang/dbos"

	"github.com/hive-swarm/hive/internal/budget"
	"github.com/hive-swarm/hive/internal/limit"
	"github.com/hive-swarm/hive/internal/llm"
	"github.com/hive-swarm/hive/internal/mcp"
	"github.com/hive-swarm/hive/internal/screen"
)

const leadSystem = `You are the lead of Hive, a swarm of language models. Split the user's job into tasks, dispatch them to workers with delegate (they run in parallel; each sees only its own instructions), read their reports as they arrive (await), cancel what is no longer needed, read artifacts that reports reference (read_artifact), and end with finish, giving the final answer. ` +
	`Workers are cheaper than you: give them the work. Always answer by calling a tool.`

// leadLoop runs the lead's conversation on the workflow's goroutine: its
// model calls are DBOS steps and its delegations DBOS Go steps, issued in
// an order that depends only on journaled results, so a resumed run
// replays them deterministically.
func (r *run) leadLoop(dctx dbos.Context) (answer string, err error) {
	spec := r.spec
	lead := r.newNode("", RoleLead, "lead", spec.Lead, len(spec.Tiers), 0)
	m, err := r.e.models.Get(spec.Lead)
	if err != nil {
		r.setStatus(lead, StatusFailed, err.Error())
		return "", err
	}
	r.setStatus(lead, StatusRunning, "")
	// The lead's span is under the run's; its calls and tools under it.
	if r.tel().Tracing() {
		dctx = dbos.From(dctx, r.startNode(dctx, lead, m, nil))
	}
	defer r.endNode(lead)
	steps := dbosStepper{dctx: dctx}
	a := &agent{r: r, ns: lead, model: m, prio: limit.Lead, steps: steps, bud: r.pool}
	a.req = leadRequest(spec)
	a.req.CacheKey = r.id + "/lead"
	if r.e.opts.NoPromptCache {
		a.req.CacheSystem, a.req.CacheKey = false, ""
	}
	if spec.Workspace != "" {
		for i, t := range a.req.Tools {
			if t.Name == toolFinish {
				a.req.Tools[i] = finishPatchesTool
			}
		}
	}
	mcpTools := r.mcpToolsFor(dctx, lead, mcp.RoleLead, spec.Lead)
	a.req.Tools = append(a.req.Tools, mcpTools...)
	a.msgs, a.req.Messages = a.req.Messages, nil

	// Once any budget is exhausted the workers stop, and the lead's next
	// turn is its final one.
	a.check = func() error {
		if r.cancelled.Load() {
			return errors.New("run cancelled")
		}
		r.mu.Lock()
		defer r.mu.Unlock()
		if r.exhaustErr != nil {
			return &exhaustedError{msg: r.exhaustErr.Error()}
		}
		return nil
	}
	var finished *finishArgs
	awaits, merges, toolRuns := 0, 0, 0
	a.handle = func(ctx context.Context, c llm.ToolCall) toolOutcome {
		switch c.Name {
		case toolDelegate:
			var args delegateArgs
			if err := decodeArgs(c, &args); err != nil {
				return toolOutcome{content: err.Error(), isErr: true, malformed: true}
			}
			return r.delegate(dctx, lead, args)
		case toolAwait:
			var args awaitArgs
			if err := decodeArgs(c, &args); err != nil {
				return toolOutcome{content: err.Error(), isErr: true, malformed: true}
			}
			awaits++
			return r.await(dctx, fmt.Sprintf("lead/await-%d", awaits), args)
		case toolCancel:
			var args cancelArgs
			if err := decodeArgs(c, &args); err != nil {
				return toolOutcome{content: err.Error(), isErr: true, malformed: true}
			}
			return r.cancelNodes(args)
		case toolReadArtifact:
			var args readArtifactArgs
			if err := decodeArgs(c, &args); err != nil {
				return toolOutcome{content: err.Error(), isErr: true, malformed: true}
			}
			return r.readArtifact(ctx, args)
		case toolFinish:
			var args finishArgs
			if err := decodeArgs(c, &args); err != nil {
				return toolOutcome{content: err.Error(), isErr: true, malformed: true}
			}
			if _, err := r.screenOut(lead, screen.Report, "answer", args.Answer); err != nil {
				return toolOutcome{content: err.Error() + ". Finish again without it.", isErr: true}
			}
			if r.ws == nil {
				finished = &args
				return toolOutcome{content: "finished", done: true}
			}
			merges++
			out, note, refused := r.mergePatches(ctx, fmt.Sprintf("lead/merge-%d", merges), args.Patches, a.final)
			if refused {
				return toolOutcome{content: out, isErr: true}
			}
			args.Answer += note
			finished = &args
			return toolOutcome{content: out, done: true}
		default:
			if offered(mcpTools, c.Name) {
				toolRuns++
				return r.mcpCall(ctx, lead, fmt.Sprintf("lead/tool-%d", toolRuns), c)
			}
		}
		return toolOutcome{content: fmt.Sprintf("unknown tool %q; your tools are: %s", c.Name, toolNames(a.req.Tools)), isErr: true, malformed: true}
	}

	err = a.loop(dctx)
	if err != nil && isExhausted(err) && finished == nil {
		// The budget is spent: stop the workers and give the lead a final
		// turn, paid from the reserve, to answer with what it has.
		r.exhausted(err)
		err = r.finalTurn(dctx, a, &finished)
	}
	r.stopWork(errRunOver)
	r.drain()
	if err != nil {
		r.setStatus(lead, StatusFailed, err.Error())
		return "", err
	}
	answer = finished.Answer
	r.update(lead, func(n *Node) { n.Status, n.Report, n.Ended = StatusDone, answer, now() })
	return answer, nil
}

// leadRequest is the lead's first request.
func leadRequest(spec Spec) llm.Request {
	return llm.Request{
		System:      leadSystem,
		CacheSystem: true,
		MaxTokens:   spec.CallTokens,
		Tools:       []llm.Tool{delegateTool, awaitTool, cancelTool, readArtifactTool, finishTool},
		Messages:    []llm.Message{llm.UserText(spec.Task + fmt.Sprintf("\n\n(Worker tiers, cheapest first: %s.)", strings.Join(spec.Tiers, ", ")) + checksNote(spec) + workspaceLeadNote(spec))},
	}
}

// checksNote tells the lead the checks a verify may name.
func checksNote(spec Spec) string {
	if len(spec.Checks) == 0 {
		return ""
	}
	names := make([]string, 0, len(spec.Checks))
	for n := range spec.Checks {
		names = append(names, n)
	}
	slices.Sort(names)
	return fmt.Sprintf("\n(Checks a task's verify may name, {kind: command, check: NAME}: %s.)", strings.Join(names, ", "))
}

// finalTurn asks the lead, with only the finish tool, for its answer, paid
// from the whole budget (the lead's reserve included).
func (r *run) finalTurn(dctx dbos.Context, a *agent, finished **finishArgs) error {
	if len(a.pending) > 0 {
		a.msgs = append(a.msgs, llm.Message{Role: llm.RoleUser, Parts: a.pending})
		a.pending = nil
	}
	note := llm.Text{Text: "The run's budget is exhausted and the workers were stopped. Call finish now with the best answer you can give from the reports you have."}
	if n := len(a.msgs); n > 0 && a.msgs[n-1].Role == llm.RoleUser {
		last := a.msgs[n-1]
		last.Parts = append(append([]llm.Part(nil), last.Parts...), note)
		a.msgs[n-1] = last
	} else {
		a.msgs = append(a.msgs, llm.Message{Role: llm.RoleUser, Parts: []llm.Part{note}})
	}
	a.req.Tools = []llm.Tool{finishTool}
	if r.ws != nil {
		a.req.Tools = []llm.Tool{finishPatchesTool}
	}
	a.final = true
	r.fitFinal(a)
	// "required" over the one tool, rather than naming it: servers that
	// take tool_choice only as a string (llama.cpp) ignore a named one.
	a.req.ToolChoice = llm.ToolChoice{Mode: llm.ToolAny}
	a.bud = r.budget
	a.check = nil
	a.maxErrs, a.maxTurns = 1, a.turn+1
	old := a.handle
	a.handle = func(ctx context.Context, c llm.ToolCall) toolOutcome {
		if c.Name != toolFinish {
			return toolOutcome{content: "only finish is available now", isErr: true, malformed: true}
		}
		return old(ctx, c)
	}
	if err := a.loop(dctx); err != nil {
		return fmt.Errorf("budget exhausted, and the lead's final turn failed: %w", err)
	}
	return nil
}

// fitFinal shortens the lead's final request when its worst case does
// not fit what is left of the run's budget (a long conversation, a small
// budget): the conversation becomes the task and the reports it holds,
// each cut to the same length, the longest that the money left pays
// for, and the output cap is lowered only if even no reports would not
// fit. A final turn the budget cannot pay for at all fails as before.
func (r *run) fitFinal(a *agent) {
	left := r.budget.Stats().RemainingUSD
	if left == budget.Unlimited || !a.model.PriceKnown || len(a.msgs) == 0 {
		return
	}
	fits := func(msgs []llm.Message, maxTokens int) bool {
		req := a.req
		req.Messages, req.MaxTokens = msgs, maxTokens
		usd, _, _ := worstCase(a.model, &req)
		return usd <= left
	}
	if fits(a.msgs, a.req.MaxTokens) {
		return
	}
	var reports []string
	longest := 0
	for _, m := range a.msgs[1:] {
		for _, p := range m.Parts {
			if tr, ok := p.(llm.ToolResult); ok && tr.Content != "" {
				reports = append(reports, tr.Content)
				longest = max(longest, len(tr.Content))
			}
		}
	}
	compact := func(n int) []llm.Message {
		var b strings.Builder
		b.WriteString("The run's budget is exhausted and the workers were stopped. What your tools returned during the run follows, each cut to fit the budget left:\n")
		for _, rep := range reports {
			b.WriteString("\n---\n")
			b.WriteString(cutStrings(rep, n))
		}
		b.WriteString("\n---\nCall finish now with the best answer you can give from these.")
		return []llm.Message{a.msgs[0], {Role: llm.RoleUser, Parts: []llm.Part{llm.Text{Text: b.String()}}}}
	}
	maxTokens := a.req.MaxTokens
	for maxTokens > 256 && !fits(compact(0), maxTokens) {
		maxTokens /= 2
	}
	// The longest cut that fits: fits(compact(lo)) holds, hi does not.
	lo, hi := 0, longest+1
	for hi-lo > 1 {
		mid := (lo + hi) / 2
		if fits(compact(mid), maxTokens) {
			lo = mid
		} else {
			hi = mid
		}
	}
	a.msgs, a.req.MaxTokens = compact(lo), maxTokens
	r.e.log.Info("the lead's final turn was cut to fit the budget left", "run", r.id, "reports", len(reports), "each_at_most", lo, "max_tokens", maxTokens)
}

// cutStrings cuts content to n bytes or, when it is JSON (a delegate's
// reports, an await's), each of its strings, so that every report keeps
// its beginning.
func cutStrings(content string, n int) string {
	var v any
	if json.Unmarshal([]byte(content), &v) != nil {
		return cutUTF8(content, n)
	}
	var cut func(v any) any
	cut = func(v any) any {
		switch v := v.(type) {
		case string:
			return cutUTF8(v, n)
		case []any:
			for i := range v {
				v[i] = cut(v[i])
			}
		case map[string]any:
			for k := range v {
				v[k] = cut(v[k])
			}
		}
		return v
	}
	out, err := json.Marshal(cut(v))
	if err != nil {
		return cutUTF8(content, n)
	}
	return string(out)
}

// delegate starts tasks, in the order given, and with wait returns their
// reports once all are done.
func (r *run) delegate(dctx dbos.Context, lead *nodeState, args delegateArgs) toolOutcome {
	if len(args.Tasks) == 0 {
		return toolOutcome{content: "delegate needs at least one task", isErr: true, malformed: true}
	}
	if err := r.checkTasks(args.Tasks); err != nil {
		return toolOutcome{content: err.Error(), isErr: true}
	}
	if _, err := r.screenOut(lead, screen.Task, "delegated tasks", delegatedText(args)); err != nil {
		return toolOutcome{content: err.Error() + ". No task was started.", isErr: true}
	}
	kids := make([]*nodeState, len(args.Tasks))
	ids := make([]string, len(args.Tasks))
	var w *wave
	for i, t := range args.Tasks {
		k := r.newNode(lead.ID, RoleWorker, t.Name, r.tierModel(t.Tier), tierOf(t.Tier, len(r.spec.Tiers)), 1)
		if w == nil {
			w = newWave(r.id, r.spec.Task, k.ID, args)
		}
		t.wave = w
		kids[i], ids[i] = k, k.ID
		r.launch(k, t)
	}
	if args.Wait != nil && !*args.Wait {
		return toolOutcome{content: jsonText(map[string][]string{"started": ids})}
	}
	results := make([]taskResult, len(kids))
	for i, k := range kids {
		<-k.done
		results[i] = *k.result
	}
	return toolOutcome{content: reportsJSON(results)}
}

// drain waits for every launched task to end.
func (r *run) drain() { r.wg.Wait() }

type awaitRecord struct {
	Done []string `json:"done"`
}

// await waits for tasks, all or any, within a timeout. Which tasks had
// ended is a journaled step, so that a resumed lead sees the same reports.
func (r *run) await(dctx dbos.Context, key string, args awaitArgs) toolOutcome {
	if len(args.IDs) == 0 {
		return toolOutcome{content: "await needs ids", isErr: true, malformed: true}
	}
	nodes := make([]*nodeState, 0, len(args.IDs))
	for _, id := range args.IDs {
		ns := r.node(id)
		if ns == nil || ns.Parent != "lead" {
			return toolOutcome{content: fmt.Sprintf("no task with id %q", id), isErr: true, malformed: true}
		}
		nodes = append(nodes, ns)
	}
	any := args.Mode == "any"
	timeout := time.Duration(args.TimeoutS * float64(time.Second))
	rec, err := dbos.RunAsStep(dctx, func(ctx context.Context) (awaitRecord, error) {
		var timer <-chan time.Time
		if timeout > 0 {
			t := time.NewTimer(timeout)
			defer t.Stop()
			timer = t.C
		}
		for {
			changed := r.changed() // before the scan, so no end is missed
			var done []string
			for _, n := range nodes {
				select {
				case <-n.done:
					done = append(done, n.ID)
				default:
				}
			}
			if len(done) == len(nodes) || (any && len(done) > 0) {
				return awaitRecord{Done: done}, nil
			}
			select {
			case <-changed:
			case <-timer:
				return awaitRecord{Done: done}, nil
			case <-ctx.Done():
				return awaitRecord{Done: done}, nil
			}
		}
	}, dbos.WithStepName(key))
	if err != nil {
		return toolOutcome{content: "await failed: " + err.Error(), isErr: true}
	}
	results := make([]taskResult, 0, len(rec.Done))
	for _, id := range rec.Done {
		ns := r.node(id)
		<-ns.done // journaled as over: its result is (or is being) restored
		results = append(results, *ns.result)
	}
	var still []string
	doneSet := map[string]bool{}
	for _, id := range rec.Done {
		doneSet[id] = true
	}
	for _, n := range nodes {
		if !doneSet[n.ID] {
			still = append(still, n.ID)
		}
	}
	out := reportsJSON(results)
	if len(still) > 0 {
		out += "\nstill running: " + jsonText(still)
	}
	return toolOutcome{content: out}
}

func (r *run) cancelNodes(args cancelArgs) toolOutcome {
	var cancelled []string
	for _, id := range args.IDs {
		ns := r.node(id)
		if ns == nil {
			continue
		}
		r.mu.Lock()
		cancel, over := ns.cancel, ns.result != nil
		r.mu.Unlock()
		if over {
			continue
		}
		if cancel != nil {
			cancel(fmt.Errorf("cancelled by the lead: %s", args.Reason))
		}
		cancelled = append(cancelled, id)
	}
	return toolOutcome{content: jsonText(map[string][]string{"cancelled": cancelled})}
}

func (r *run) readArtifact(ctx context.Context, args readArtifactArgs) toolOutcome {
	_, _, content, err := r.e.store.Artifact(ctx, r.id, args.ID)
	if err != nil {
		return toolOutcome{content: fmt.Sprintf("no artifact %q: %v", args.ID, err), isErr: true, malformed: true}
	}
	lim := args.Limit
	if lim <= 0 || lim > r.spec.ReportCap*4 {
		lim = r.spec.ReportCap * 4
	}
	off := min(max(args.Offset, 0), len(content))
	end := min(off+lim, len(content))
	return toolOutcome{content: fmt.Sprintf("[bytes %d-%d of %d]\n%s", off, end, len(content), content[off:end])}
}

// jsonText renders a small tool result (ids) as JSON for a model to read:
// like reportsJSON, without HTML escaping.
func jsonText(v any) string {
	var b strings.Builder
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	enc.Encode(v)
	return strings.TrimSuffix(b.String(), "\n")
}
