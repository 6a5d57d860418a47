package mcpserver

import (
	"context"
	"fmt"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/hive-swarm/hive/internal/price"
	"github.com/hive-swarm/hive/internal/swarm"
)

// A call's progress counts the run's finished nodes out of the nodes its
// tree has so far (the total grows as the lead delegates). The protocol
// asks that progress rise with every notification; so when something
// other than a node's end is worth telling (a new node, money spent, a
// heartbeat), progress moves a shrinking fraction of the way to the next
// finished node: done + 1/2, + 2/3, + 3/4, …, never reaching it.

// tree is what a call knows of its run's tree, from the run's events.
type tree struct {
	final map[string]bool // node id → whether it ended
	done  int             // nodes that ended
	cost  price.Amount    // the run's spend
}

// apply takes in an event and reports whether it changed the tree.
func (t *tree) apply(ev swarm.Event) bool {
	changed := false
	if c := price.Amount(ev.CostNanos); c > t.cost {
		t.cost, changed = c, true
	}
	if ev.Type != swarm.EventNode || ev.Node == nil {
		return changed
	}
	ended, seen := t.final[ev.Node.ID]
	now := ev.Node.Status.Final()
	switch {
	case !seen:
		t.final[ev.Node.ID] = now
		if now {
			t.done++
		}
		return true
	case now && !ended:
		t.final[ev.Node.ID] = true
		t.done++
		return true
	}
	return changed
}

// meter makes strictly rising progress values from a tree's counts.
type meter struct {
	sent  bool
	last  float64 // the last progress sent
	done  int     // the finished nodes last was made from
	steps int     // fractional steps since done last changed
}

// next returns the progress to send for a tree with done of nodes
// finished, and false when none can be sent now (nothing rose, and no
// fraction is left: every node has ended).
func (m *meter) next(done, nodes int) (progress, total float64, ok bool) {
	total = float64(max(nodes, 1))
	if !m.sent || done > m.done {
		m.sent, m.done, m.steps, m.last = true, done, 0, float64(done)
		return m.last, total, true
	}
	if done >= nodes {
		return 0, 0, false
	}
	m.steps++
	p := float64(done) + 1 - 1/float64(m.steps+1)
	if p <= m.last {
		return 0, 0, false // the fractions ran out of float precision
	}
	m.last = p
	return p, total, true
}

// waitReporting waits for run id to end like [swarm.Engine.Wait], telling
// the caller how the run goes through progress notifications on token:
// at once, then at most every ProgressInterval while the tree changes,
// and every Heartbeat while it does not.
func (s *Server) waitReporting(ctx context.Context, ss *mcp.ServerSession, token any, id string, budget price.Amount) (swarm.Result, error) {
	wctx, cancel := context.WithCancel(ctx)
	type ended struct {
		res swarm.Result
		err error
	}
	result := make(chan ended, 1)
	go func() {
		res, err := s.engine.Wait(wctx, id)
		result <- ended{res, err}
	}()
	watched := s.engine.Watch(wctx, id, 0)
	defer func() {
		// Stop the watcher and wait for it (the waiter has answered).
		cancel()
		for range watched {
		}
	}()
	events := watched // nil once closed

	t := &tree{final: map[string]bool{}}
	var m meter
	notify := func() {
		p, total, ok := m.next(t.done, len(t.final))
		if !ok {
			return
		}
		err := ss.NotifyProgress(ctx, &mcp.ProgressNotificationParams{ProgressToken: token, Progress: p, Total: total,
			Message: progressText(id, t, budget)})
		if err != nil {
			s.log.Debug("send progress", "run", id, "err", err)
		}
	}
	notify()
	tick := time.NewTicker(s.ProgressInterval)
	defer tick.Stop()
	changed, last := false, time.Now()
	for {
		select {
		case ev, open := <-events:
			if !open {
				events = nil // the run finished, or ctx ended: result tells
				continue
			}
			changed = t.apply(ev) || changed
		case <-tick.C:
			if changed || time.Since(last) >= s.Heartbeat {
				notify()
				changed, last = false, time.Now()
			}
		case r := <-result:
			if r.err == nil {
				// The journal has the whole tree now; tell where it ended.
				if nodes, err := s.engine.Nodes(ctx, id); err == nil {
					t = &tree{final: map[string]bool{}, cost: r.res.Cost}
					for i := range nodes {
						t.apply(swarm.Event{Type: swarm.EventNode, Node: &nodes[i]})
					}
				}
				notify()
			}
			return r.res, r.err
		}
	}
}

// progressText says how a run goes: "run r…: 2 of 6 nodes done, 4
// running; spent $0.0123 of $1.00".
func progressText(id string, t *tree, budget price.Amount) string {
	if len(t.final) == 0 {
		return fmt.Sprintf("run %s: starting; spent %s of %s", id, t.cost, budgetText(budget))
	}
	return fmt.Sprintf("run %s: %d of %d nodes done, %d running; spent %s of %s", id, t.done, len(t.final),
		len(t.final)-t.done, t.cost, budgetText(budget))
}
