package swarm

import (
	"encoding/json"
	"reflect"
	"testing"
	"time"

	"github.com/hive-swarm/hive/internal/llm"
	"github.com/hive-swarm/hive/internal/verify"
)

// An event that carries its node's encoding encodes exactly as one that
// does not.
func TestEventEncodeReusesNode(t *testing.T) {
	n := &Node{ID: "3", RunID: "r1", Parent: "lead", Role: RoleWorker, Name: "t\"3", Model: "cheap", Status: StatusDone,
		Report: "ok <b>", Verdict: &verify.Verdict{Outcome: verify.Pass, Verifier: "tests"}, Cost: 42}
	ev := Event{RunID: "r1", Time: time.Unix(1, 2).In(time.FixedZone("x", 3600)), Type: EventNode, Node: n, CostNanos: 7, Status: StatusRunning, Text: "<a> \"q\" é\n"}
	plain := ev.encode()
	ev.nodeJSON = nodeJSON(n)
	reused := ev.encode()
	var a, b map[string]any
	if err := json.Unmarshal(plain, &a); err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(reused, &b); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(a, b) {
		t.Errorf("encodings differ:\n%s\n%s", plain, reused)
	}
	if _, ok := b["node"]; !ok || reused[0] != '{' {
		t.Errorf("no node in %s", reused)
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
			Status: StatusDone, Attempt: 2, Cost: -7, Calls: 3, Started: at, Ended: at.Add(time.Second),
			Usage:  llm.Usage{InputTokens: 1, OutputTokens: 2, CacheWriteTokens: 3, CacheReadTokens: 4},
			Report: "line\nnext \"q\" \\ \t", Error: "bad\x7f\xff",
			Verdict: &verify.Verdict{Outcome: verify.Fail, Verifier: "tests", Evidence: "<x>", Unconfirmed: true}},
		{ID: "9", Usage: llm.Usage{CacheReadTokens: 8}, Started: time.Now(), Ended: time.Now().UTC()},
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
