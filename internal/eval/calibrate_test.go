package eval

import (
	"fmt"
	"testing"

	"github.com/hive-swarm/hive/internal/verify"
)

// calSet is a labelled set whose wrong answers most samples disagree
// with: right answers are confirmed by two samples of three, wrong ones
// by one, and a few right ones by none.
func calSet(n int) ([]problem, []calItem) {
	var probs []problem
	var items []calItem
	for i := range n {
		id := fmt.Sprintf("P/%d", i)
		probs = append(probs, problem{id: id})
		it := calItem{fold: fold(id, Folds), right: true, agreement: []float64{1, 0.95, 0.2}}
		switch i % 10 {
		case 0: // wrong, one sample agrees
			it.right, it.agreement = false, []float64{0.9, 0.3, 0.1}
		case 1: // right, but no sample agrees well
			it.agreement = []float64{0.6, 0.4, 0.3}
		}
		items = append(items, it)
	}
	return probs, items
}

func TestChooseMeetsTargetWithFewestRejections(t *testing.T) {
	_, items := calSet(100)
	th := choose(items, 0.05, 3)
	accepted, wrong, rejectedRight := 0, 0, 0
	for _, it := range items {
		if verify.NetVote(it.agreement, th.Agree) >= th.Margin {
			accepted++
			if !it.right {
				wrong++
			}
		} else if it.right {
			rejectedRight++
		}
	}
	// 10% of the answers are wrong: accepting everything misses the
	// target; net >= 1 at agree above 0.9 rejects the wrong ones, and at
	// 0.95 or below the right ones keep two votes of three. The fewest
	// rejections: the ten wrong answers and the ten right ones no sample
	// confirms.
	if wrong != 0 || rejectedRight != 10 {
		t.Errorf("chose agree %.1f margin %d: %d wrong accepted, %d right rejected; want 0 and 10", th.Agree, th.Margin, wrong, rejectedRight)
	}

	// A target the set already meets accepts every answer.
	if th := choose(items, 0.2, 3); th.Margin != -3 {
		t.Errorf("target 20%%: chose margin %d, want -3 (accept all)", th.Margin)
	}

	// An unreachable target (every right answer looks like a wrong one)
	// falls back to the lowest false-accept rate.
	same := []calItem{{right: false, agreement: []float64{0.2}}, {right: true, agreement: []float64{0.2}}}
	th = choose(same, 0, 1)
	if verify.NetVote(same[0].agreement, th.Agree) >= th.Margin {
		t.Errorf("unreachable target: chose agree %.1f margin %d, which accepts the wrong answer", th.Agree, th.Margin)
	}
}

// A problem's thresholds never depend on its own label: flipping the
// labels of one fold's answers leaves that fold's thresholds as they were.
func TestCrossValidateHoldsOut(t *testing.T) {
	probs, items := calSet(200)
	before, _, _ := crossValidate(probs, items, Folds, 0.05, 3)
	for f := range Folds {
		flipped := append([]calItem(nil), items...)
		for i := range flipped {
			if flipped[i].fold == f {
				flipped[i].right = !flipped[i].right
			}
		}
		after, _, _ := crossValidate(probs, flipped, Folds, 0.05, 3)
		changed := false
		for _, p := range probs {
			if fold(p.id, Folds) == f && after[p.id] != before[p.id] {
				t.Fatalf("fold %d: %s scored with %+v after its own labels flipped, %+v before", f, p.id, after[p.id], before[p.id])
			}
			if fold(p.id, Folds) != f && after[p.id] != before[p.id] {
				changed = true
			}
		}
		// The flip must reach the other folds, or the test shows nothing.
		if !changed {
			t.Errorf("fold %d: flipping its labels changed no other fold's thresholds", f)
		}
	}
}

func TestFoldIsStable(t *testing.T) {
	seen := map[int]int{}
	for i := range 164 {
		id := fmt.Sprintf("HumanEval/%d", i)
		f := fold(id, Folds)
		if f != fold(id, Folds) || f < 0 || f >= Folds {
			t.Fatalf("fold(%s) = %d", id, f)
		}
		seen[f]++
	}
	for f := range Folds {
		if seen[f] < 5 {
			t.Errorf("fold %d holds %d of 164 problems: %v", f, seen[f], seen)
		}
	}
}
