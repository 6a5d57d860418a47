package main

import (
	"reflect"
	"testing"

	"github.com/hive-swarm/hive/internal/swarm"
	"github.com/hive-swarm/hive/internal/verify"
)

func TestVerificationCounts(t *testing.T) {
	pass := &verify.Verdict{Outcome: "pass", Verifier: "tests"}
	fail := &verify.Verdict{Outcome: "fail", Verifier: "tests"}
	w := func(id string, tier int, model string, s swarm.Status, attempt int, v *verify.Verdict) swarm.Node {
		return swarm.Node{ID: id, Role: swarm.RoleWorker, Tier: tier, Model: model, Status: s, Attempt: attempt, Verdict: v, Cost: 10}
	}
	nodes := []swarm.Node{
		{ID: "lead", Role: swarm.RoleLead, Model: "lead", Status: swarm.StatusDone, Cost: 100},
		w("1", 0, "cheap", swarm.StatusDone, 0, pass),      // accepted
		w("2", 0, "cheap", swarm.StatusDone, 2, pass),      // accepted after repairs
		w("3", 0, "cheap", swarm.StatusEscalated, 2, fail), // moved up
		w("3^1", 1, "strong", swarm.StatusDone, 0, pass),   // accepted on tier 1
		w("4", 0, "cheap", swarm.StatusFailed, 0, fail),    // failed for good
		w("5", 0, "cheap", swarm.StatusDone, 0, nil),       // done, never verified
		w("6", 1, "strong2", swarm.StatusRunning, 0, nil),  // still going
	}
	got := verification(nodes)
	want := []tierStats{
		{Tier: 0, Models: []string{"cheap"}, Nodes: 5, Accepted: 2, Repaired: 1, Escalated: 1, Failed: 1, CostNanos: 50},
		{Tier: 1, Models: []string{"strong", "strong2"}, Nodes: 2, Accepted: 1, CostNanos: 20},
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("verification:\n got %+v\nwant %+v", got, want)
	}
}
