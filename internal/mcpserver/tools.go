package mcpserver

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/google/jsonschema-go/jsonschema"
	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/hive-swarm/hive/internal/journal"
	"github.com/hive-swarm/hive/internal/llm"
	"github.com/hive-swarm/hive/internal/price"
	"github.com/hive-swarm/hive/internal/swarm"
)

// RunSwarmArgs are run_swarm's arguments.
type RunSwarmArgs struct {
	Task       string   `json:"task"`
	Swarm      string   `json:"swarm,omitempty"`
	Lead       string   `json:"lead,omitempty"`
	Tiers      []string `json:"tiers,omitempty"`
	BudgetUSD  *float64 `json:"budget_usd,omitempty"`
	MaxWorkers int      `json:"max_workers,omitempty"`
	Workspace  string   `json:"workspace,omitempty"`
	Wait       *bool    `json:"wait,omitempty"`
}

// RunArgs are the arguments of run_status and cancel_run.
type RunArgs struct {
	RunID string `json:"run_id"`
}

// RunResult is how run_swarm answers: the run's id and, once it ended,
// how (a run that ended without an answer is also a tool error).
type RunResult struct {
	RunID  string `json:"run_id"`
	Status string `json:"status"`
	Answer string `json:"answer,omitempty"`
	Error  string `json:"error,omitempty"`
	// CostUSD is what the run spent so far; BudgetUSD its dollar budget
	// (0: none, bounded by tokens).
	CostUSD   float64 `json:"cost_usd"`
	BudgetUSD float64 `json:"budget_usd"`
	Tokens    Tokens  `json:"tokens"`
	// Workspace is the directory the run's workers read (a swarm's
	// workspace), and Patch the run's changes to it as a unified diff
	// (when it has any, up to [maxPatch]), which hive apply RUN writes
	// there; nothing is written before.
	Workspace string `json:"workspace,omitempty"`
	Patch     string `json:"patch,omitempty"`
}

// maxPatch bounds the patch run_swarm answers with; a larger one is left
// to hive apply.
const maxPatch = 256 << 10

// Tokens are the tokens a run's model calls were billed for.
type Tokens struct {
	Input      int64 `json:"input"`
	Output     int64 `json:"output"`
	CacheRead  int64 `json:"cache_read"`
	CacheWrite int64 `json:"cache_write"`
	Total      int64 `json:"total"`
}

func tokensOf(u llm.Usage) Tokens {
	return Tokens{Input: u.InputTokens, Output: u.OutputTokens, CacheRead: u.CacheReadTokens, CacheWrite: u.CacheWriteTokens,
		Total: u.InputTokens + u.OutputTokens + u.CacheReadTokens + u.CacheWriteTokens}
}

// RunStatus is how run_status answers.
type RunStatus struct {
	RunResult
	Task string `json:"task"`
	// Nodes counts the tree's nodes by status.
	Nodes NodeCounts `json:"nodes"`
	// Tree lists the nodes in the order they were made, the first
	// [maxTree] of them; Omitted counts the rest.
	Tree    []NodeSummary `json:"tree"`
	Omitted int           `json:"omitted,omitempty"`
}

// NodeCounts counts a run's nodes.
type NodeCounts struct {
	Total    int            `json:"total"`
	Finished int            `json:"finished"`
	ByStatus map[string]int `json:"by_status"`
}

// NodeSummary is one node of a run's tree.
type NodeSummary struct {
	ID      string  `json:"id"`
	Parent  string  `json:"parent,omitempty"`
	Role    string  `json:"role"`
	Name    string  `json:"name"`
	Model   string  `json:"model"`
	Status  string  `json:"status"`
	CostUSD float64 `json:"cost_usd"`
	Error   string  `json:"error,omitempty"`
}

// maxTree bounds the nodes run_status lists.
const maxTree = 100

func (s *Server) addTools() {
	mcp.AddTool(s.mcp, &mcp.Tool{
		Name:  "run_swarm",
		Title: "Run a Hive swarm",
		Description: "Hand a whole job to a swarm of models: a lead model splits it, cheaper workers do the parts in parallel, " +
			"each result is verified, and the lead writes the answer. Waits for the answer by default (with progress " +
			"notifications) and returns it with the run's status, cost, tokens and id; with wait false it returns the run id at " +
			"once, for run_status. Everything is priced and held inside the swarm's budget.",
		InputSchema: s.runSwarmSchema(),
		Annotations: &mcp.ToolAnnotations{DestructiveHint: ptr(false), OpenWorldHint: ptr(true)},
	}, s.runSwarm)
	mcp.AddTool(s.mcp, &mcp.Tool{
		Name:        "run_status",
		Title:       "Status of a Hive run",
		Description: "A run's status, spend, answer (once done) and tree of nodes (lead, workers, verifiers) with their models and statuses.",
		InputSchema: runIDSchema(),
		Annotations: &mcp.ToolAnnotations{ReadOnlyHint: true},
	}, s.runStatus)
	mcp.AddTool(s.mcp, &mcp.Tool{
		Name:        "cancel_run",
		Title:       "Cancel a Hive run",
		Description: "Stop a run that has not ended: its workers stop, nothing more is spent, and its tree stays readable with run_status.",
		InputSchema: runIDSchema(),
		Annotations: &mcp.ToolAnnotations{DestructiveHint: ptr(true), IdempotentHint: true},
	}, s.cancelRun)
}

func ptr[T any](v T) *T { return &v }

// runSwarmSchema is run_swarm's input schema, its descriptions naming
// what hive.toml configures.
func (s *Server) runSwarmSchema() *jsonschema.Schema {
	sc, err := jsonschema.For[RunSwarmArgs](nil)
	if err != nil {
		panic(err) // a fixed type: fails in every test or never
	}
	models := "the models hive.toml names"
	if len(s.models) > 0 {
		models += ": " + strings.Join(s.models, ", ")
	}
	desc := map[string]string{
		"task": "The job, as you would give it to a capable colleague: what to do, on what, and what to return. At most " +
			sizeOf(s.MaxTask) + ".",
		"swarm": fmt.Sprintf("Which configured swarm runs it: %s (default %q).", strings.Join(quoted(s.swarmNames()), ", "), DefaultSwarm),
		"lead":  "The lead model, instead of the swarm's; one of " + models + ".",
		"tiers": fmt.Sprintf("The worker models from cheap to strong (at most %d), instead of the swarm's; each one of %s.", maxTiers, models),
		"budget_usd": "The run's dollar budget, at most the swarm's own (set in hive.toml); default the swarm's. " +
			"No call starts that the budget cannot cover.",
		"max_workers": "How many workers may run at once; at most the swarm's own.",
		"workspace":   s.workspaceDesc(),
		"wait":        "Wait for the run's answer (default true). With false, return the run id at once; the run goes on.",
	}
	for name, d := range desc {
		sc.Properties[name].Description = d
	}
	sc.Properties["wait"].Default = json.RawMessage("true")
	// Arguments it does not take are refused by strictArgs, which can
	// say why better than a schema's "additional properties".
	sc.AdditionalProperties = nil
	s.runSwarmArgs = slices.Sorted(maps.Keys(sc.Properties))
	return sc
}

func runIDSchema() *jsonschema.Schema {
	sc, err := jsonschema.For[RunArgs](nil)
	if err != nil {
		panic(err)
	}
	sc.Properties["run_id"].Description = "The run's whole id, as run_swarm returned it."
	return sc
}

func quoted(names []string) []string {
	out := make([]string, len(names))
	for i, n := range names {
		out[i] = strconv.Quote(n)
	}
	return out
}

func sizeOf(n int) string {
	if n >= 1<<20 && n%(1<<20) == 0 {
		return fmt.Sprintf("%d MiB", n>>20)
	}
	if n >= 1<<10 {
		return fmt.Sprintf("%d KiB", (n+1<<10-1)>>10)
	}
	return fmt.Sprintf("%d bytes", n)
}

// planRun checks a caller's arguments against the configuration and
// plans the run.
func (s *Server) planRun(args RunSwarmArgs) (swarm.Spec, error) {
	switch {
	case strings.TrimSpace(args.Task) == "":
		return swarm.Spec{}, errors.New("the task is empty: say what the swarm should do")
	case len(args.Task) > s.MaxTask:
		return swarm.Spec{}, fmt.Errorf("the task is %s, over the %s run_swarm takes: describe the job and where its material is rather than pasting it all",
			sizeOf(len(args.Task)), sizeOf(s.MaxTask))
	}
	name := args.Swarm
	if name == "" {
		name = DefaultSwarm
	}
	if name != DefaultSwarm && s.cfg.Swarms[name] == nil {
		return swarm.Spec{}, fmt.Errorf("no swarm %q: use one of %s ([swarms.NAME] tables of hive.toml, or %q for its [defaults])",
			name, strings.Join(quoted(s.swarmNames()), ", "), DefaultSwarm)
	}
	for _, m := range append([]string{args.Lead}, args.Tiers...) {
		if m != "" && !slices.Contains(s.models, m) {
			return swarm.Spec{}, fmt.Errorf("unknown model %q: name one of hive.toml's models (%s), or leave lead and tiers out to use the swarm's",
				m, strings.Join(s.models, ", "))
		}
	}
	if slices.Contains(args.Tiers, "") {
		return swarm.Spec{}, errors.New("tiers holds an empty model name")
	}
	if len(args.Tiers) > maxTiers {
		return swarm.Spec{}, fmt.Errorf("tiers names %d models: give at most %d, cheapest first", len(args.Tiers), maxTiers)
	}
	dir, err := s.workspace(args.Workspace)
	if err != nil {
		return swarm.Spec{}, err
	}
	// The swarm as configured, with the caller's models: its budget and
	// workers are what a caller may lower, never raise.
	req := Request{Task: args.Task, Swarm: name, Lead: args.Lead, Tiers: args.Tiers, Workspace: dir}
	base, err := s.plan.Plan(req)
	if err != nil {
		return swarm.Spec{}, err
	}
	req.MaxWorkers = args.MaxWorkers
	if b := args.BudgetUSD; b != nil {
		if *b < 0 || math.IsInf(*b, 0) || math.IsNaN(*b) {
			return swarm.Spec{}, fmt.Errorf("budget_usd %v: give a positive number of dollars (the swarm's: %s)", *b, budgetText(base.BudgetUSD))
		}
		req.BudgetUSD = strconv.FormatFloat(*b, 'f', -1, 64)
		amount, err := price.ParseUSD(req.BudgetUSD)
		if err != nil {
			return swarm.Spec{}, fmt.Errorf("budget_usd %s: %v", req.BudgetUSD, err)
		}
		if base.BudgetUSD > 0 && (amount == 0 || amount > base.BudgetUSD) {
			return swarm.Spec{}, fmt.Errorf("budget_usd %s is over swarm %q's budget of %s: ask for at most that (budget_usd in hive.toml raises it)",
				req.BudgetUSD, name, base.BudgetUSD)
		}
	}
	if args.MaxWorkers < 0 {
		return swarm.Spec{}, fmt.Errorf("max_workers %d: give a positive number, or leave it out", args.MaxWorkers)
	}
	if limit := maxWorkers(base); args.MaxWorkers > limit {
		return swarm.Spec{}, fmt.Errorf("max_workers %d is over swarm %q's %d: ask for at most that (max_workers in hive.toml raises it)",
			args.MaxWorkers, name, limit)
	}
	spec, err := s.plan.Plan(req)
	spec.Origin = swarm.OriginMCP
	return spec, err
}

// maxTiers bounds the worker tiers a caller may name: a ladder longer
// than this escalates a failing task too many times to be what anyone
// meant.
const maxTiers = 8

// engineMaxWorkers is the engine's max_workers when a spec sets none.
const engineMaxWorkers = 100

func maxWorkers(spec swarm.Spec) int {
	if spec.MaxWorkers > 0 {
		return spec.MaxWorkers
	}
	return engineMaxWorkers
}

func (s *Server) runSwarm(ctx context.Context, req *mcp.CallToolRequest, args RunSwarmArgs) (*mcp.CallToolResult, RunResult, error) {
	if err := s.strictArgs(req.Params.Arguments); err != nil {
		return nil, RunResult{}, err
	}
	spec, err := s.planRun(args)
	if err != nil {
		return nil, RunResult{}, err
	}
	spec.Principal = principalOf(req)
	id, err := s.engine.Start(ctx, spec)
	if err != nil {
		var se *swarm.SpecError
		if !errors.As(err, &se) {
			s.log.Error("start a run for an MCP client", "err", err)
			return nil, RunResult{}, fmt.Errorf("the run did not start: %v (Hive's log on stderr says more)", err)
		}
		if args.BudgetUSD != nil {
			// The advice names hive.toml and flags, which are the
			// operator's, not the caller's.
			return nil, RunResult{}, fmt.Errorf("the run did not start: %w. As an MCP client, leave budget_usd out to run within the swarm's own bounds", err)
		}
		return nil, RunResult{}, fmt.Errorf("the run did not start: %w", err)
	}
	out := RunResult{RunID: id, Status: string(swarm.StatusRunning), BudgetUSD: spec.BudgetUSD.Dollars()}
	if args.Wait != nil && !*args.Wait {
		text := fmt.Sprintf("Run %s started; it goes on without this call. run_status %s shows its progress, cancel_run stops it.", id, id)
		return textResult(text, false), out, nil
	}
	res, err := s.await(ctx, req, id, spec.BudgetUSD)
	if err != nil {
		out.Status, out.Error = string(res.Status), err.Error()
		return textResult(err.Error(), true), out, nil
	}
	out = RunResult{RunID: id, Status: string(res.Status), Answer: res.Answer, Error: res.Error,
		CostUSD: res.Cost.Dollars(), BudgetUSD: spec.BudgetUSD.Dollars(), Tokens: tokensOf(res.Usage), Workspace: spec.Workspace}
	spent := fmt.Sprintf("%s of %s, %d tokens", res.Cost, budgetText(spec.BudgetUSD), out.Tokens.Total)
	if res.Status != swarm.StatusDone {
		text := fmt.Sprintf("Run %s ended %s without an answer: %s (spent %s). run_status %s shows its tree.", id, res.Status, res.Error, spent, id)
		return textResult(text, true), out, nil
	}
	text := fmt.Sprintf("%s\n\n(Hive run %s: done; spent %s)", res.Answer, id, spent)
	if spec.Workspace != "" {
		var note string
		out.Patch, note = s.patch(ctx, id, spec.Workspace)
		text += "\n\n" + note
	}
	return textResult(text, false), out, nil
}

// patch returns the patch of run id, whose workspace is dir, and a note
// that says what it is and how to apply it.
func (s *Server) patch(ctx context.Context, id, dir string) (patch, note string) {
	_, _, content, err := s.engine.Store().Artifact(ctx, id, swarm.RunPatch)
	switch {
	case errors.Is(err, journal.ErrNotFound):
		return "", fmt.Sprintf("The run's workers changed nothing in %s.", dir)
	case err != nil:
		s.log.Error("read a run's patch for an MCP client", "run", id, "err", err)
		return "", fmt.Sprintf("The run's patch could not be read (%v): hive apply --print %s prints it.", err, id)
	case len(content) > maxPatch:
		return "", fmt.Sprintf("The run's changes to %s are a patch of %s, too large to show: hive apply --print %s prints it, hive apply %s writes it there.",
			dir, sizeOf(len(content)), id, id)
	}
	return string(content), fmt.Sprintf("The run's changes to %s, not written yet (hive apply %s writes them there, if %s has not changed since):\n\n%s",
		dir, id, dir, content)
}

// strictArgs refuses arguments run_swarm does not take, saying what it
// takes; the SDK has checked the others against the schema.
func (s *Server) strictArgs(raw json.RawMessage) error {
	var fields map[string]json.RawMessage
	if json.Unmarshal(raw, &fields) != nil {
		return nil
	}
	var unknown []string
	for name := range fields {
		if !slices.Contains(s.runSwarmArgs, name) {
			unknown = append(unknown, strconv.Quote(name))
		}
	}
	slices.Sort(unknown)
	switch {
	case len(unknown) == 0:
		return nil
	case fields["verify"] != nil:
		return errors.New(`run_swarm takes no "verify": the checks a run may use are the [checks.NAME] tables of hive.toml, which its models name; a caller cannot give a command. Say in the task how the result should be checked`)
	}
	return fmt.Errorf("run_swarm takes no %s: its arguments are %s", strings.Join(unknown, ", "), strings.Join(s.runSwarmArgs, ", "))
}

func budgetText(b price.Amount) string {
	if b == 0 {
		return "no dollar budget"
	}
	return b.String()
}

func textResult(text string, isError bool) *mcp.CallToolResult {
	return &mcp.CallToolResult{Content: []mcp.Content{&mcp.TextContent{Text: text}}, IsError: isError}
}

// errStopping ends a call's wait when Hive stops.
var errStopping = errors.New("hive is stopping")

// errHangup ends a call's wait when its caller has gone.
var errHangup = errors.New("the caller hung up")

// await waits for run id to end, sending progress notifications when the
// call asked for them. When the call ends first, the run is cancelled,
// unless Hive is stopping: then it is left to resume, and await says so.
func (s *Server) await(ctx context.Context, req *mcp.CallToolRequest, id string, budget price.Amount) (swarm.Result, error) {
	wctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	if stop, ok := ctx.Value(stopKey{}).(context.Context); ok {
		defer context.AfterFunc(stop, func() { cancel(errStopping) })()
	}
	if gone, ok := ctx.Value(hangupKey{}).(context.Context); ok {
		defer context.AfterFunc(gone, func() { cancel(errHangup) })()
	}
	var (
		res swarm.Result
		err error
	)
	if token := req.Params.GetProgressToken(); token != nil {
		res, err = s.waitReporting(wctx, req.Session, token, id, budget)
	} else {
		res, err = s.engine.Wait(wctx, id)
	}
	if err == nil {
		return res, nil
	}
	if errors.Is(context.Cause(wctx), errStopping) {
		return swarm.Result{RunID: id, Status: swarm.StatusInterrupted}, fmt.Errorf("Hive stopped before run %s ended: the run is left unfinished and resumes when Hive next starts (or with hive resume %s)", id, id)
	}
	// The caller cancelled the call or left: nobody will read the answer.
	cctx, done := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer done()
	if err := s.engine.Cancel(cctx, id); err != nil {
		s.log.Warn("cancel the run of an MCP call that ended", "run", id, "err", err)
	}
	return swarm.Result{RunID: id, Status: swarm.StatusCancelled}, fmt.Errorf("the call ended before run %s did (%v), so the run was cancelled", id, context.Cause(wctx))
}

func (s *Server) runStatus(ctx context.Context, req *mcp.CallToolRequest, args RunArgs) (*mcp.CallToolResult, RunStatus, error) {
	jr, err := s.lookup(ctx, principalOf(req), args.RunID)
	if err != nil {
		return nil, RunStatus{}, err
	}
	nodes, err := s.engine.Nodes(ctx, jr.ID)
	if err != nil {
		s.log.Error("read a run's nodes for an MCP client", "run", jr.ID, "err", err)
		return nil, RunStatus{}, fmt.Errorf("read run %s's nodes: %v", jr.ID, err)
	}
	v := swarm.ViewRun(jr)
	out := RunStatus{
		RunResult: RunResult{RunID: v.ID, Status: string(v.Status), Answer: v.Answer, Error: v.Error, CostUSD: v.CostUSD,
			BudgetUSD: v.BudgetUSD, Tokens: tokensOf(v.Usage)},
		Task:  clip(v.Task, 2000),
		Nodes: NodeCounts{Total: len(nodes), ByStatus: map[string]int{}},
		Tree:  []NodeSummary{},
	}
	for i, n := range nodes {
		out.Nodes.ByStatus[string(n.Status)]++
		if n.Status.Final() {
			out.Nodes.Finished++
		}
		if i >= maxTree {
			out.Omitted++
			continue
		}
		out.Tree = append(out.Tree, NodeSummary{ID: n.ID, Parent: n.Parent, Role: string(n.Role), Name: n.Name, Model: n.Model,
			Status: string(n.Status), CostUSD: n.Cost.Dollars(), Error: clip(n.Error, 300)})
	}
	var spec swarm.Spec
	json.Unmarshal(jr.Spec, &spec)
	return textResult(statusText(out, nodes, price.Amount(jr.CostNanos), spec.BudgetUSD), false), out, nil
}

// statusText writes a run's status for people (and models): a line of
// totals, the answer or error, and the tree, indented by depth.
func statusText(st RunStatus, nodes []swarm.Node, cost, budget price.Amount) string {
	var b strings.Builder
	fmt.Fprintf(&b, "Run %s: %s; %d of %d nodes finished; spent %s of %s, %d tokens.\n", st.RunID, st.Status,
		st.Nodes.Finished, st.Nodes.Total, cost, budgetText(budget), st.Tokens.Total)
	if st.Answer != "" {
		fmt.Fprintf(&b, "Answer: %s\n", clip(st.Answer, 4000))
	}
	if st.Error != "" {
		fmt.Fprintf(&b, "Error: %s\n", st.Error)
	}
	depth := map[string]int{}
	for i, n := range nodes {
		if i >= maxTree {
			fmt.Fprintf(&b, "… and %d more nodes\n", st.Omitted)
			break
		}
		d := 0
		if n.Parent != "" {
			d = depth[n.Parent] + 1
		}
		depth[n.ID] = d
		fmt.Fprintf(&b, "%s%s %q (%s, %s): %s, %s", strings.Repeat("  ", d), n.Role, n.Name, n.Model, n.ID, n.Status, n.Cost)
		if n.Error != "" {
			fmt.Fprintf(&b, ": %s", clip(n.Error, 200))
		}
		b.WriteByte('\n')
	}
	return strings.TrimRight(b.String(), "\n")
}

func (s *Server) cancelRun(ctx context.Context, req *mcp.CallToolRequest, args RunArgs) (*mcp.CallToolResult, RunResult, error) {
	jr, err := s.lookup(ctx, principalOf(req), args.RunID)
	if err != nil {
		return nil, RunResult{}, err
	}
	if st := swarm.Status(jr.Status); st.Final() {
		return nil, RunResult{}, fmt.Errorf("run %s already ended (%s): nothing to cancel", jr.ID, st)
	}
	if err := s.engine.Cancel(ctx, jr.ID); err != nil {
		s.log.Error("cancel a run for an MCP client", "run", jr.ID, "err", err)
		return nil, RunResult{}, fmt.Errorf("cancel run %s: %v", jr.ID, err)
	}
	if jr, err = s.lookup(ctx, principalOf(req), jr.ID); err != nil {
		return nil, RunResult{}, err
	}
	v := swarm.ViewRun(jr)
	out := RunResult{RunID: v.ID, Status: string(v.Status), Error: v.Error, CostUSD: v.CostUSD, BudgetUSD: v.BudgetUSD, Tokens: tokensOf(v.Usage)}
	return textResult(fmt.Sprintf("Run %s is %s; it spent %s.", v.ID, v.Status, price.Amount(v.CostNanos)), false), out, nil
}

// principalOf is who sent req: over HTTP, the name of the API token whose
// bearer the server's auth middleware checked ([auth.TokenInfo].UserID);
// empty for the main token and for stdio.
func principalOf(req *mcp.CallToolRequest) string {
	if req == nil || req.Extra == nil || req.Extra.TokenInfo == nil {
		return ""
	}
	return req.Extra.TokenInfo.UserID
}

// lookup finds a run an MCP client of principal started, by its whole id.
func (s *Server) lookup(ctx context.Context, principal, id string) (journal.Run, error) {
	id = strings.TrimSpace(id)
	if id == "" {
		return journal.Run{}, errors.New("run_id is empty: give the id run_swarm returned")
	}
	// A caller's model chooses the id: only whole ids of runs that MCP
	// clients started are found, so that no caller can find, read or
	// cancel the runs of hive run or the HTTP API, nor learn by prefixes
	// which exist.
	notFound := fmt.Errorf("no run %q started by an MCP client: give the whole id run_swarm returned", id)
	jr, err := s.engine.Store().Run(ctx, id)
	switch {
	case errors.Is(err, journal.ErrNotFound), errors.Is(err, journal.ErrAmbiguous):
		return journal.Run{}, notFound
	case err != nil:
		s.log.Error("look up a run for an MCP client", "run", id, "err", err)
		return journal.Run{}, fmt.Errorf("look up run %q: %v", id, err)
	}
	var spec struct {
		Origin string `json:"origin"`
	}
	if jr.ID != id || json.Unmarshal(jr.Spec, &spec) != nil || spec.Origin != swarm.OriginMCP || jr.Principal != principal {
		return journal.Run{}, notFound
	}
	return jr, nil
}

// clip cuts s to at most n bytes, at a rune boundary, marking the cut.
func clip(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && n < len(s) && s[n]&0xC0 == 0x80 {
		n--
	}
	return s[:n] + "…"
}

// workspaceDesc describes run_swarm's workspace argument.
func (s *Server) workspaceDesc() string {
	d := "The absolute path of a directory on Hive's machine for the workers to read (a repository, a folder of documents); " +
		"they propose changes as a patch, returned with the answer and never written (hive apply RUN writes it). " +
		"Instead of the swarm's own workspace. "
	if len(s.roots) == 0 {
		return d + "None may be named here: Hive allows no directory to MCP clients ([workspace] roots in hive.toml, or hive mcp --workspace-root DIR)."
	}
	return d + "It must be one of these directories or under one: " + strings.Join(s.roots, ", ") + "."
}

// workspace checks a caller's workspace against the server's roots (see
// [CheckWorkspace]).
func (s *Server) workspace(dir string) (string, error) { return CheckWorkspace(s.roots, dir) }

// CheckWorkspace checks a workspace a client names (an MCP client, or an
// API token of its own): an absolute path of a directory under one of
// roots ([workspace] roots of hive.toml), after links are followed (a
// link under a root may point anywhere). It returns the directory links
// lead to; none may be named when roots is empty.
func CheckWorkspace(roots []string, dir string) (string, error) {
	if dir == "" {
		return "", nil
	}
	list := strings.Join(roots, ", ")
	switch {
	case len(roots) == 0:
		return "", errors.New("no workspace may be named here: Hive allows MCP clients no directory (its operator lists them in [workspace] roots of hive.toml, or with hive mcp --workspace-root DIR); leave workspace out")
	case !filepath.IsAbs(dir) || strings.ContainsRune(dir, 0):
		return "", fmt.Errorf("workspace %q is not an absolute path: give the directory's whole path, under %s", dir, list)
	}
	real, err := filepath.EvalSymlinks(dir)
	if err != nil {
		return "", fmt.Errorf("workspace %q: no such directory (it must be one under %s)", dir, list)
	}
	if fi, err := os.Stat(real); err != nil || !fi.IsDir() {
		return "", fmt.Errorf("workspace %q is not a directory", dir)
	}
	for _, root := range roots {
		r, err := filepath.EvalSymlinks(root)
		if err != nil {
			continue
		}
		if rel, err := filepath.Rel(r, real); err == nil && rel != ".." && !strings.HasPrefix(rel, "../") {
			// The directory checked is the one used: a link named here
			// could be changed to point elsewhere before the run opens it.
			return real, nil
		}
	}
	return "", fmt.Errorf("workspace %q is not under a directory Hive allows MCP clients to name (%s): name one under them, or leave workspace out", dir, list)
}
