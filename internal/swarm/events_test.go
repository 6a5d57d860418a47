package swarm

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/hive-swarm/hive/internal/llm"
	"github.com/hive-swarm/hive/internal/verify"
)

// An event that carries its node's encoding encodes exactly as
// json.Marshal encodes it, numbered or not.
func TestEventEncodeReusesNode(t *testing.T) {
	n := &Node{ID: "3", RunID: "r1", Parent: "lead", Role: RoleWorker, Name: "t\"3", Model: "cheap", Status: StatusDone,
		Report: "ok <b>", Verdict: &verify.Verdict{Outcome: verify.Pass, Verifier: "tests"}, Cost: 42}
	for _, ev := range []Event{
		{RunID: "r1", Time: time.Unix(1, 2).In(time.FixedZone("x", 3600)), Type: EventNode, Node: n, CostNanos: 7, Status: StatusRunning, Text: "<a> \"q\" é\n"},
		{Seq: 42, RunID: "r\"1", Time: time.Unix(1, 0).UTC(), Type: EventUsage, Node: n},
	} {
		want, err := json.Marshal(&ev)
		if err != nil {
			t.Fatal(err)
		}
		ev.nodeJSON = nodeJSON(n)
		if got := ev.encode(); string(got) != string(want) {
			t.Errorf("encode:\n got %s\nwant %s", got, want)
		}
	}
}

// nodeJSON writes exactly what json.Marshal writes, for every field set or
// unset and for text that needs escaping.
func TestNodeJSONMatchesMarshal(t *testing.T) {
	at := time.Date(2026, 11, 29, 4, 5, 6, 789, time.FixedZone("x", -5*3600))
	nodes := []Node{
		{},
		{ID: "lead", RunID: "r1", Role: RoleLead, Name: "lead", Model: "big", Status: StatusRunning, Started: time.Unix(5, 0)},
		{ID: "3^1", RunID: "r\"1", Parent: "lead", Role: RoleWorker, Name: "t<3>&\u2028é\x01", Model: "cheap", Tier: 1, Depth: 2,
			Status: StatusDone, Attempt: 2, Cost: -7, CacheSaved: -3, Calls: 3, WaitMillis: 2500, Retries: 2, BatchCalls: 4, Hedges: 3, HedgeWins: 1, HedgeCost: 77, ToolCalls: 4, ToolErrors: 1, ToolMillis: 1234, Started: at, Ended: at.Add(time.Second),
			Usage:  llm.Usage{InputTokens: 1, OutputTokens: 2, CacheWriteTokens: 3, CacheReadTokens: 4, CacheWrite1hTokens: 2},
			Report: "line\nnext \"q\" \\ \t", Error: "bad\x7f\xff",
			Verdict: &verify.Verdict{Outcome: verify.Fail, Verifier: "tests", Evidence: "<x>", Unconfirmed: true}},
		{ID: "9", Usage: llm.Usage{CacheReadTokens: 8}, CacheSaved: 12345, Started: time.Now(), Ended: time.Now().UTC()},
	}
	for _, n := range nodes {
		want, err := json.Marshal(&n)
		if err != nil {
			t.Fatal(err)
		}
		if got := nodeJSON(&n); string(got) != string(want) {
			t.Errorf("nodeJSON:\n got %s\nwant %s", got, want)
		}
	}
}

// Reports reach the lead as a JSON array, one report a line, with code in
// them as written.
func TestReportsJSON(t *testing.T) {
	results := []taskResult{
		{ID: "1", Name: "a", Status: StatusDone, Model: "cheap", Report: "if a < b && c > d:\n\treturn \"x\""},
		{ID: "2", Name: "b", Status: StatusFailed, Model: "strong", Error: "no result", Artifacts: []string{"2/code.py"},
			Verdict: &verify.Verdict{Outcome: verify.Fail, Verifier: "tests", Evidence: "<assert>"}},
	}
	got := reportsJSON(results)
	lines := strings.Split(got, "\n")
	if len(lines) != 4 || lines[0] != "[" || lines[3] != "]" {
		t.Errorf("not one report a line:\n%s", got)
	}
	if !strings.Contains(got, `if a < b && c > d:\n\treturn \"x\"`) || !strings.Contains(got, `"evidence":"<assert>"`) {
		t.Errorf("code escaped:\n%s", got)
	}
	var back []map[string]any
	if err := json.Unmarshal([]byte(got), &back); err != nil {
		t.Fatal(err)
	}
	if len(back) != 2 || back[0]["report"] != results[0].Report || back[1]["error"] != "no result" || back[1]["verdict"].(map[string]any)["outcome"] != "fail" {
		t.Errorf("decoded %v", back)
	}
}

type recordSink struct{ data [][]byte }

func (s *recordSink) AppendEvent(runID string, seq int64, data []byte) { s.data = append(s.data, data) }

// What the bus journals is each event as json.Marshal writes it, seq
// included, whichever way it was encoded.
func TestPublishJournalsNumberedEvents(t *testing.T) {
	sink := &recordSink{}
	bus := NewBus(sink)
	n := &Node{ID: "1", RunID: "r", Role: RoleWorker, Status: StatusRunning}
	evs := []Event{
		{RunID: "r", Type: EventRunStarted, Status: StatusRunning, Text: "the <task>"},
		{RunID: "r", Type: EventNode, Node: n},
		{RunID: "r", Type: EventNode, Node: n, nodeJSON: nodeJSON(n)},
		{RunID: "r", Type: EventRunFinished, Status: StatusDone, Text: "answer", CostNanos: 5},
	}
	for i := range evs {
		evs[i] = bus.Publish(evs[i])
	}
	if len(sink.data) != len(evs) {
		t.Fatalf("%d events journaled, want %d", len(sink.data), len(evs))
	}
	for i, ev := range evs {
		want, _ := json.Marshal(&ev)
		if ev.Seq != int64(i+1) || string(sink.data[i]) != string(want) {
			t.Errorf("event %d (seq %d):\n got %s\nwant %s", i, ev.Seq, sink.data[i], want)
		}
	}
}

// A run's seq counter outlives the end of one execution while another
// is open (a run resumed as its cancelled execution winds down), so that
// the two never hand out the same seq; it goes with the last.
func TestBusForgetsRunAfterLastExecution(t *testing.T) {
	bus := NewBus(nil)
	bus.openRun("r", 0)
	bus.Publish(Event{RunID: "r", Type: EventRunStarted})
	bus.openRun("r", 0) // the journal lags: the counter is ahead
	bus.Publish(Event{RunID: "r", Type: EventRunResumed})
	sub := bus.Subscribe("r", 4)
	bus.closeRun("r") // the first execution ends
	if _, open := <-sub.C; open {
		t.Fatal("a subscription outlived closeRun")
	}
	if ev := bus.Publish(Event{RunID: "r", Type: EventNode}); ev.Seq != 3 {
		t.Fatalf("seq after one of two executions closed = %d, want 3", ev.Seq)
	}
	bus.closeRun("r")
	bus.mu.Lock()
	defer bus.mu.Unlock()
	if len(bus.seq)+len(bus.subs)+len(bus.open) != 0 {
		t.Fatalf("bus keeps %v %v %v after the run's last execution", bus.seq, bus.subs, bus.open)
	}
}
