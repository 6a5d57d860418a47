package swarm

import (
	"context"
	"errors"
	"fmt"
	"path"
	"sync"
	"time"

	"github.com/hive-swarm/hive/internal/journal"
	"github.com/hive-swarm/hive/internal/llm"
	"github.com/hive-swarm/hive/internal/screen"
)

// ApprovalPolicy says what waits for a person ([policy.approval]): the
// MCP tools whose every call needs approval, and how long a request may
// wait. The screen's rules with action "hold" wait the same way.
type ApprovalPolicy struct {
	// Tools are Hive tool names (SERVER__tool, as the models see them);
	// "*" matches any run of characters ("github__*").
	Tools []string
	// Timeout is how long a request waits before it is denied as
	// expired; default DefaultApprovalTimeout.
	Timeout time.Duration
}

// MaxApprovalText bounds what a person is asked to approve: a held
// task, report or tool call's arguments, shown whole. Longer ones are
// denied without asking.
const MaxApprovalText = 64 << 10

// DefaultApprovalTimeout is how long an approval waits by default.
const DefaultApprovalTimeout = 24 * time.Hour

// approvalPoll is how often a waiting run looks for a decision made by
// another process (one made through this engine wakes it at once).
const approvalPoll = 500 * time.Millisecond

// needsTool reports whether a call of tool waits for a person.
func (p *ApprovalPolicy) needsTool(tool string) bool {
	if p == nil {
		return false
	}
	for _, pat := range p.Tools {
		if ok, _ := path.Match(pat, tool); ok {
			return true
		}
	}
	return false
}

func (p *ApprovalPolicy) timeout() time.Duration {
	if p == nil || p.Timeout <= 0 {
		return DefaultApprovalTimeout
	}
	return p.Timeout
}

// approvals wakes the runs waiting in this process when a decision is
// made through the engine.
type approvals struct {
	mu   sync.Mutex
	wake chan struct{} // closed and replaced at each decision
}

func (a *approvals) changed() <-chan struct{} {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.wake == nil {
		a.wake = make(chan struct{})
	}
	return a.wake
}

func (a *approvals) broadcast() {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.wake != nil {
		close(a.wake)
		a.wake = nil
	}
}

// ErrNotPending is a decision on an approval that is already decided.
var ErrNotPending = errors.New("the approval was already decided")

// Decide approves or denies a pending approval of a run, as by; the run,
// in this process or another sharing the journal, goes on. The first
// decision stands: a later one fails with ErrNotPending.
func (e *Engine) Decide(ctx context.Context, runID, id string, approve bool, note, by string) error {
	status := journal.ApprovalDenied
	if approve {
		status = journal.ApprovalApproved
	}
	err := e.store.Decide(ctx, runID, id, status, note, by)
	if errors.Is(err, journal.ErrDecided) {
		return fmt.Errorf("%s/%s: %w", runID, id, ErrNotPending)
	}
	if err != nil {
		return err
	}
	e.approvals.broadcast()
	return nil
}

// awaitApproval asks a person to allow what (under the run's key id) and
// waits for the decision, the deadline or ctx. A resumed run asking again
// under the same id finds its request, and the decision if one was made
// meanwhile. It returns the approval as decided (approved, denied or
// expired).
func (r *run) awaitApproval(ctx context.Context, ns *nodeState, id, kind, what string) (journal.Approval, error) {
	nodeID := ""
	if ns != nil {
		nodeID = ns.ID
	}
	now := time.Now()
	// A person approves exactly what they are shown, so what is asked is
	// never cut: what is too long to read is denied without asking (and
	// never shown as pending, not even for an instant).
	if len(what) > MaxApprovalText {
		a := journal.Approval{RunID: r.id, ID: id, NodeID: nodeID, Kind: kind, What: clip(what, 2000), Status: journal.ApprovalDenied,
			By: "hive", Note: fmt.Sprintf("%d bytes are too many for a person to review (at most %d)", len(what), MaxApprovalText), Created: now, Decided: now}
		ev := Event{Type: EventApproval, Text: fmt.Sprintf("%s %s: denied by hive: %s", kind, id, a.Note)}
		if ns != nil {
			ev.Node = ptr(ns.snapshot(r))
		}
		r.publish(ev)
		return a, nil
	}
	a, err := r.e.store.RequestApproval(ctx, journal.Approval{RunID: r.id, ID: id, NodeID: nodeID, Kind: kind,
		What: what, Created: now, Deadline: now.Add(r.e.opts.Approval.timeout())})
	if err != nil {
		return a, err
	}
	event := func(text string) {
		ev := Event{Type: EventApproval, Text: text}
		if ns != nil {
			ev.Node = ptr(ns.snapshot(r))
		}
		r.publish(ev)
	}
	if a.Status == journal.ApprovalPending {
		event(fmt.Sprintf("waiting for a person: %s %s (hive approve %s %s --yes or --no)", kind, id, r.id, id))
		r.e.log.Warn("waiting for approval", "run", r.id, "approval", id, "what", clip(what, 200),
			"decide", fmt.Sprintf("hive approvals %s; hive approve %s %s --yes or --no", r.id, r.id, id))
	}
	t := time.NewTicker(approvalPoll)
	defer t.Stop()
	var deadline <-chan time.Time
	if !a.Deadline.IsZero() {
		tm := time.NewTimer(time.Until(a.Deadline))
		defer tm.Stop()
		deadline = tm.C
	}
	for a.Status == journal.ApprovalPending {
		wake := r.e.approvals.changed()
		if !a.Deadline.IsZero() && !time.Now().Before(a.Deadline) {
			err := r.e.store.Decide(ctx, r.id, id, journal.ApprovalExpired, "no decision before the deadline", "hive")
			if err != nil && !errors.Is(err, journal.ErrDecided) {
				return a, err
			}
		} else {
			select {
			case <-ctx.Done():
				return a, context.Cause(ctx)
			case <-wake:
			case <-t.C:
			case <-deadline:
			}
		}
		if a, err = r.e.store.Approval(ctx, r.id, id); err != nil {
			return a, err
		}
	}
	by := a.By
	if by == "" {
		by = "nobody"
	}
	text := fmt.Sprintf("%s %s: %s by %s", kind, id, a.Status, by)
	if a.Note != "" {
		text += ": " + a.Note
	}
	event(text)
	return a, nil
}

// refusal says why an approval that did not pass stopped what it held.
func refusal(a journal.Approval) string {
	if a.Status == journal.ApprovalExpired {
		return "no one approved it in time"
	}
	s := "denied by " + a.By
	if a.Note != "" {
		s += ": " + a.Note
	}
	return s
}

// holdTask screens the run's task with the policy's classifier, when one
// is configured, and waits for a person when a rule or the classifier
// holds it; it fails when the task is blocked or not allowed.
func (r *run) holdTask(ctx context.Context, task string) error {
	f := r.e.opts.Screen.Held(screen.Task, task)
	if c := r.e.opts.Screen.Classifier(); c != nil {
		cf, err := r.classify(ctx, c, task)
		if err != nil {
			return err
		}
		if cf != nil {
			r.publish(Event{Type: EventScreen, Text: "task: " + cf.String() + ", " + string(cf.Action)})
			switch {
			case cf.Action == screen.Block:
				return &screen.Refusal{Where: screen.Task, Finding: *cf}
			case cf.Action == screen.Hold && f == nil:
				f = cf
			}
		}
	}
	if f == nil {
		return nil
	}
	a, err := r.awaitApproval(ctx, nil, "task", "task", fmt.Sprintf("the task, held by the policy's %s:\n%s", f, task))
	if err != nil {
		return err
	}
	if a.Status != journal.ApprovalApproved {
		return fmt.Errorf("the task was not allowed: %s", refusal(a))
	}
	return nil
}

// classify asks the policy's classifier about the task: a billed, journaled
// call of a screen node (a resumed run reads its verdict back). It
// returns the finding, nil when the task is not flagged; an error only
// when the run is stopping or out of budget.
func (r *run) classify(ctx context.Context, c *screen.ClassifierConfig, task string) (*screen.Finding, error) {
	system, user := c.Prompt(task)
	vc := &verifierCaller{r: r, key: "screen/task"}
	resp, err := vc.Call(ctx, c.Model, &llm.Request{System: system, Messages: []llm.Message{llm.UserText(user)}, MaxTokens: 300})
	var ex *exhaustedError
	switch {
	case errors.As(err, &ex):
		vc.done("out of budget")
		return nil, err
	case err != nil && ctx.Err() != nil:
		return nil, err
	}
	var v screen.Verdict
	if err == nil {
		v, err = screen.ParseVerdict(resp.Text())
	}
	f := c.Finding(v, err)
	outcome := "not flagged"
	if f != nil {
		outcome = f.String() + ", " + string(f.Action)
	}
	vc.done(outcome)
	return f, nil
}

// ApprovalView is an approval as hive approvals --json and the API show
// it.
type ApprovalView struct {
	Run      string    `json:"run_id"`
	ID       string    `json:"id"`
	Node     string    `json:"node_id,omitempty"`
	Kind     string    `json:"kind"`
	What     string    `json:"what"`
	Status   string    `json:"status"`
	Note     string    `json:"note,omitempty"`
	By       string    `json:"decided_by,omitempty"`
	Created  time.Time `json:"created"`
	Deadline time.Time `json:"deadline,omitzero"`
	Decided  time.Time `json:"decided,omitzero"`
}

// ViewApproval is a's view.
func ViewApproval(a journal.Approval) ApprovalView {
	return ApprovalView{Run: a.RunID, ID: a.ID, Node: a.NodeID, Kind: a.Kind, What: a.What, Status: a.Status, Note: a.Note, By: a.By,
		Created: a.Created, Deadline: a.Deadline, Decided: a.Decided}
}
