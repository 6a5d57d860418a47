package swarm

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"runtime/debug"
	"sync"
	"sync/atomic"
	"time"

	"github.com/dbos-inc/dbos-transact-golang/dbos"
	_ "github.com/dbos-inc/dbos-transact-golang/dbos/driver/sqlite" // DBOS on SQLite (pure Go)

	"github.com/hive-swarm/hive/internal/budget"
	"github.com/hive-swarm/hive/internal/journal"
	"github.com/hive-swarm/hive/internal/llm"
	"github.com/hive-swarm/hive/internal/price"
	"github.com/hive-swarm/hive/internal/provider"
	"github.com/hive-swarm/hive/internal/screen"
	"github.com/hive-swarm/hive/internal/secret"
	"github.com/hive-swarm/hive/internal/telemetry"
	"github.com/hive-swarm/hive/internal/verify"
)

// Models opens models by name (package provider's Registry).
type Models interface {
	Get(name string) (*provider.Model, error)
}

// A CodeRunner runs model-written code for the run_code tool (package
// sandbox), in a copy of tree when it is not nil (a run with a workspace).
// output is what the model sees; failed marks a non-zero exit.
type CodeRunner interface {
	RunCode(ctx context.Context, lang, code, stdin string, tree Tree) (output string, failed bool, err error)
}

// A TreeChecker runs a configured check ({kind: command}) against a
// worker's tree, the workspace with its changes, in place of the
// verifier's command check, which has no workspace ([SandboxRunner]).
type TreeChecker interface {
	CheckTree(ctx context.Context, check verify.CommandCheck, tree Tree, report string) verify.Verdict
}

// Options are an engine's optional parts.
type Options struct {
	Verifier   verify.Verifier
	CodeRunner CodeRunner
	// TreeChecker runs the checks of runs with a workspace; without one,
	// such a check is unsure.
	TreeChecker TreeChecker
	// AppVersion pins the DBOS application version: runs are recovered
	// only by processes of the same version. Default "hive-1".
	AppVersion string
	// Getenv reads the variables of Hive's environment that a run's MCP
	// servers name (env, bearer_env, headers_env); nil means os.Getenv.
	Getenv func(string) string
	// Redact, when set, replaces the secrets it knows wherever text from
	// outside enters a run (model answers, code output, verdicts, errors)
	// and in every request sent to a model: a second line of defence
	// behind the sandbox, which never sees Hive's environment.
	Redact *secret.Redactor
	// NoPromptCache sends requests as a swarm that knows nothing of
	// prompt caching would: no breakpoints, no cache keys, no stagger
	// (the wave's context still comes first). For comparison.
	NoPromptCache bool
	// BatchWindow is how long a run collects batch calls to one model
	// before it sends them as one batch (default 2 s); BatchPoll how
	// often a batch that has not ended is asked about (default 10 s,
	// doubling to 1 min); BatchDeadline how long after it was sent a
	// batch that has not ended is given up and cancelled (default 25 h:
	// the providers end a batch within 24).
	BatchWindow   time.Duration
	BatchPoll     time.Duration
	BatchDeadline time.Duration
	// Screen, when set, screens each run's task before it starts and
	// each worker's report before it is accepted ([policy.screen]): a
	// blocking finding refuses the text and names its rule; every
	// finding is journaled as an event.
	Screen *screen.Screen
	// Approval says what waits for a person besides what the screen
	// holds ([policy.approval]).
	Approval *ApprovalPolicy
	// Policy bounds what a run may ask for ([policy]).
	Policy *RunPolicy
	// Telemetry, when set, traces each run (a trace per execution: see
	// telemetry.go) and counts its model calls and workers in metrics.
	Telemetry *telemetry.Telemetry
}

// Engine runs swarms: each run a DBOS workflow over a journal store.
type Engine struct {
	store  *journal.Store
	models Models
	log    *slog.Logger
	opts   Options
	bus    *Bus
	dctx   dbos.Context

	// self is this process's liveness record in the journal, which the
	// beat goroutine keeps fresh until Close.
	self      journal.Executor
	stopBeat  context.CancelFunc
	beatDone  chan struct{}
	lastBeat  time.Time // the last beat written; the beat goroutine's until beatDone closes
	recovered []string  // runs of dead processes recovered by New
	closeOnce sync.Once

	closing atomic.Bool // set by Close: runs that stop now are interrupted, not over

	// released counts the goroutines that cancel each started run's
	// context once DBOS has its outcome; Close waits for them.
	released sync.WaitGroup
	// recording holds, for each run started here, a channel closed once
	// DBOS has recorded its outcome (guarded by mu): Close lets a run
	// that has ended, but whose workflow has not yet returned, return
	// before it cancels, or DBOS would find it unfinished at the next
	// start and continue it.
	recording map[string]chan struct{}

	approvals approvals // wakes runs waiting for a person

	mu sync.Mutex
	// slots holds the runs that execute or are waited for in this
	// process; guarded by mu. A slot is let go when its run ends here
	// (wake), or when its last waiter leaves a slot no run came to.
	slots map[string]*runSlot
}

// ErrClosed is returned by Start after Close.
var ErrClosed = errors.New("the engine is closed")

// runSlot is where a run's waiters meet its workflow in this process. Its
// fields are guarded by Engine.mu.
type runSlot struct {
	cancel   context.CancelFunc // stops the workflow in this process
	finished chan struct{}      // closed with result set
	result   Result
	run      *run // while the workflow executes in this process
	waiters  int  // Wait calls blocked on finished
}

// Result is how a run ended.
type Result struct {
	RunID  string       `json:"id"`
	Status Status       `json:"status"`
	Answer string       `json:"answer,omitempty"`
	Error  string       `json:"error,omitempty"`
	Cost   price.Amount `json:"cost_nanos"`
	Usage  llm.Usage    `json:"usage"`
}

type runInput struct {
	RunID string `json:"run_id"`
	Spec  Spec   `json:"spec"`
}

var errRunOver = errors.New("the run is over")

// New starts an engine over store: it launches DBOS on the store's
// database and recovers the runs that dead processes left unfinished.
//
// Each engine runs its workflows under an executor id of its own, "hive-"
// and random hex, recorded with its host and pid in the journal
// ([journal.Executor]) and kept fresh by a beat until Close. Runs another
// live process holds are left to it; those of a process that is gone
// (killed, crashed, or closed while a recovered run was going) are
// recovered here. The environment variable DBOS__VMID, which DBOS itself
// reads, overrides the id; New refuses to start when a live process
// already holds that id, since DBOS would take over its runs.
func New(ctx context.Context, store *journal.Store, models Models, log *slog.Logger, opts Options) (*Engine, error) {
	if opts.AppVersion == "" {
		opts.AppVersion = "hive-1"
	}
	e := &Engine{store: store, models: models, log: log, opts: opts, bus: NewBus(store), slots: map[string]*runSlot{}}
	quiet := slog.New(slog.DiscardHandler)
	var b [8]byte
	rand.Read(b[:])
	dctx, err := dbos.NewContext(context.WithoutCancel(ctx), dbos.Config{
		AppName:            "hive",
		DatabaseURL:        store.DBOSURL(),
		DatabaseSchema:     store.DBOSSchema(),
		Logger:             quiet,
		ApplicationVersion: opts.AppVersion,
		ExecutorID:         "hive-" + hex.EncodeToString(b[:]),
	})
	if err != nil {
		return nil, fmt.Errorf("start the durable executor: %w", err)
	}
	e.self = journal.ThisProcess(dbos.GetExecutorID(dctx))
	e.lastBeat = e.self.Beat
	// Recorded before Launch: no workflow runs under this id before the
	// journal says whose it is.
	if err := e.register(ctx); err != nil {
		dbos.Shutdown(dctx, time.Second)
		return nil, err
	}
	dbos.RegisterWorkflow(dctx, e.runWorkflow, dbos.WithWorkflowName("hive.run"))
	if err := dbos.Launch(dctx); err != nil {
		e.store.ForgetExecutor(context.WithoutCancel(ctx), e.self)
		return nil, fmt.Errorf("launch the durable executor: %w", err)
	}
	e.dctx = dctx
	beatCtx, stop := context.WithCancel(context.WithoutCancel(ctx))
	e.stopBeat, e.beatDone = stop, make(chan struct{})
	go e.beat(beatCtx)
	if e.recovered, err = e.recoverDead(ctx); err != nil {
		e.Close(ctx)
		return nil, fmt.Errorf("recover the runs of stopped processes: %w", err)
	}
	return e, nil
}

// Close stops the engine. Runs still going stay journaled as unfinished
// and resume at the next start. Last, it removes the process's liveness
// record: runs it leaves pending are then free for others to recover.
func (e *Engine) Close(ctx context.Context) error {
	e.closeOnce.Do(func() {
		e.closing.Store(true)
		e.mu.Lock()
		// Runs that ended here (their slots let go) and whose workflows
		// are returning: a few seconds at most.
		var ending []chan struct{}
		for id, ch := range e.recording {
			if e.slots[id] == nil {
				ending = append(ending, ch)
			}
		}
		e.mu.Unlock()
		deadline := time.NewTimer(10 * time.Second)
	wait:
		for _, ch := range ending {
			select {
			case <-ch:
			case <-deadline.C:
				break wait
			}
		}
		deadline.Stop()
		e.mu.Lock()
		for _, s := range e.slots {
			if s.cancel != nil {
				s.cancel()
			}
		}
		e.mu.Unlock()
		dbos.Shutdown(e.dctx, 5*time.Second)
		e.released.Wait()
		e.stopBeat()
		<-e.beatDone
		self := e.self
		self.Beat = e.lastBeat
		if err := e.store.ForgetExecutor(context.WithoutCancel(ctx), self); err != nil {
			e.log.Warn("remove the executor record", "executor", e.self.ID, "err", err)
		}
	})
	return nil
}

// Bus returns the engine's event bus.
func (e *Engine) Bus() *Bus { return e.bus }

func (e *Engine) slot(id string) *runSlot {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.slotLocked(id)
}

func (e *Engine) slotLocked(id string) *runSlot {
	s := e.slots[id]
	if s == nil {
		s = &runSlot{finished: make(chan struct{})}
		e.slots[id] = s
	}
	return s
}

// SpecError is a run that Start refuses for what was asked (a bad spec,
// an unknown or unpriced model), as opposed to a failure of the engine.
type SpecError struct{ Err error }

func (e *SpecError) Error() string { return e.Err.Error() }
func (e *SpecError) Unwrap() error { return e.Err }

// NewRunID returns a fresh, time-ordered run id.
func NewRunID() string {
	var b [4]byte
	rand.Read(b[:])
	return "r" + time.Now().UTC().Format("060102150405") + hex.EncodeToString(b[:])
}

// noDollarBudget says how to run without a dollar budget.
const noDollarBudget = "run without a dollar budget (budget 0: --budget 0, or budget_usd = 0 in [defaults] or the swarm's table), bounded by tokens instead (--budget-tokens, budget_tokens)"

// checkHedgePriced refuses, under a dollar budget, a model whose hedges
// go to a model without a known price: a hedge would reserve $0 and an
// answer it won would be billed $0, outside the budget.
func (e *Engine) checkHedgePriced(m *provider.Model, spec Spec) error {
	if m.Hedge == nil || m.Hedge.To == "" || spec.BudgetUSD <= 0 {
		return nil
	}
	to, err := e.models.Get(m.Hedge.To)
	if err != nil {
		return nil // never called: the hedge goes unhedged (hedge.go)
	}
	if to.PriceKnown {
		return nil
	}
	return fmt.Errorf("model %s hedges to %s ([models.%s.hedge] to = %q), which has no known price, so a dollar budget cannot hold: add [models.%s.price] to hive.toml, hedge to a priced model or to %s itself (remove to), or %s", m.Name, to.Name, m.Name, m.Hedge.To, to.Name, m.Name, noDollarBudget)
}

// Start validates spec, journals the run and starts its workflow. The run
// goes on until it ends, is cancelled, or the engine closes.
func (e *Engine) Start(ctx context.Context, spec Spec) (string, error) {
	spec, err := e.allowed(spec)
	if err != nil {
		return "", &SpecError{err}
	}
	spec = spec.withDefaults()
	if err := spec.validate(); err != nil {
		return "", &SpecError{err}
	}
	if _, err := e.opts.Screen.Refuse(screen.Task, spec.Task); err != nil {
		e.log.Warn("task refused by policy", "err", err)
		return "", &SpecError{err}
	}
	for i, name := range append([]string{spec.Lead}, spec.Tiers...) {
		m, err := e.models.Get(name)
		if err != nil {
			return "", &SpecError{err}
		}
		if !m.PriceKnown && spec.BudgetUSD > 0 {
			return "", &SpecError{fmt.Errorf("model %s has no known price, so a dollar budget cannot hold: add [models.%s.price] to hive.toml, or %s", name, name, noDollarBudget)}
		}
		if err := e.checkHedgePriced(m, spec); err != nil {
			return "", &SpecError{err}
		}
		if i > 0 && spec.batched(i-1) {
			if m.Batch == nil {
				return "", &SpecError{fmt.Errorf("model %s (tier %d) has no batch API, so its calls cannot go as a batch: name the tiers that do with batch_tiers, or leave urgency unset (if its server does serve one, set batch = true in [models.%s])", name, i-1, name)}
			}
		}
	}
	spec.WorkspaceBase = ""
	if spec.Workspace != "" {
		fp, err := baseFingerprint(ctx, spec)
		if err != nil {
			return "", &SpecError{err}
		}
		spec.WorkspaceBase = fp
	}
	id := NewRunID()
	specJSON, _ := json.Marshal(spec)
	jr := journal.Run{ID: id, Task: spec.Task, Status: string(StatusRunning), Spec: specJSON, Principal: spec.Principal}
	if caps := e.opts.Policy.spendCaps(spec, time.Now()); caps != nil {
		if err := e.store.CreateRunCapped(ctx, jr, caps...); err != nil {
			if errors.Is(err, journal.ErrOverCap) {
				return "", &SpecError{capError(err)}
			}
			return "", fmt.Errorf("journal the run: %w", err)
		}
	} else if err := e.store.CreateRun(ctx, jr); err != nil {
		return "", fmt.Errorf("journal the run: %w", err)
	}
	cctx, cancel := dbos.WithCancel(e.dctx)
	e.mu.Lock()
	if e.closing.Load() {
		e.mu.Unlock()
		cancel()
		return "", fmt.Errorf("start the run: %w", ErrClosed)
	}
	s := e.slotLocked(id)
	s.cancel = cancel
	// Under mu, which Close takes after it sets closing: no Add after
	// Close has begun waiting.
	e.released.Add(1)
	recorded := make(chan struct{})
	if e.recording == nil {
		e.recording = map[string]chan struct{}{}
	}
	e.recording[id] = recorded
	e.mu.Unlock()
	h, err := dbos.RunWorkflow(cctx, e.runWorkflow, runInput{RunID: id, Spec: spec}, dbos.WithWorkflowID(id))
	if err != nil {
		cancel()
		e.released.Done()
		e.mu.Lock()
		if e.slots[id] == s {
			delete(e.slots, id)
		}
		delete(e.recording, id)
		e.mu.Unlock()
		return "", fmt.Errorf("start the run: %w", err)
	}
	// cctx stays among the children of the engine's context until it is
	// cancelled: a process that runs thousands of runs must cancel it once
	// the run is over. Not sooner than DBOS has recorded the outcome:
	// cancelling a workflow's context before that cancels the run durably.
	go func() {
		defer e.released.Done()
		h.GetResult() // returns at the run's end, or when Close cancels cctx
		e.mu.Lock()
		delete(e.recording, id)
		e.mu.Unlock()
		close(recorded)
		cancel()
	}()
	return id, nil
}

// Wait blocks until the run ends in this process and returns its result.
// A run that ended earlier is read from the journal.
func (e *Engine) Wait(ctx context.Context, id string) (Result, error) {
	jr, err := e.store.Run(ctx, id)
	if err != nil {
		return Result{}, err
	}
	if Status(jr.Status).Final() {
		return resultOf(jr), nil
	}
	s := e.join(jr.ID)
	defer e.leave(jr.ID, s)
	// The run may have ended since the read above: its slot, let go at
	// its end, is then a new one that nothing will wake, and the journal
	// (written before the slot is let go) has the end.
	if now, err := e.store.Run(ctx, jr.ID); err == nil {
		if st := Status(now.Status); st.Final() || (st == StatusInterrupted && now.Status != jr.Status) {
			return resultOf(now), nil
		}
	}
	select {
	case <-s.finished:
		return s.result, nil
	case <-ctx.Done():
		return Result{}, ctx.Err()
	}
}

// join returns run id's slot with one more waiter.
func (e *Engine) join(id string) *runSlot {
	e.mu.Lock()
	defer e.mu.Unlock()
	s := e.slotLocked(id)
	s.waiters++
	return s
}

// leave drops a waiter of s, and s itself when it was made for waiters
// only and the last one leaves: a run that never executed here, such as
// one another process runs.
func (e *Engine) leave(id string, s *runSlot) {
	e.mu.Lock()
	defer e.mu.Unlock()
	s.waiters--
	if s.waiters == 0 && s.run == nil && s.cancel == nil && e.slots[id] == s {
		select {
		case <-s.finished:
		default:
			delete(e.slots, id)
		}
	}
}

func resultOf(jr journal.Run) Result {
	var u llm.Usage
	json.Unmarshal(jr.Usage, &u)
	return Result{RunID: jr.ID, Status: Status(jr.Status), Answer: jr.Answer, Error: jr.Error, Cost: price.Amount(jr.CostNanos), Usage: u}
}

// Cancel stops a run: durably (a resumed process will not continue it)
// and, when it runs here, at once.
func (e *Engine) Cancel(ctx context.Context, id string) error {
	jr, err := e.store.Run(ctx, id)
	if err != nil {
		return err
	}
	if Status(jr.Status).Final() {
		return fmt.Errorf("run %s is already %s", jr.ID, jr.Status)
	}
	// A run whose process died between writing the run and starting its
	// workflow has no workflow: nothing ran, and there is nothing to stop
	// but the run's status.
	if err := dbos.CancelWorkflow(e.dctx, jr.ID); err != nil && !errors.Is(err, dbos.ErrNonExistentWorkflow) {
		return fmt.Errorf("cancel run %s: %w", jr.ID, err)
	}
	e.mu.Lock()
	s := e.slots[jr.ID]
	var sr *run
	if s != nil {
		sr = s.run
	}
	e.mu.Unlock()
	if sr != nil {
		sr.cancelled.Store(true)
		sr.stopWork(errors.New("run cancelled"))
	}
	if s != nil && s.cancel != nil {
		s.cancel()
	}
	jr.Status = string(StatusCancelled)
	jr.Error = "cancelled"
	return e.store.UpdateRun(ctx, jr)
}

// Resume continues a run that did not end: one a killed process left
// (already recovered when the engine started) or one that was cancelled.
func (e *Engine) Resume(ctx context.Context, id string) (string, error) {
	jr, err := e.store.Run(ctx, id)
	if err != nil {
		return "", err
	}
	switch Status(jr.Status) {
	case StatusDone, StatusFailed:
		return jr.ID, fmt.Errorf("run %s already ended (%s); nothing to resume", jr.ID, jr.Status)
	}
	h, err := dbos.RetrieveWorkflow[Result](e.dctx, jr.ID)
	if err != nil {
		return "", fmt.Errorf("resume run %s: %w", jr.ID, err)
	}
	st, err := h.GetStatus()
	if err != nil {
		return "", fmt.Errorf("resume run %s: %w", jr.ID, err)
	}
	switch st.Status {
	case dbos.WorkflowStatusPending, dbos.WorkflowStatusEnqueued:
		// Unfinished: recovered when this engine started, or held by
		// another process. It is admitted again under today's caps.
		if err := e.readmit(ctx, jr, jr.Status); err != nil {
			return "", err
		}
		if err := e.takeOver(ctx, jr.ID, st); err != nil {
			return "", err
		}
		return jr.ID, nil
	case dbos.WorkflowStatusSuccess, dbos.WorkflowStatusError:
		return jr.ID, fmt.Errorf("run %s already ended; nothing to resume", jr.ID)
	}
	// A cancelled execution still winding down in this process journals
	// its end when it is over: let it, before the run is marked running
	// again, or its end would overwrite the resumed run's status.
	e.mu.Lock()
	var prev chan struct{}
	if s := e.slots[jr.ID]; s != nil && s.run != nil {
		prev = s.finished
	}
	e.mu.Unlock()
	if prev != nil {
		select {
		case <-prev:
		case <-ctx.Done():
			return "", ctx.Err()
		}
		if jr, err = e.store.Run(ctx, jr.ID); err != nil {
			return "", err
		}
	}
	if err := e.readmit(ctx, jr, string(StatusRunning)); err != nil {
		return "", err
	}
	// A fresh slot: waiters must not see the result of the run's earlier
	// execution in this process.
	e.mu.Lock()
	e.slots[jr.ID] = &runSlot{finished: make(chan struct{})}
	e.mu.Unlock()
	if _, err := dbos.ResumeWorkflow[Result](e.dctx, jr.ID); err != nil {
		return "", fmt.Errorf("resume run %s: %w", jr.ID, err)
	}
	return jr.ID, nil
}

// allowed checks spec against the policy, filling the knobs it leaves at
// zero with the policy's bounds: its models, the models they hedge to,
// and its bounds. A resumed run is checked as a new one is.
func (e *Engine) allowed(spec Spec) (Spec, error) {
	spec, err := e.opts.Policy.apply(spec)
	if err != nil {
		return spec, err
	}
	for _, name := range append([]string{spec.Lead}, spec.Tiers...) {
		if m, err := e.models.Get(name); err == nil {
			if err := e.opts.Policy.allowsHedge(m); err != nil {
				return spec, err
			}
		}
	}
	return spec, nil
}

// readmit marks the run jr, about to resume, as status and admits it
// again under the policy's spend caps of today: a cancelled run counted
// only for what it had spent, and yesterday's run for yesterday, so a
// resumed run must fit under today's caps for all it may still spend.
func (e *Engine) readmit(ctx context.Context, jr journal.Run, status string) error {
	var spec Spec
	if err := json.Unmarshal(jr.Spec, &spec); err != nil {
		return fmt.Errorf("resume run %s: read its spec: %w", jr.ID, err)
	}
	// Today's policy, not the one the run started under: a model taken
	// out of it, or a lower bound, holds for runs resumed as for new ones.
	if _, err := e.allowed(spec); err != nil {
		return &SpecError{fmt.Errorf("resume run %s: %w", jr.ID, err)}
	}
	caps := e.opts.Policy.spendCaps(spec, time.Now())
	if caps == nil {
		if status == jr.Status {
			return nil
		}
		jr.Status, jr.Error = status, ""
		return e.store.UpdateRun(ctx, jr)
	}
	if err := e.store.ReadmitRun(ctx, jr.ID, status, caps...); err != nil {
		if errors.Is(err, journal.ErrOverCap) {
			return &SpecError{capError(err)}
		}
		return err
	}
	return nil
}

// runWorkflow is the durable workflow of one run.
func (e *Engine) runWorkflow(dctx dbos.Context, in runInput) (out Result, err error) {
	s := e.slot(in.RunID)
	r := e.newRun(in)
	last, err := e.store.LastSeq(dctx, in.RunID)
	if err != nil {
		return Result{}, err
	}
	if r.memo, err = e.store.Steps(dctx, in.RunID); err != nil {
		return Result{}, err
	}
	// Only now is the run this slot's: an execution cancelled before it
	// got here (its reads fail on the cancelled context) ends without
	// finish, and a resumption must not wait for it to.
	e.mu.Lock()
	s.run = r
	e.mu.Unlock()
	// From here every way out ends in finish or interrupt, which close
	// the run on the bus and end its span. A resumed run's execution is a
	// trace of its own, linked to the one before it (telemetry.go).
	if ctx, span := e.opts.Telemetry.StartRun(dctx, r.id, last > 0, string(r.memo[traceKey])); span != nil {
		dctx, r.span = dbos.From(dctx, ctx), span
		e.store.PutStepAsync(r.id, traceKey, []byte(span.TraceParent()))
	}
	e.bus.openRun(in.RunID, last)
	// A bug that panics in the run's own goroutine ends the run as
	// failed, with its waiters told, rather than leaving them waiting.
	defer func() {
		p := recover()
		if p == nil {
			return
		}
		e.log.Error("a run panicked: a bug in Hive", "run", r.id, "panic", p, "stack", string(debug.Stack()))
		r.stopWork(errRunOver)
		r.drain()
		res := Result{RunID: r.id, Status: StatusFailed, Error: fmt.Sprintf("internal error: %v (a bug in Hive; the log has its stack)", p)}
		res.Cost, res.Usage = r.totals()
		e.finish(r, res)
		out, err = res, nil
	}()
	if last > 0 {
		r.publish(Event{Type: EventRunResumed, Status: StatusRunning})
	} else {
		r.publish(Event{Type: EventRunStarted, Status: StatusRunning, Text: in.Spec.Task})
		// What the screen flagged in the task (it blocked nothing, or the
		// run would not have started), for the record.
		for _, f := range e.opts.Screen.Check(screen.Task, in.Spec.Task) {
			r.publish(Event{Type: EventScreen, Text: "task: " + f.String() + ", " + string(f.Action)})
		}
	}
	// The workers stop when the workflow stops (cancel, shutdown).
	stop := context.AfterFunc(dctx, func() { r.stopWork(context.Cause(dctx)) })
	defer stop()
	if in.Spec.Workspace != "" {
		// Opened again by every execution of the run: a resumed run reads
		// DIR as it is now, but what its workers read before comes from
		// the journal, and hive apply checks DIR against the fingerprint
		// Start took.
		ws, err := openWorkspace(in.Spec)
		if err != nil {
			res := Result{RunID: r.id, Status: StatusFailed, Error: err.Error() + " (the run's workspace must stay where it was when the run started)"}
			e.finish(r, res)
			return res, nil
		}
		r.ws = ws
		defer ws.Close()
	}
	defer r.closeMCP() // on every way out; at once below, normally
	var answer string
	err = r.holdTask(dctx, in.Spec.Task)
	if err == nil {
		answer, err = r.leadLoop(dctx)
	}
	// The lead's loop has waited for the workers: the servers stop
	// before the run ends, so that a process that exits at its end
	// leaves none running and the workflow returns at once.
	r.closeMCP()
	res := Result{RunID: r.id, Status: StatusDone, Answer: answer}
	switch {
	case r.cancelled.Load():
		res.Status, res.Error = StatusCancelled, "cancelled"
	case err != nil && e.closing.Load():
		// The process is stopping, not the run: leave it to resume.
		res.Status, res.Error = StatusInterrupted, "interrupted: the process stopped"
		res.Cost, res.Usage = r.totals()
		e.interrupt(r, res)
		return res, context.Cause(dctx)
	case err != nil:
		res.Status, res.Error = StatusFailed, err.Error()
	}
	res.Cost, res.Usage = r.totals()
	e.finish(r, res)
	return res, nil
}

// interrupt journals a run its process stopped, and wakes its waiters
// without ending the run.
func (e *Engine) interrupt(r *run, res Result) {
	r.endRun(res) // first: a waiter may read the end from the journal
	ctx := context.Background()
	if jr, err := e.store.Run(ctx, r.id); err == nil {
		usage, _ := json.Marshal(res.Usage)
		jr.Status, jr.Error, jr.CostNanos, jr.Usage = string(res.Status), res.Error, int64(res.Cost), usage
		if err := e.store.UpdateRun(ctx, jr); err != nil {
			e.log.Error("journal run interruption", "run", r.id, "err", err)
		}
	}
	e.store.Flush(ctx)
	e.bus.closeRun(r.id)
	e.wake(r, res)
}

// finish journals a run's end and wakes its waiters.
func (e *Engine) finish(r *run, res Result) {
	r.endRun(res) // first: a waiter may read the end from the journal
	ctx := context.Background()
	jr, err := e.store.Run(ctx, r.id)
	if err == nil {
		usage, _ := json.Marshal(res.Usage)
		jr.Status, jr.Answer, jr.Error, jr.CostNanos, jr.Usage = string(res.Status), res.Answer, res.Error, int64(res.Cost), usage
		if err := e.store.UpdateRun(ctx, jr); err != nil {
			e.log.Error("journal run end", "run", r.id, "err", err)
		}
	}
	r.publish(Event{Type: EventRunFinished, Status: res.Status, Text: firstNonEmpty(res.Answer, res.Error)})
	if err := e.store.Flush(ctx); err != nil {
		e.log.Error("flush journal", "run", r.id, "err", err)
	}
	e.bus.closeRun(r.id)
	e.wake(r, res)
}

// wake hands res to the waiters of run id in this process, and lets go of
// the run's slot and state: a long-lived process (hive serve) keeps
// nothing of the runs it ran. Waiters already blocked hold the slot; later
// ones read the end from the journal, written before wake. A slot that
// has passed to a later execution of the run (resumed while r wound down)
// is that execution's to wake.
func (e *Engine) wake(r *run, res Result) {
	e.mu.Lock()
	defer e.mu.Unlock()
	s := e.slots[r.id]
	if s == nil || s.run != r {
		return
	}
	s.result = res
	s.run = nil
	select {
	case <-s.finished:
	default:
		close(s.finished)
	}
	delete(e.slots, r.id)
}

func firstNonEmpty(a, b string) string {
	if a != "" {
		return a
	}
	return b
}

func (e *Engine) newRun(in runInput) *run {
	spec := in.Spec.withDefaults()
	root := budget.New(budget.Limits{USD: spec.BudgetUSD, Tokens: spec.MaxTokens, Calls: spec.MaxCalls, Wall: spec.Wall})
	reserve := spec.LeadReserve
	if reserve == 0 && spec.BudgetUSD > 0 {
		if m, err := e.models.Get(spec.Lead); err == nil && m.PriceKnown {
			// One generous final turn: a 32 KB prompt and the output cap.
			reserve = m.Price.Cost(llm.Usage{InputTokens: 32 << 10, OutputTokens: int64(spec.CallTokens)})
			reserve = min(reserve, spec.BudgetUSD/5)
		}
	}
	poolLimits := budget.Limits{}
	if spec.BudgetUSD > 0 {
		poolLimits.USD = spec.BudgetUSD - reserve
	}
	workCtx, stop := context.WithCancelCause(context.Background())
	if spec.Wall > 0 {
		var cancel context.CancelFunc
		workCtx, cancel = context.WithTimeoutCause(workCtx, spec.Wall, errors.New("the run's wall-time budget is spent"))
		prev := stop
		stop = func(err error) { prev(err); cancel() }
	}
	return &run{
		e: e, id: in.RunID, spec: spec,
		budget: root, pool: root.Child(poolLimits),
		workCtx: workCtx, stopWork: stop,
		slots:    make(chan struct{}, spec.MaxWorkers),
		nodes:    map[string]*nodeState{},
		children: map[string]int{},
		kids:     map[string][]string{},
		change:   make(chan struct{}),
	}
}

// exhausted records the first budget exhaustion and closes the workers'
// budget: calls in flight finish (they are paid for), no new call starts,
// and the lead's next turn is its last.
func (r *run) exhausted(err error) {
	r.mu.Lock()
	first := r.exhaustErr == nil
	if first {
		r.exhaustErr = err
	}
	r.mu.Unlock()
	if first {
		r.pool.Close()
		r.publish(Event{Type: EventBudget, Text: err.Error()})
	}
}

// verify runs the task's verifier once per key (journaled). In a run with
// a workspace, tree is the worker's, and a configured check runs against
// it.
func (r *run) verify(ctx context.Context, ns *nodeState, key string, spec verify.Spec, sub verify.Submission, tree Tree) (v verify.Verdict) {
	if data, ok, err := r.journaled(key); err == nil && ok && json.Unmarshal(data, &v) == nil {
		return v
	}
	ctx, span := r.tel().StartVerify(ctx, spec.Kind)
	defer func() { span.EndVerify(v.Outcome) }()
	c := &verifierCaller{r: r, parent: ns, key: key}
	switch {
	case tree != nil && spec.Kind == verify.KindCommand && spec.Trusted != nil:
		if r.e.opts.TreeChecker == nil {
			return verify.Verdict{Outcome: verify.Unsure, Verifier: spec.Kind, Evidence: "no checker of workspaces is configured in this process"}
		}
		v = r.e.opts.TreeChecker.CheckTree(ctx, *spec.Trusted, tree, sub.Report)
	case r.e.opts.Verifier == nil:
		return verify.Verdict{Outcome: verify.Unsure, Verifier: spec.Kind, Evidence: "no verifier is configured in this process"}
	default:
		v = r.e.opts.Verifier.Verify(ctx, spec, sub, c)
	}
	v.Evidence = r.e.opts.Redact.String(v.Evidence)
	c.done(v.Outcome)
	if ctx.Err() == nil {
		data, _ := json.Marshal(v)
		if err := r.e.store.PutStep(ctx, r.id, key, data); err != nil {
			r.e.log.Warn("journal verdict", "run", r.id, "key", key, "err", err)
		}
	}
	return v
}

type codeRecord struct {
	Output string `json:"output"`
	Failed bool   `json:"failed"`
	Millis int64  `json:"ms,omitempty"`
}

// runCode runs model code once per key (journaled), in a copy of tree
// when it is not nil, and counts the run on the node.
func (r *run) runCode(ctx context.Context, ns *nodeState, key string, args runCodeArgs, tree Tree) (string, bool) {
	if r.e.opts.CodeRunner == nil {
		return errCodeUnavailable.Error(), true
	}
	var rec codeRecord
	if data, ok, err := r.journaled(key); err == nil && ok && json.Unmarshal(data, &rec) == nil {
		r.toolDone(ns, time.Duration(rec.Millis)*time.Millisecond, rec.Failed)
		return rec.Output, rec.Failed
	}
	start := time.Now()
	ctx, span := r.tel().StartCode(ctx, args.Language)
	out, failed, err := r.e.opts.CodeRunner.RunCode(ctx, args.Language, args.Code, args.Stdin, tree)
	span.EndCode(failed, err)
	r.toolDone(ns, time.Since(start), failed || err != nil)
	if err != nil {
		return r.e.opts.Redact.String("run_code failed: " + err.Error()), true
	}
	out = r.e.opts.Redact.String(out)
	rec = codeRecord{Output: out, Failed: failed, Millis: time.Since(start).Milliseconds()}
	data, _ := json.Marshal(rec)
	if err := r.e.store.PutStep(ctx, r.id, key, data); err != nil {
		r.e.log.Warn("journal code run", "run", r.id, "key", key, "err", err)
	}
	return out, failed
}

// memoStepper journals calls in Hive's steps table: the calls of workers,
// which run inside DBOS Go steps where DBOS steps cannot nest.
type memoStepper struct{ r *run }

func (s memoStepper) call(ctx context.Context, key string, fn func(ctx context.Context) (callRecord, error)) (callRecord, bool, error) {
	var rec callRecord
	data, ok, err := s.r.journaled(key)
	if err != nil {
		return rec, false, fmt.Errorf("read journal: %w", err)
	}
	if ok {
		if err := json.Unmarshal(data, &rec); err != nil {
			return rec, false, fmt.Errorf("read journal %s: %w", key, err)
		}
		return rec, false, nil
	}
	rec, err = fn(ctx)
	if err != nil || rec.Exhausted != "" {
		return rec, true, err
	}
	data, _ = json.Marshal(rec)
	if err := s.r.e.store.PutStep(ctx, s.r.id, key, data); err != nil {
		return rec, true, fmt.Errorf("journal call %s: %w", key, err)
	}
	return rec, true, nil
}

// dbosStepper makes each call a DBOS step of the run workflow (the lead's
// calls, made on the workflow's goroutine).
type dbosStepper struct{ dctx dbos.Context }

func (s dbosStepper) call(_ context.Context, key string, fn func(ctx context.Context) (callRecord, error)) (callRecord, bool, error) {
	live := false
	rec, err := dbos.RunAsStep(s.dctx, func(ctx context.Context) (callRecord, error) {
		live = true
		return fn(ctx)
	}, dbos.WithStepName(key))
	return rec, live, err
}

func now() time.Time { return time.Now() }

// CancelStored cancels a run without starting an engine (which would
// recover and continue every unfinished run): it marks the run's workflow
// cancelled in the durable executor, so that no process continues it, and
// journals it cancelled. A process running it now stops it at its next
// step. hive resume continues it.
func CancelStored(ctx context.Context, store *journal.Store, id string) (string, error) {
	jr, err := store.Run(ctx, id)
	if err != nil {
		return "", err
	}
	if Status(jr.Status).Final() {
		return jr.ID, fmt.Errorf("run %s already ended (%s); nothing to cancel", jr.ID, jr.Status)
	}
	client, err := dbos.NewClient(ctx, dbos.ClientConfig{DatabaseURL: store.DBOSURL(), DatabaseSchema: store.DBOSSchema(), AppName: "hive", Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		return jr.ID, fmt.Errorf("open the durable executor: %w", err)
	}
	defer client.Shutdown(client, 5*time.Second)
	if err := dbos.CancelWorkflow(client, jr.ID); err != nil {
		return jr.ID, fmt.Errorf("cancel run %s: %w", jr.ID, err)
	}
	jr.Status, jr.Error = string(StatusCancelled), "cancelled"
	if err := store.UpdateRun(ctx, jr); err != nil {
		return jr.ID, err
	}
	return jr.ID, store.Flush(ctx)
}
