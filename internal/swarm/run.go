package swarm

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hive-swarm/hive/internal/budget"
	"github.com/hive-swarm/hive/internal/llm"
	"github.com/hive-swarm/hive/internal/price"
	"github.com/hive-swarm/hive/internal/provider"
	"github.com/hive-swarm/hive/internal/telemetry"
	"github.com/hive-swarm/hive/internal/workspace"
)

// run is the in-memory state of one run while its workflow executes.
type run struct {
	e    *Engine
	id   string
	spec Spec

	// budget is the whole run's; pool is budget less the lead's final-turn
	// reserve, and every call but that final turn draws from pool.
	budget *budget.Budget
	pool   *budget.Budget

	// workCtx is the context of every worker; cancelling it stops them
	// all (budget exhausted, run cancelled).
	workCtx    context.Context
	stopWork   context.CancelCauseFunc
	slots      chan struct{} // MaxWorkers tokens
	exhaustErr error         // the first budget exhaustion, guarded by mu
	cancelled  atomic.Bool   // set by Engine.Cancel
	// ws is the run's workspace, nil for none: opened when the workflow
	// starts, closed when it ends.
	ws *workspace.Workspace
	// mcp holds the run's MCP servers, started at their first use.
	mcp mcpState
	// batch holds the run's batch calls in flight; made at the first.
	batch *batches // guarded by mu
	// memo holds the steps journaled by earlier executions of this run,
	// read once when the workflow starts; read-only after.
	memo map[string][]byte
	// span is the root span of this execution of the run (telemetry.go),
	// nil when it is not traced; the workflow's goroutine's.
	span *telemetry.Span

	mu       sync.Mutex
	nodes    map[string]*nodeState // guarded by mu
	order    []string              // node ids in creation order; guarded by mu
	children map[string]int        // next child index per parent; guarded by mu
	kids     map[string][]string   // ids created under each id (children and escalations); guarded by mu
	change   chan struct{}         // closed and replaced when a task ends; guarded by mu
	wg       sync.WaitGroup        // collectors of DBOS task outcomes
	cost     price.Amount          // guarded by mu
	usage    llm.Usage             // guarded by mu
}

// nodeState is a node and what only the running process knows of it.
type nodeState struct {
	Node   // guarded by run.mu
	cancel context.CancelCauseFunc
	done   chan struct{} // closed when the node's task is over
	result *taskResult   // set before done is closed
	// journaledWrites are the bytes of file changes journaled (files.go);
	// guarded by run.mu.
	journaledWrites int64
	// span is the node's span (telemetry.go); guarded by run.mu.
	span *telemetry.Span
}

func (r *run) node(id string) *nodeState {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.nodes[id]
}

// newNode creates a child of parent (or the lead when parent is "") with a
// deterministic id: the lead is "lead", its children "1", "2", …, and a
// child of "3" is "3.1". Deterministic ids let a resumed run find each
// node's journaled calls.
func (r *run) newNode(parent string, role Role, name, model string, tier, depth int) *nodeState {
	r.mu.Lock()
	var id string
	switch {
	case role == RoleScreen:
		id = "screen"
	case parent == "":
		id = "lead"
	default:
		r.children[parent]++
		k := r.children[parent]
		if parent == "lead" {
			id = fmt.Sprint(k)
		} else {
			id = fmt.Sprintf("%s.%d", parent, k)
		}
	}
	ns := &nodeState{Node: Node{ID: id, RunID: r.id, Parent: parent, Role: role, Name: name, Model: model, Tier: tier, Depth: depth, Status: StatusPending}, done: make(chan struct{})}
	if old, ok := r.nodes[id]; ok {
		// Created again while a resumed run replays: keep the record.
		ns = old
	} else {
		r.nodes[id] = ns
		r.order = append(r.order, id)
		r.kids[parent] = append(r.kids[parent], id)
	}
	r.mu.Unlock()
	r.publishNode(ns)
	return ns
}

// escalationNode creates the node that retries a task on a stronger tier:
// a sibling of the failed attempt, named after it.
func (r *run) escalationNode(prev *nodeState, model string, tier int) *nodeState {
	r.mu.Lock()
	base := prev.ID
	n := 1
	id := fmt.Sprintf("%s^%d", base, n)
	for r.nodes[id] != nil && r.nodes[id].Tier != tier {
		n++
		id = fmt.Sprintf("%s^%d", base, n)
	}
	ns := r.nodes[id]
	if ns == nil {
		ns = &nodeState{Node: Node{ID: id, RunID: r.id, Parent: prev.Parent, Role: RoleWorker, Name: prev.Name, Model: model, Tier: tier, Depth: prev.Depth, Status: StatusPending}, done: make(chan struct{})}
		r.nodes[id] = ns
		r.order = append(r.order, id)
		r.kids[base] = append(r.kids[base], id)
	}
	r.mu.Unlock()
	r.publishNode(ns)
	return ns
}

// setStatus changes a node's status (and error) and publishes it.
func (r *run) setStatus(ns *nodeState, s Status, errText string) {
	r.mu.Lock()
	ns.Status = s
	if errText != "" {
		ns.Error = r.e.opts.Redact.String(errText)
	}
	now := time.Now()
	if s == StatusRunning && ns.Started.IsZero() {
		ns.Started = now
	}
	if s.Final() {
		ns.Ended = now
	}
	r.mu.Unlock()
	r.publishNode(ns)
}

// update applies f to a node under the lock and publishes it.
func (r *run) update(ns *nodeState, f func(n *Node)) {
	r.mu.Lock()
	f(&ns.Node)
	r.mu.Unlock()
	r.publishNode(ns)
}

// chargeCall bills ns a model call of m, as journaled in rec, and notes
// what the rate limits did to it and any anomaly of its bill.
func (r *run) chargeCall(ns *nodeState, m *provider.Model, rec *callRecord, live bool) {
	u, cost := rec.Usage, price.Amount(rec.CostNanos)
	h := rec.Hedge
	if h != nil && h.Won {
		if hm, err := r.e.models.Get(h.Model); err == nil {
			m = hm // the answer taken came from the hedge's model
		}
	}
	saved := cacheSaved(m, u, cost, rec.Batch)
	r.mu.Lock()
	if h != nil {
		u = u.Add(h.Usage)
		cost += price.Amount(h.CostNanos)
		ns.HedgeCost += price.Amount(h.CostNanos)
		ns.Hedges++
		if h.Won {
			ns.HedgeWins++
		}
	}
	ns.Usage = ns.Usage.Add(u)
	ns.Cost += cost
	ns.CacheSaved += saved
	ns.WaitMillis += rec.WaitMillis
	ns.Retries += rec.Retries
	if rec.Batch {
		ns.BatchCalls++
	}
	ns.Calls++
	r.usage = r.usage.Add(u)
	r.cost += cost
	lead := ns.Role == RoleLead
	r.mu.Unlock()
	// A worker's bill shows with its next status change; the lead's, whose
	// turns are long apart, at once.
	if lead {
		r.publishType(ns, EventUsage)
	}
	if rec.Anomaly != "" {
		r.anomaly(ns, rec.Anomaly, live)
	}
}

// maxAnomalies bounds the anomalies a node keeps (the count goes on).
const maxAnomalies = 8

// anomaly records on a node something that should not have happened,
// announces it, and, when it happened in this process (live), logs it.
func (r *run) anomaly(ns *nodeState, text string, live bool) {
	r.mu.Lock()
	if len(ns.Anomalies) < maxAnomalies {
		ns.Anomalies = append(ns.Anomalies, text)
	}
	n := ns.Node
	r.mu.Unlock()
	if live {
		r.e.log.Warn("anomaly", "run", r.id, "node", n.ID, "model", n.Model, "what", text)
	}
	r.publishNode(ns)
	r.publish(Event{Type: EventAnomaly, Node: &n, Text: text})
}

func (r *run) publishNode(ns *nodeState) { r.publishType(ns, EventNode) }

func (r *run) publishType(ns *nodeState, t EventType) {
	r.mu.Lock()
	n := ns.Node // a copy: subscribers must not see later changes
	cost := r.cost
	r.mu.Unlock()
	data := nodeJSON(&n)
	r.e.store.PutNode(r.id, n.ID, data)
	r.e.bus.Publish(Event{RunID: r.id, Type: t, Node: &n, CostNanos: int64(cost), nodeJSON: data})
}

func (r *run) publish(ev Event) {
	ev.RunID = r.id
	r.mu.Lock()
	ev.CostNanos = int64(r.cost)
	r.mu.Unlock()
	r.e.bus.Publish(ev)
}

// subtree returns copies of id's node and all its descendants and
// escalations, for a task result that a resumed run restores.
func (r *run) subtree(id string) []Node {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []Node
	var walk func(id string)
	walk = func(id string) {
		if ns := r.nodes[id]; ns != nil {
			out = append(out, ns.Node)
		}
		for _, k := range r.kids[id] {
			walk(k)
		}
	}
	walk(id)
	return out
}

// restore puts journaled nodes back into the tree (a finished task whose
// result a resumed run read from the journal).
func (r *run) restore(nodes []Node) {
	for _, n := range nodes {
		r.mu.Lock()
		ns := r.nodes[n.ID]
		if ns == nil {
			ns = &nodeState{done: make(chan struct{})}
			r.nodes[n.ID] = ns
			r.order = append(r.order, n.ID)
			under := n.Parent
			if i := strings.LastIndexByte(n.ID, '^'); i >= 0 {
				under = n.ID[:i] // an escalation hangs under its attempt
			}
			r.kids[under] = append(r.kids[under], n.ID)
		}
		// Cost is charged by whoever restores the task, once.
		ns.Node = n
		r.mu.Unlock()
		r.publishNode(ns)
	}
}

// totals returns the run's spend.
// chargeAbandoned adds to ns's bill a batched call it gave up once the
// provider had it: its worst case, as the budget holds it.
func (r *run) chargeAbandoned(ns *nodeState, cost price.Amount) {
	r.mu.Lock()
	ns.Cost += cost
	ns.BatchCalls++
	ns.Calls++
	r.cost += cost
	r.mu.Unlock()
}

func (r *run) totals() (price.Amount, llm.Usage) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.cost, r.usage
}

// journaled returns the result an earlier execution of this run journaled
// under key.
func (r *run) journaled(key string) ([]byte, bool, error) {
	data, ok := r.memo[key]
	return data, ok, nil
}
