package mcpserver

import (
	"math"
	"testing"
)

// TestMeter: progress rises with every value sent, never passes the
// total, and is the count of finished nodes whenever that count moves.
func TestMeter(t *testing.T) {
	type step struct {
		done, nodes int
		ok          bool
		progress    float64
	}
	for _, tc := range []struct {
		name  string
		steps []step
	}{
		{"a run", []step{
			{0, 0, true, 0},       // started, no node yet
			{0, 1, true, 0.5},     // the lead
			{0, 4, true, 2.0 / 3}, // it delegated three tasks
			{1, 4, true, 1},       // a worker finished
			{1, 4, true, 1.5},     // a heartbeat
			{4, 4, true, 4},       // all done
			{4, 4, false, 0},      // nothing left to rise by
		}},
		{"fractions stop at the next node", []step{
			{2, 3, true, 2}, {2, 3, true, 2.5}, {2, 3, true, 2 + 2.0/3}, {2, 3, true, 2.75},
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var m meter
			last := -1.0
			for i, s := range tc.steps {
				p, total, ok := m.next(s.done, s.nodes)
				if ok != s.ok || ok && math.Abs(p-s.progress) > 1e-12 {
					t.Fatalf("step %d (%d of %d): %v %v, want %v %v", i, s.done, s.nodes, p, ok, s.progress, s.ok)
				}
				if !ok {
					continue
				}
				if p <= last || p > total || p >= float64(s.done+1) {
					t.Fatalf("step %d: progress %v after %v, total %v", i, p, last, total)
				}
				last = p
			}
		})
	}
}
