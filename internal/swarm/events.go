package swarm

import (
	"encoding/json"
	"strconv"
	"sync"
	"time"

	"github.com/hive-swarm/hive/internal/jsonstr"
)

// EventType names a state change.
type EventType string

const (
	EventRunStarted  EventType = "run_started"
	EventRunResumed  EventType = "run_resumed"
	EventRunFinished EventType = "run_finished"
	EventNode        EventType = "node"     // a node was created or changed status
	EventUsage       EventType = "usage"    // a node's model call was billed
	EventArtifact    EventType = "artifact" // an artifact was stored
	EventVerdict     EventType = "verdict"  // a verifier judged a node's result
	EventBudget      EventType = "budget"   // a budget was exhausted
	EventAnomaly     EventType = "anomaly"  // something that should not happen did (Text says what)
	EventTool        EventType = "tool"     // a node called an MCP tool (Text: the tool, its time, its error)
	EventApproval    EventType = "approval" // a run waits for a person, or got their decision (Text says which)
	EventScreen      EventType = "screen"   // the policy's screen found something in a task or report (Text: the rule, the evidence, the action)
)

// An Event is one state change of a run, numbered by Seq within the run.
// Node carries the node's state after the change.
type Event struct {
	Seq    int64     `json:"seq,omitempty"` // always set once published
	RunID  string    `json:"run_id"`
	Time   time.Time `json:"time"`
	Type   EventType `json:"type"`
	Node   *Node     `json:"node,omitempty"`
	Status Status    `json:"status,omitempty"` // for run events
	Text   string    `json:"text,omitempty"`   // an answer, an error, an artifact id
	// CostNanos is the run's spend so far.
	CostNanos int64 `json:"cost_nanos"`

	nodeJSON []byte // Node encoded, when the publisher has it already
}

// encode returns ev as JSON. With the node's encoding at hand it writes the
// object directly: events are the bulk of a swarm's journal, and
// reflection would encode every node a second time.
func (ev *Event) encode() []byte {
	if ev.nodeJSON == nil || ev.Node == nil {
		b, _ := json.Marshal(ev)
		return b
	}
	b := make([]byte, 0, len(ev.nodeJSON)+184+len(ev.Text))
	if ev.Seq != 0 {
		b = append(b, `{"seq":`...)
		b = strconv.AppendInt(b, ev.Seq, 10)
		b = append(b, `,"run_id":`...)
	} else {
		b = append(b, `{"run_id":`...)
	}
	b = jsonstr.Append(b, ev.RunID, true)
	b = append(b, `,"time":`...)
	b = appendJSONTime(b, ev.Time)
	b = append(b, `,"type":`...)
	b = jsonstr.Append(b, string(ev.Type), true)
	b = append(b, `,"node":`...)
	b = append(b, ev.nodeJSON...)
	b = appendField(b, "status", string(ev.Status))
	b = appendField(b, "text", ev.Text)
	b = append(b, `,"cost_nanos":`...)
	b = strconv.AppendInt(b, ev.CostNanos, 10)
	return append(b, '}')
}

// eventSink journals events (package journal's Store satisfies it). It
// may keep data: the bus never changes an event's bytes once handed over.
type eventSink interface {
	AppendEvent(runID string, seq int64, data []byte)
}

// Bus numbers, journals and fans out the events of all runs to
// in-process subscribers.
type Bus struct {
	sink eventSink

	mu   sync.Mutex
	seq  map[string]int64                      // last seq per run; guarded by mu
	subs map[string]map[*Subscription]struct{} // per run; guarded by mu
	// open counts the executions of each run in this process, between
	// openRun and closeRun (two overlap when a run is resumed while its
	// cancelled execution winds down); guarded by mu.
	open map[string]int
}

// NewBus returns a bus journaling to sink (nil: no journal).
func NewBus(sink eventSink) *Bus {
	return &Bus{sink: sink, seq: map[string]int64{}, subs: map[string]map[*Subscription]struct{}{}, open: map[string]int{}}
}

// A Subscription receives a run's events on C. When the subscriber falls
// behind by more than its buffer, C is closed and Lagged reports true: the
// subscriber re-reads the journal from its last seq and subscribes again.
type Subscription struct {
	C      <-chan Event
	c      chan Event
	bus    *Bus
	run    string
	lagged bool // guarded by bus.mu
	closed bool // guarded by bus.mu
}

// Lagged reports whether the subscription was dropped for falling behind.
func (s *Subscription) Lagged() bool {
	s.bus.mu.Lock()
	defer s.bus.mu.Unlock()
	return s.lagged
}

// Close ends the subscription.
func (s *Subscription) Close() {
	s.bus.mu.Lock()
	defer s.bus.mu.Unlock()
	s.closeLocked()
}

func (s *Subscription) closeLocked() {
	if s.closed {
		return
	}
	s.closed = true
	if subs := s.bus.subs[s.run]; len(subs) > 1 {
		delete(subs, s)
	} else {
		delete(s.bus.subs, s.run) // the last one: no empty set left behind
	}
	close(s.c)
}

// Subscribe returns a subscription to runID's events published from now on.
func (b *Bus) Subscribe(runID string, buffer int) *Subscription {
	if buffer <= 0 {
		buffer = 1024
	}
	c := make(chan Event, buffer)
	s := &Subscription{C: c, c: c, bus: b, run: runID}
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.subs[runID] == nil {
		b.subs[runID] = map[*Subscription]struct{}{}
	}
	b.subs[runID][s] = struct{}{}
	return s
}

// openRun notes that an execution of runID starts in this process, and
// makes the run's numbering continue after seq, the last seq its journal
// holds (a resumed run), unless this process numbered further already.
func (b *Bus) openRun(runID string, seq int64) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.open[runID]++
	if seq > b.seq[runID] {
		b.seq[runID] = seq
	}
}

// Seq returns the last seq published for runID.
func (b *Bus) Seq(runID string) int64 {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.seq[runID]
}

// Publish numbers ev, journals it and hands it to the run's subscribers.
func (b *Bus) Publish(ev Event) Event {
	if ev.Time.IsZero() {
		ev.Time = time.Now()
	}
	// Encode what takes time outside the lock: a node, or an event
	// without one (whose seq is spliced in below). Under the lock, a node
	// event's encoding is a few appends of its node's.
	var body []byte
	if b.sink != nil && ev.nodeJSON == nil {
		if ev.Node != nil {
			ev.nodeJSON = nodeJSON(ev.Node)
		} else {
			ev.Seq = 0
			body = ev.encode()
		}
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	b.seq[ev.RunID]++
	ev.Seq = b.seq[ev.RunID]
	if b.sink != nil {
		data := body
		if data == nil {
			data = ev.encode()
		} else {
			data = make([]byte, 0, len(body)+24)
			data = append(data, `{"seq":`...)
			data = strconv.AppendInt(data, ev.Seq, 10)
			data = append(data, ',')
			data = append(data, body[1:]...)
		}
		// Under mu so that the journal sees events in seq order.
		b.sink.AppendEvent(ev.RunID, ev.Seq, data)
	}
	for s := range b.subs[ev.RunID] {
		select {
		case s.c <- ev:
		default:
			s.lagged = true
			s.closeLocked()
		}
	}
	return ev
}

// closeRun ends every subscription to runID: an execution of the run in
// this process is over, its workers drained and its last event published
// and flushed to the journal. When no other execution of it is open here,
// the run's seq counter goes too: nothing publishes for the run until it
// executes again, and openRun then numbers on from the journal.
func (b *Bus) closeRun(runID string) {
	b.mu.Lock()
	defer b.mu.Unlock()
	for s := range b.subs[runID] {
		s.closeLocked()
	}
	if b.open[runID]--; b.open[runID] <= 0 {
		delete(b.open, runID)
		delete(b.seq, runID)
	}
}
