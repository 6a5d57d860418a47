package swarm

import (
	"encoding/json"
	"reflect"
	"testing"
	"time"

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
