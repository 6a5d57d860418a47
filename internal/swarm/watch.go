package swarm

import (
	"context"
	"encoding/json"

	"time"

	"github.com/hive-swarm/hive/internal/journal"
)

// Watch returns runID's events with a seq above afterSeq, in order and
// without gaps: first those already journaled, then live ones as they are
// published, re-reading the journal whenever a live subscription falls
// behind. The channel closes after the run_finished event, or when ctx
// ends. A run that executes in another process is followed by polling its
// journal.
func (e *Engine) Watch(ctx context.Context, runID string, afterSeq int64) <-chan Event {
	out := make(chan Event, 256)
	go func() {
		defer close(out)
		last := afterSeq
		send := func(ev Event) bool {
			if ev.Seq <= last {
				return true
			}
			select {
			case out <- ev:
				last = ev.Seq
			case <-ctx.Done():
				return false
			}
			if ev.Type != EventRunFinished {
				return true
			}
			// The end, unless the run was resumed after it (a cancelled
			// run can be): then more follows.
			seq, err := e.store.LastSeq(ctx, runID)
			return err == nil && seq > ev.Seq
		}
		// replay sends what the journal holds after last; false: stop.
		replay := func() bool {
			if err := e.store.Flush(ctx); err != nil {
				return false
			}
			for {
				rows, err := e.store.Events(ctx, runID, last, 1000)
				if err != nil {
					return false
				}
				for _, row := range rows {
					var ev Event
					if json.Unmarshal(row.Data, &ev) != nil {
						continue
					}
					if !send(ev) {
						return false
					}
				}
				if len(rows) < 1000 {
					return true
				}
			}
		}
		for {
			sub := e.bus.Subscribe(runID, 512) // one that lags re-reads the journal
			if !replay() {
				sub.Close()
				return
			}
			live := e.isLive(runID)
			if !live {
				sub.Close()
				// Another process (or nobody) runs it: poll the journal.
				select {
				case <-time.After(500 * time.Millisecond):
					continue
				case <-ctx.Done():
					return
				}
			}
			for ok := true; ok; {
				select {
				case ev, open := <-sub.C:
					if !open {
						ok = false
						break
					}
					if ev.Seq > last+1 && !replay() {
						sub.Close()
						return
					}
					if !send(ev) {
						sub.Close()
						return
					}
				case <-ctx.Done():
					sub.Close()
					return
				}
			}
			// Dropped for lagging, or the run closed: catch up from the
			// journal, then go on live if it still runs.
			if !replay() {
				return
			}
		}
	}()
	return out
}

// isLive reports whether runID's workflow executes in this process now.
func (e *Engine) isLive(runID string) bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	s := e.slots[runID]
	if s == nil || s.run == nil {
		return false
	}
	select {
	case <-s.finished:
		return false
	default:
		return true
	}
}

// Store returns the engine's journal.
func (e *Engine) Store() *journal.Store { return e.store }

// Nodes returns a run's nodes as journaled, in creation order.
func (e *Engine) Nodes(ctx context.Context, runID string) ([]Node, error) {
	return LoadNodes(ctx, e.store, runID)
}

// LoadNodes reads a run's nodes from a journal, in creation order.
func LoadNodes(ctx context.Context, store *journal.Store, runID string) ([]Node, error) {
	if err := store.Flush(ctx); err != nil {
		return nil, err
	}
	raw, err := store.Nodes(ctx, runID)
	if err != nil {
		return nil, err
	}
	out := make([]Node, 0, len(raw))
	for _, r := range raw {
		var n Node
		if err := json.Unmarshal(r, &n); err != nil {
			return nil, err
		}
		out = append(out, n)
	}
	return out, nil
}
