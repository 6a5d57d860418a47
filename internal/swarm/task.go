package swarm

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"slices"
	"sort"
	"strings"

	"github.com/hive-swarm/hive/internal/journal"
	"github.com/hive-swarm/hive/internal/limit"
	"github.com/hive-swarm/hive/internal/llm"
	"github.com/hive-swarm/hive/internal/mcp"
	"github.com/hive-swarm/hive/internal/price"
	"github.com/hive-swarm/hive/internal/screen"
	"github.com/hive-swarm/hive/internal/verify"
	"github.com/hive-swarm/hive/internal/workspace"
)

// taskResult is what a delegated task returns to the node that delegated
// it, journaled whole so that a resumed run restores the task's subtree
// without running it again.
type taskResult struct {
	ID     string `json:"id"`
	Name   string `json:"name"`
	Status Status `json:"status"`
	Model  string `json:"model"`
	Tier   int    `json:"tier"`
	// Report is the worker's report, capped; ReportArtifact holds the whole
	// report when the cap cut it.
	Report         string   `json:"report,omitempty"`
	ReportArtifact string   `json:"report_artifact,omitempty"`
	Artifacts      []string `json:"artifacts,omitempty"`
	// Patch is the artifact of the worker's changes to the workspace
	// (NODE/patch), and PatchSummary what it changes.
	Patch        string          `json:"patch,omitempty"`
	PatchSummary string          `json:"patch_summary,omitempty"`
	Error        string          `json:"error,omitempty"`
	Verdict      *verify.Verdict `json:"verdict,omitempty"`
	// Attempts counts model conversations spent on the task (repairs are
	// counted in each node's Attempt).
	Attempts  int       `json:"attempts"`
	Nodes     []Node    `json:"nodes,omitempty"`
	CostNanos int64     `json:"cost_nanos"`
	Usage     llm.Usage `json:"usage"`
}

const workerSystem = `You are a worker in Hive, a swarm of language models. You get one task and nothing else: do it, then call submit with your report (and artifacts such as code, by name). ` +
	`Reports are read by the lead model that assigned the task, so be complete but brief. ` +
	`Always answer by calling a tool. Use run_code to test code before you submit it.`

// runTask runs a delegated task to its end: a worker conversation on the
// task's tier, its verification, repairs, and escalation up the tiers. It
// returns the result the delegating node sees.
func (r *run) runTask(ctx context.Context, ns *nodeState, t TaskSpec, steps stepper) taskResult {
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	r.mu.Lock()
	ns.cancel = cancel
	r.mu.Unlock()
	stopWork := context.AfterFunc(r.workCtx, func() { cancel(context.Cause(r.workCtx)) })
	defer stopWork()

	res := r.ladder(ctx, ns, t, steps)
	nodes := r.subtree(ns.ID)
	res.Nodes = nodes
	for _, n := range nodes {
		res.CostNanos += int64(n.Cost)
		res.Usage = res.Usage.Add(n.Usage)
	}
	return res
}

func (r *run) ladder(ctx context.Context, ns *nodeState, t TaskSpec, steps stepper) taskResult {
	tier := 0
	if t.Tier != nil {
		tier = min(max(*t.Tier, 0), len(r.spec.Tiers)-1)
	}
	cur := ns
	history := ""
	var earlier []verify.Answer
	var unconfirmed *taskResult // the latest result that failed confirmation only
	attempts := 0
	for {
		attempts++
		res, sub, escalate := r.attempt(ctx, cur, t, history, earlier, steps)
		res.Attempts = attempts
		// A result that passed its checks but found no confirmation, or
		// that could not be checked, beats one that failed outright.
		onlyUnconfirmed := escalate && res.Verdict != nil && (res.Verdict.Unconfirmed || res.Verdict.Outcome == verify.Unsure)
		if !escalate || tier+1 >= len(r.spec.Tiers) {
			if escalate && !onlyUnconfirmed && unconfirmed != nil {
				// Every tier failed: what passed every check but found no
				// confirmation beats what failed a check outright.
				unconfirmed.Attempts = attempts
				return *unconfirmed
			}
			return res
		}
		if onlyUnconfirmed {
			unconfirmed = &res
		}
		// Still failing after its repairs: move the task up a tier, with
		// the evidence that helps.
		r.setStatus(cur, StatusEscalated, "")
		switch {
		case t.FreshEscalation:
		case res.Verdict != nil && res.Verdict.Outcome == verify.Unsure:
			history += fmt.Sprintf("\n\nAn earlier attempt by %s could not be verified. Its submission:\n%s\n\nThe verifier said:\n%s",
				cur.Model, clip(res.Report, 4000), evidenceOf(res.Verdict))
		default:
			history += fmt.Sprintf("\n\nAn earlier attempt by %s failed verification after %d repairs. Its last submission:\n%s\n\nThe verifier said:\n%s",
				cur.Model, max(r.spec.Repairs, 0), clip(res.Report, 4000), evidenceOf(res.Verdict))
		}
		if sub != nil {
			earlier = append(earlier, verify.Answer{Model: sub.Model, Report: sub.Report, Artifacts: sub.Artifacts})
			if diff := sub.Artifacts[patchName]; diff != "" && r.ws != nil {
				history += fmt.Sprintf("\n\nIts patch (not applied: you start from the workspace as it is):\n%s", clip(diff, 8000))
			}
		}
		tier++
		cur = r.escalationNode(cur, r.spec.Tiers[tier], tier)
	}
}

// attempt runs one worker conversation with its repairs. It returns the
// last submission (nil when there was none), and escalate reports that
// verification still fails. earlier are the earlier tiers' answers.
func (r *run) attempt(ctx context.Context, ns *nodeState, t TaskSpec, history string, earlier []verify.Answer, steps stepper) (res taskResult, sub *verify.Submission, escalate bool) {
	res = taskResult{ID: ns.ID, Name: t.Name, Model: ns.Model, Tier: ns.Tier}
	fail := func(s Status, err error) (taskResult, *verify.Submission, bool) {
		res.Status = s
		res.Error = err.Error()
		r.setStatus(ns, s, res.Error)
		return res, sub, false
	}
	m, err := r.e.models.Get(ns.Model)
	if err != nil {
		return fail(StatusFailed, err)
	}
	if err := r.acquire(ctx); err != nil {
		return fail(StatusCancelled, err)
	}
	defer r.release()
	r.setStatus(ns, StatusRunning, "")
	ctx = r.startNode(ctx, ns, m, r.node(ns.Parent))
	defer r.endNode(ns)

	a := &agent{r: r, ns: ns, model: m, prio: limit.Worker, steps: steps, bud: r.pool, wave: t.wave, batch: r.spec.batched(ns.Tier) && m.Batch != nil}
	// The shared part first and unchanging (tools, system, the wave's
	// context), then the task: see cache.go.
	a.req = llm.Request{System: t.wave.system(r.workerSystem()), MaxTokens: r.spec.CallTokens, Tools: r.workerTools(ns.Depth, ns.Model),
		CacheSystem: true, CacheKey: t.wave.cacheKey()}
	if r.e.opts.NoPromptCache {
		a.req.CacheSystem, a.req.CacheKey, a.wave = false, "", nil
	}
	mcpTools := r.mcpToolsFor(ctx, ns, mcp.RoleWorker, ns.Model)
	a.req.Tools = append(a.req.Tools, mcpTools...)
	prompt := taskPrompt(t)
	if r.ws != nil && t.Verify != nil && t.Verify.Trusted != nil {
		prompt += fmt.Sprintf(" The check %s runs in a copy of the workspace with your changes.", t.Verify.Trusted.Name)
	}
	a.msgs = []llm.Message{llm.UserText(prompt + history)}
	// A worker's changes to the workspace: its own overlay, which its
	// repairs continue in (see files.go).
	var ov *workspace.Overlay
	var tree Tree
	if r.ws != nil {
		ov = r.ws.NewOverlay()
		tree = ov
	}
	codeRuns, toolRuns, submits := 0, 0, 0
	rule := r.policy().workerRule(ns.Model)
	a.handle = func(ctx context.Context, c llm.ToolCall) toolOutcome {
		if !rule.allowsTool(c.Name) {
			return toolOutcome{content: fmt.Sprintf("tool %q is not allowed here (%s.tools); your tools are: %s", c.Name, rule.Key, toolNames(a.req.Tools)), isErr: true}
		}
		switch c.Name {
		case toolSubmit:
			var args submitArgs
			if err := decodeArgs(c, &args); err != nil {
				return toolOutcome{content: err.Error(), isErr: true, malformed: true}
			}
			if strings.TrimSpace(args.Report) == "" && len(args.Artifacts) == 0 {
				return toolOutcome{content: "submit needs a report", isErr: true, malformed: true}
			}
			for name := range args.Artifacts {
				if err := checkArtifactName(name); err != nil {
					return toolOutcome{content: err.Error(), isErr: true, malformed: true}
				}
			}
			submits++
			next := &verify.Submission{Task: t.Instructions, Report: args.Report, Artifacts: args.Artifacts, Model: ns.Model}
			if ov != nil {
				if err := withPatch(ov, next); err != nil {
					return toolOutcome{content: "your changes could not be read back as a patch: " + r.e.opts.Redact.String(err.Error()), isErr: true}
				}
			}
			// The report, its artifacts and the patch of its changes
			// (what hive apply would write) are screened together.
			if out, refused := r.screenReport(ctx, ns, fmt.Sprintf("%s/report-%d-%d", ns.ID, ns.Attempt, submits), submittedText(submitArgs{Report: next.Report, Artifacts: next.Artifacts})); refused {
				sub = nil
				return out
			}
			sub = next
			return toolOutcome{content: "submitted", done: true}
		case toolRunCode:
			var args runCodeArgs
			if err := decodeArgs(c, &args); err != nil {
				return toolOutcome{content: err.Error(), isErr: true, malformed: true}
			}
			codeRuns++
			out, isErr := r.runCode(ctx, ns, fmt.Sprintf("%s/code-%d-%d", ns.ID, ns.Attempt, codeRuns), args, tree)
			return toolOutcome{content: out, isErr: isErr}
		case toolDelegate:
			if ns.Depth >= r.spec.MaxDepth {
				break
			}
			var args delegateArgs
			if err := decodeArgs(c, &args); err != nil {
				return toolOutcome{content: err.Error(), isErr: true, malformed: true}
			}
			return r.delegateNested(ctx, ns, args, steps)
		default:
			switch {
			case ov != nil && isFileTool(c.Name):
				toolRuns++
				return r.fileTool(ctx, ns, fmt.Sprintf("%s/tool-%d-%d", ns.ID, ns.Attempt, toolRuns), ov, c, rule)
			case offered(mcpTools, c.Name):
				toolRuns++
				return r.mcpCall(ctx, ns, fmt.Sprintf("%s/tool-%d-%d", ns.ID, ns.Attempt, toolRuns), c)
			}
		}
		return toolOutcome{content: fmt.Sprintf("unknown tool %q; your tools are: %s", c.Name, toolNames(a.req.Tools)), isErr: true, malformed: true}
	}

	if m.Plain {
		// A model without tool calling: its text answer is its report,
		// and fenced code in it the "code" artifact.
		a.req.Tools = nil
		a.plain = func(text string) toolOutcome {
			if strings.TrimSpace(text) == "" {
				return toolOutcome{content: "the answer is empty", malformed: true}
			}
			submits++
			if out, refused := r.screenReport(ctx, ns, fmt.Sprintf("%s/report-%d-%d", ns.ID, ns.Attempt, submits), text); refused {
				return out
			}
			sub = &verify.Submission{Task: t.Instructions, Report: text, Model: ns.Model}
			if code, ok := verify.ExtractCode(text); ok {
				sub.Artifacts = map[string]string{"code": code}
			}
			return toolOutcome{done: true}
		}
		a.msgs = []llm.Message{llm.UserText(plainPrompt(t) + history)}
	}
	for repair := 0; ; repair++ {
		err := a.loop(ctx)
		if err != nil {
			if ctx.Err() != nil {
				cause := context.Cause(ctx)
				return fail(StatusCancelled, cause)
			}
			if isExhausted(err) {
				r.exhausted(err)
				return fail(StatusCancelled, err)
			}
			return fail(StatusFailed, err)
		}
		report, artifactID, names := r.report(ctx, ns, sub)
		res.Report, res.ReportArtifact, res.Artifacts = report, artifactID, names
		res.Patch, res.PatchSummary = "", ""
		if diff, ok := sub.Artifacts[patchName]; ok && ov != nil {
			res.Patch, res.PatchSummary = ns.ID+"/"+patchName, PatchSummary(diff)
		}
		// A gate only decides escalation: at the top tier there is nothing
		// to escalate to, so it would be paid for and change nothing.
		if t.Verify == nil || (t.Verify.Gate && ns.Tier >= len(r.spec.Tiers)-1) {
			res.Status = StatusDone
			r.update(ns, func(n *Node) { n.Status, n.Report, n.Ended = StatusDone, report, now() })
			return res, sub, false
		}
		r.setStatus(ns, StatusVerifying, "")
		sub.Earlier, sub.Fresh = earlier, t.FreshEscalation
		spec := *t.Verify
		if spec.Net && ns.Tier >= len(r.spec.Tiers)-1 {
			// Nothing is above: the vote could move the answer nowhere, so
			// no samples are bought for it; the tests still decide whether
			// an earlier answer that passed them is preferred.
			spec.N = 0
		}
		v := r.verify(ctx, ns, fmt.Sprintf("%s/verify-%d", ns.ID, repair), spec, *sub, tree)
		res.Verdict = &v
		r.update(ns, func(n *Node) { n.Verdict = &v })
		r.publish(Event{Type: EventVerdict, Node: ptr(ns.snapshot(r)), Text: v.Outcome})
		top := ns.Tier >= len(r.spec.Tiers)-1
		policy := t.Verify.UnsurePolicy()
		if v.Outcome == verify.Pass || v.Outcome == verify.Unsure && (policy == verify.OnUnsureAccept || policy == verify.OnUnsureEscalate && top) {
			// Passed; or unsure, and the policy lets it stand: the verdict
			// stays on the node, counted as unsure.
			res.Status = StatusDone
			r.update(ns, func(n *Node) { n.Status, n.Report, n.Ended = StatusDone, report, now() })
			return res, sub, false
		}
		if v.Outcome == verify.Unsure && policy == verify.OnUnsureEscalate {
			// The check could not tell: no repair would help, a stronger
			// model's answer might be checkable.
			res.Status = StatusFailed
			res.Error = "could not be verified: " + clip(v.Evidence, 500)
			r.update(ns, func(n *Node) { n.Status, n.Report, n.Error, n.Ended = StatusFailed, report, res.Error, now() })
			return res, sub, true
		}
		if repair >= max(r.spec.Repairs, 0) {
			res.Status = StatusFailed
			res.Error = "failed verification: " + clip(v.Evidence, 500)
			r.update(ns, func(n *Node) { n.Status, n.Report, n.Error, n.Ended = StatusFailed, report, res.Error, now() })
			return res, sub, true
		}
		r.update(ns, func(n *Node) { n.Status = StatusRepairing; n.Attempt++ })
		a.reject("Verification failed. Fix your work and submit again.\n" + evidenceOf(&v))
		r.setStatus(ns, StatusRunning, "")
	}
}

func (ns *nodeState) snapshot(r *run) Node {
	r.mu.Lock()
	defer r.mu.Unlock()
	return ns.Node
}

func ptr[T any](v T) *T { return &v }

func evidenceOf(v *verify.Verdict) string {
	if v == nil {
		return ""
	}
	return fmt.Sprintf("[%s verifier: %s]\n%s", v.Verifier, v.Outcome, v.Evidence)
}

func taskPrompt(t TaskSpec) string {
	var b strings.Builder
	fmt.Fprintf(&b, "Task %q:\n%s", t.Name, t.Instructions)
	if len(t.OutputSchema) > 0 {
		fmt.Fprintf(&b, "\n\nYour report must be JSON matching this schema:\n%s", t.OutputSchema)
	}
	if t.Verify != nil {
		switch t.Verify.Kind {
		case verify.KindTests:
			fmt.Fprintf(&b, "\n\nYour result will be checked by running these tests against the code you submit (put the code in an artifact named \"code\", or as the whole report):\n%s", t.Verify.Code)
		case verify.KindCross:
			fmt.Fprintf(&b, "\n\nYour result will be checked by running these tests against the code you submit (put the code in an artifact named \"code\", or as the whole report), then by comparing its results with independent solutions on inputs like theirs:\n%s", t.Verify.Code)
		default:
			fmt.Fprintf(&b, "\n\nYour result will be checked (%s).", t.Verify.Kind)
		}
	}
	return b.String()
}

// plainPrompt is the task as a model without tools sees it: the
// instructions alone, so that models matched by question (recorded
// answers) and plain completion models get the question as asked.
func plainPrompt(t TaskSpec) string { return t.Instructions }

func (r *run) workerTools(depth int, model string) []llm.Tool {
	tools := []llm.Tool{submitTool, runCodeTool}
	if depth < r.spec.MaxDepth {
		tools = append(tools, delegateTool)
	}
	if r.ws != nil {
		tools = append(tools, workspaceTools...)
	}
	rule := r.policy().workerRule(model)
	return slices.DeleteFunc(tools, func(t llm.Tool) bool { return !rule.allowsTool(t.Name) })
}

// workerSystem is a worker's system prompt: the same for every worker of
// a run, so that providers' prompt caches hold it.
func (r *run) workerSystem() string {
	if r.ws != nil {
		return workerSystem + workspaceNote
	}
	return workerSystem
}

// report stores a submission's artifacts and caps its report: a report
// over ReportCap tokens (about 4 bytes each) is cut, and the whole of it
// becomes an artifact that the cut report names.
func (r *run) report(ctx context.Context, ns *nodeState, sub *verify.Submission) (report, artifactID string, names []string) {
	keys := make([]string, 0, len(sub.Artifacts))
	for k := range sub.Artifacts {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		id := ns.ID + "/" + k
		if err := r.e.store.PutArtifact(ctx, r.id, id, ns.ID, k, []byte(sub.Artifacts[k])); err != nil {
			r.e.log.Warn("store artifact", "run", r.id, "artifact", id, "err", err)
			continue
		}
		names = append(names, id)
		r.publish(Event{Type: EventArtifact, Text: id})
	}
	report = sub.Report
	limit := r.spec.ReportCap * 4
	if len(report) > limit {
		artifactID = ns.ID + "/report"
		if err := r.e.store.PutArtifact(ctx, r.id, artifactID, ns.ID, "report", []byte(report)); err == nil {
			r.publish(Event{Type: EventArtifact, Text: artifactID})
			report = cutUTF8(report, limit) + fmt.Sprintf("\n[report cut at %d of %d bytes: read the whole of it with read_artifact id=%q]", limit, len(sub.Report), artifactID)
		}
	}
	return report, artifactID, names
}

func cutUTF8(s string, n int) string {
	if n >= len(s) {
		return s
	}
	for n > 0 && n < len(s) && s[n]&0xC0 == 0x80 {
		n--
	}
	return s[:n]
}

// acquire takes a worker slot (MaxWorkers in flight).
func (r *run) acquire(ctx context.Context) error {
	select {
	case r.slots <- struct{}{}:
		r.tel().WorkerStarted()
		return nil
	case <-ctx.Done():
		return context.Cause(ctx)
	}
}

func (r *run) release() {
	<-r.slots
	r.tel().WorkerDone()
}

// delegateNested runs a worker's own delegation (depth > 1): the children
// run as goroutines of this task, journaled by their deterministic ids; the
// worker gives up its slot while it waits so that its children can run.
func (r *run) delegateNested(ctx context.Context, parent *nodeState, args delegateArgs, steps stepper) toolOutcome {
	if len(args.Tasks) == 0 {
		return toolOutcome{content: "delegate needs at least one task", isErr: true, malformed: true}
	}
	if err := r.checkTasks(args.Tasks); err != nil {
		return toolOutcome{content: err.Error(), isErr: true}
	}
	if _, err := r.screenOut(parent, screen.Task, "delegated tasks", delegatedText(args)); err != nil {
		return toolOutcome{content: err.Error() + ". No task was started.", isErr: true}
	}
	kids := make([]*nodeState, len(args.Tasks))
	for i, t := range args.Tasks {
		kids[i] = r.newNode(parent.ID, RoleWorker, t.Name, r.tierModel(t.Tier), tierOf(t.Tier, len(r.spec.Tiers)), parent.Depth+1)
	}
	w := newWave(r.id, r.spec.Task, kids[0].ID, args)
	for i := range args.Tasks {
		args.Tasks[i].wave = w
	}
	r.release()
	results := make([]taskResult, len(kids))
	for i, k := range kids {
		r.launch(k, args.Tasks[i])
	}
	for i, k := range kids {
		select {
		case <-k.done:
			results[i] = *k.result
		case <-ctx.Done():
			r.acquire(context.WithoutCancel(ctx))
			return toolOutcome{content: "cancelled while waiting for sub-tasks", isErr: true}
		}
	}
	// The slot is taken back whatever ctx says: the caller releases it.
	r.acquire(context.WithoutCancel(ctx))
	if ctx.Err() != nil {
		return toolOutcome{content: "cancelled while waiting for sub-tasks", isErr: true}
	}
	return toolOutcome{content: reportsJSON(results)}
}

func tierOf(t *int, n int) int {
	if t == nil {
		return 0
	}
	return min(max(*t, 0), n-1)
}

func (r *run) tierModel(t *int) string { return r.spec.Tiers[tierOf(t, len(r.spec.Tiers))] }

// launch runs a task in a goroutine of the run. A task whose result is
// journaled (a resumed run) is restored from the journal; any other runs,
// and its result is journaled unless the run itself is stopping (the task
// must then run again when the run resumes).
func (r *run) launch(ns *nodeState, t TaskSpec) {
	r.wg.Add(1)
	go func() {
		defer r.wg.Done()
		key := "task/" + ns.ID
		if data, ok, err := r.journaled(key); err == nil && ok {
			var res taskResult
			if json.Unmarshal(data, &res) == nil {
				r.finishTask(ns, res, true)
				return
			}
		}
		res := r.runTask(r.workCtx, ns, t, memoStepper{r: r})
		if r.workCtx.Err() == nil {
			// Not waited for: each of the task's calls is journaled, so a
			// lost task result costs a replay, not a model call.
			data, _ := json.Marshal(res)
			r.e.store.PutStepAsync(r.id, key, data)
		}
		r.finishTask(ns, res, false)
	}()
}

// finishTask records a task's end on its node: from this process's run
// (restored false) or from the journal of an earlier process (restored
// true: its subtree is put back and its cost charged once).
func (r *run) finishTask(ns *nodeState, res taskResult, restored bool) {
	r.mu.Lock()
	if ns.result != nil {
		r.mu.Unlock()
		return
	}
	ns.result = &res
	r.mu.Unlock()
	if restored {
		r.restore(res.Nodes)
		r.mu.Lock()
		r.cost += price.Amount(res.CostNanos)
		r.usage = r.usage.Add(res.Usage)
		r.mu.Unlock()
		var calls int64
		for _, n := range res.Nodes {
			calls += int64(n.Calls)
		}
		r.pool.Charge(price.Amount(res.CostNanos), res.Usage.Total(), calls)
	}
	close(ns.done)
	r.broadcast()
}

// changed returns a channel closed at the next end of any task.
func (r *run) changed() <-chan struct{} {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.change
}

func (r *run) broadcast() {
	r.mu.Lock()
	close(r.change)
	r.change = make(chan struct{})
	r.mu.Unlock()
}

// reportsJSON renders task results as the lead reads them: a JSON array,
// one report a line. Not indented further: indentation is tokens the lead
// pays for on every report. HTML characters stay as they are: reports hold
// code, and "a < b" must reach the lead as written.
func reportsJSON(results []taskResult) string {
	type view struct {
		ID             string          `json:"id"`
		Name           string          `json:"name"`
		Status         Status          `json:"status"`
		Model          string          `json:"model"`
		Report         string          `json:"report,omitempty"`
		ReportArtifact string          `json:"report_artifact,omitempty"`
		Artifacts      []string        `json:"artifacts,omitempty"`
		Patch          string          `json:"patch,omitempty"`
		Verdict        *verify.Verdict `json:"verdict,omitempty"`
		Error          string          `json:"error,omitempty"`
	}
	var line bytes.Buffer
	enc := json.NewEncoder(&line)
	enc.SetEscapeHTML(false)
	out := make([]byte, 0, 256*len(results)+4)
	out = append(out, '[')
	for i, r := range results {
		if i > 0 {
			out = append(out, ',')
		}
		line.Reset()
		// Cannot fail: strings, a string slice and a Verdict of strings.
		patch := ""
		if r.Patch != "" {
			patch = r.Patch + " (" + r.PatchSummary + ")"
		}
		enc.Encode(view{r.ID, r.Name, r.Status, r.Model, r.Report, r.ReportArtifact, r.Artifacts, patch, r.Verdict, r.Error})
		out = append(out, '\n')
		out = append(out, bytes.TrimSuffix(line.Bytes(), []byte("\n"))...)
	}
	out = append(out, "\n]"...)
	return string(out)
}

var errCodeUnavailable = errors.New("code execution is not available in this run")

// artifactName is what a worker may name an artifact: a plain name, since
// it becomes NODE/NAME beside the ids Hive gives its own artifacts.
var artifactName = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$`)

// checkArtifactName refuses a name a worker may not give an artifact:
// one with a slash or other characters, or the report's, which Hive keeps
// for its own. (A "patch" of the worker's is replaced by the patch of its
// changes when it works on a workspace, and only those are ever merged.)
func checkArtifactName(name string) error {
	if !artifactName.MatchString(name) {
		return fmt.Errorf("artifact name %q: use letters, digits, '.', '_' and '-' (at most 64), no slashes", name)
	}
	if name == "report" {
		return fmt.Errorf("artifact name %q is Hive's own; pick another", name)
	}
	return nil
}

// screenReport screens a worker's report against the policy: every
// finding is journaled on the node; a blocking one refuses the report,
// and the worker is told which rule and to submit again without it; a
// holding one waits for a person (under the key id), who allows the
// report or refuses it the same way.
func (r *run) screenReport(ctx context.Context, ns *nodeState, id, report string) (toolOutcome, bool) {
	fs, err := r.e.opts.Screen.Refuse(screen.Report, report)
	for _, f := range fs {
		r.mu.Lock()
		n := ns.Node
		r.mu.Unlock()
		r.publish(Event{Type: EventScreen, Node: &n, Text: "report: " + f.String() + ", " + string(f.Action)})
	}
	if err != nil {
		return toolOutcome{content: err.Error() + ". Submit again without it.", isErr: true}, true
	}
	for _, f := range fs {
		if f.Action != screen.Hold {
			continue
		}
		a, err := r.awaitApproval(ctx, ns, id, "report", fmt.Sprintf("a report of %s, held by the policy's %s:\n%s", ns.ID, f, report))
		if err != nil {
			return toolOutcome{content: "the report was not judged: " + err.Error(), isErr: true}, true
		}
		if a.Status != journal.ApprovalApproved {
			return toolOutcome{content: fmt.Sprintf("the report was refused (policy rule %s held it for a person; %s). Submit again without what the rule matched.", f.Rule, refusal(a)), isErr: true}, true
		}
		break
	}
	return toolOutcome{}, false
}

// screenOut screens text leaving node ns as where (labelled label in the
// record): what a model delegates, answers or sends to a tool. Every
// finding is journaled on the node; a blocking one is returned, for the
// model to be told. Holds wait for a person only where the caller asks
// (tool calls): a delegated task comes from a task a person may already
// have approved, and an answer is the run's end.
func (r *run) screenOut(ns *nodeState, where screen.Where, label, text string) ([]screen.Finding, error) {
	fs, err := r.e.opts.Screen.Refuse(where, text)
	for _, f := range fs {
		r.mu.Lock()
		n := ns.Node
		r.mu.Unlock()
		r.publish(Event{Type: EventScreen, Node: &n, Text: label + ": " + f.String() + ", " + string(f.Action)})
	}
	return fs, err
}

// delegatedText is what a delegate call hands workers, for the screen:
// the shared context and each task's instructions.
func delegatedText(args delegateArgs) string {
	var b strings.Builder
	b.WriteString(args.Context)
	for _, t := range args.Tasks {
		b.WriteString("\n[task " + t.Name + "]\n")
		b.WriteString(t.Instructions)
	}
	return b.String()
}

// submittedText is what a submission carries for the screen: its report
// and each artifact, in the order of their names.
func submittedText(args submitArgs) string {
	if len(args.Artifacts) == 0 {
		return args.Report
	}
	names := make([]string, 0, len(args.Artifacts))
	for n := range args.Artifacts {
		names = append(names, n)
	}
	sort.Strings(names)
	var b strings.Builder
	b.WriteString(args.Report)
	for _, n := range names {
		b.WriteString("\n[artifact " + n + "]\n")
		b.WriteString(args.Artifacts[n])
	}
	return b.String()
}
