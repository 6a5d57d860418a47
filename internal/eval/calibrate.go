package eval

import (
	"cmp"
	"context"
	"fmt"
	"hash/fnv"
	"slices"
	"strings"

	"github.com/hive-swarm/hive/internal/swarm"
	"github.com/hive-swarm/hive/internal/verify"
)

// A score strategy's vote has two thresholds: the share of the probes on
// which an independent answer must agree with the submission to count for
// it, and the margin by which those for must outnumber those against. They
// are chosen by cross-validation over problems, never on the problem being
// scored: a first run (the calibration) gates the first tier on the tests
// alone and records, for every answer that passes them, how much each
// sample agrees with it; hidden tests label those answers right or wrong;
// the problems are split into folds, and each fold is scored with the
// thresholds that did best on the other folds. "Best" is the fewest
// rejections among the thresholds whose false-accept rate (wrong answers
// accepted over answers judged) is at most the target; when none meets
// it, the lowest false-accept rate.
//
// The calibration run is a measurement, not part of the strategy: its
// calls are not in the strategy's cost. A deployment would calibrate the
// same way on labelled problems of its own.

// Folds is how many folds the problems are split into.
const Folds = 10

// DefaultTargetFA is the false-accept rate a calibration aims at when
// none is given: one wrong answer in twenty accepted.
const DefaultTargetFA = 0.05

// agreeGrid are the shares a calibration tries. Shares are recorded with
// exceptions counted as agreeing (a share below 1), so 1 is not among them.
var agreeGrid = []float64{0.5, 0.6, 0.7, 0.8, 0.9}

// Threshold is one (agree, margin) pair and the problems scored with it.
type Threshold struct {
	Agree    float64 `json:"agree"`
	Margin   int     `json:"margin"`
	Problems int     `json:"problems"`
}

// Calibration says how a score strategy's thresholds were chosen and what
// its gate did without them.
type Calibration struct {
	Folds    int     `json:"folds"`
	TargetFA float64 `json:"target_false_accept_rate"`
	// Judged counts the first tier's answers that passed the tests: the
	// labelled examples the thresholds were chosen on.
	Judged int `json:"judged"`
	// Chosen lists the thresholds used and how many problems each scored.
	Chosen []Threshold `json:"chosen"`
	// Without is the gate without the vote (the calibration run: the
	// first tier's answers accepted on the tests alone, samples bought
	// but not counted): its false accepts and rejects.
	FalseAcceptsWithout int `json:"false_accepts_without"`
	FalseRejectsWithout int `json:"false_rejects_without"`
}

// calItem is one labelled first-tier answer.
type calItem struct {
	fold      int
	agreement []float64
	right     bool
}

// fold assigns a problem to a fold by its id, so that the split does not
// depend on the order problems are listed in.
func fold(id string, folds int) int {
	h := fnv.New32a()
	h.Write([]byte(id))
	return int(h.Sum32() % uint32(folds))
}

// choose returns the thresholds that do best on items, trying margins
// from -maxVoters (accept every answer that passes the tests) to
// maxVoters.
func choose(items []calItem, target float64, maxVoters int) Threshold {
	type key struct {
		over     bool    // the false-accept rate misses the target
		overRate float64 // by how much, when it does
		rejected int
		wrong    int
	}
	var best Threshold
	var bestKey key
	found := false
	for margin := -maxVoters; margin <= maxVoters; margin++ {
		for _, agree := range agreeGrid {
			var k key
			for _, it := range items {
				if verify.NetVote(it.agreement, agree) >= margin {
					if !it.right {
						k.wrong++
					}
				} else {
					k.rejected++
				}
			}
			rate := float64(k.wrong) / float64(max(len(items), 1))
			if rate > target {
				k.over, k.overRate = true, rate
			}
			better := !found || cmp.Or(
				boolCompare(k.over, bestKey.over),
				cmp.Compare(k.overRate, bestKey.overRate),
				cmp.Compare(k.rejected, bestKey.rejected),
				cmp.Compare(k.wrong, bestKey.wrong)) < 0
			if better {
				best, bestKey, found = Threshold{Agree: agree, Margin: margin}, k, true
			}
		}
	}
	return best
}

func boolCompare(a, b bool) int {
	switch {
	case a == b:
		return 0
	case !a:
		return -1
	}
	return 1
}

// crossValidate chooses each problem's thresholds on the other folds'
// items.
func crossValidate(probs []problem, items []calItem, folds int, target float64, maxVoters int) (map[string]Threshold, []Threshold) {
	perFold := make([]Threshold, folds)
	for f := range folds {
		var train []calItem
		for _, it := range items {
			if it.fold != f {
				train = append(train, it)
			}
		}
		perFold[f] = choose(train, target, maxVoters)
	}
	byProblem := make(map[string]Threshold, len(probs))
	var used []Threshold
	for _, p := range probs {
		t := perFold[fold(p.id, folds)]
		byProblem[p.id] = t
		i := slices.IndexFunc(used, func(u Threshold) bool { return u.Agree == t.Agree && u.Margin == t.Margin })
		if i < 0 {
			used = append(used, t)
			i = len(used) - 1
		}
		used[i].Problems++
	}
	slices.SortFunc(used, func(a, b Threshold) int {
		return cmp.Or(cmp.Compare(b.Problems, a.Problems), cmp.Compare(a.Agree, b.Agree), cmp.Compare(a.Margin, b.Margin))
	})
	return byProblem, used
}

// calibrate runs st with its first tier gated by the tests alone, labels
// each first-tier answer that passed them with the hidden tests, and
// chooses every problem's thresholds by cross-validation.
func (ev *Evaluator) calibrate(ctx context.Context, st Strategy, probs []problem) (map[string]Threshold, *Calibration, error) {
	target := ev.TargetFA
	if target <= 0 {
		target = DefaultTargetFA
	}
	tiers, tasks, combine := plan(st, probs, false, nil)
	answers, nodes, leadName, err := ev.execute(ctx, st, tiers, tasks, combine, ev.Calibrating)
	if err != nil {
		return nil, nil, fmt.Errorf("calibration: %w", err)
	}
	without := StrategyResult{Calls: map[string]int{}}
	if err := ev.score(ctx, &without, probs, answers, nodes, leadName); err != nil {
		return nil, nil, fmt.Errorf("calibration: %w", err)
	}
	byID := make(map[string]problem, len(probs))
	for _, p := range probs {
		byID[p.id] = p
	}
	folds := min(Folds, max(len(probs), 2))
	var items []calItem
	for _, n := range nodes {
		if n.Role != swarm.RoleWorker || strings.Contains(n.ID, "^") || n.Verdict == nil || n.Verdict.Outcome != verify.Pass {
			continue
		}
		pid, _, _ := strings.Cut(n.Name, "#")
		p, ok := byID[pid]
		if !ok || p.correct == nil {
			continue
		}
		items = append(items, calItem{fold: fold(pid, folds), agreement: n.Verdict.Agreement, right: p.correct(n.Report)})
	}
	byProblem, used := crossValidate(probs, items, folds, target, st.N)
	return byProblem, &Calibration{Folds: folds, TargetFA: target, Judged: len(items), Chosen: used,
		FalseAcceptsWithout: without.FalseAccepts, FalseRejectsWithout: without.FalseRejects}, nil
}

// describe says in one line how the thresholds were chosen, which were
// used, and the gate's confusion without the vote.
func (c *Calibration) describe() string {
	var b strings.Builder
	fmt.Fprintf(&b, "thresholds by %d-fold cross-validation over problems, for at most %.3g%% false accepts among the %d first answers that passed the tests (each fold scored with what did best on the others): ",
		c.Folds, 100*c.TargetFA, c.Judged)
	for i, t := range c.Chosen {
		if i > 0 {
			b.WriteString(", ")
		}
		fmt.Fprintf(&b, "agree %.1f margin %d on %d %s", t.Agree, t.Margin, t.Problems, plural(t.Problems, "problem", "problems"))
	}
	fmt.Fprintf(&b, "; without the vote (tests alone): %d false %s, %d false %s. The calibration run is not in the cost.",
		c.FalseAcceptsWithout, plural(c.FalseAcceptsWithout, "accept", "accepts"), c.FalseRejectsWithout, plural(c.FalseRejectsWithout, "reject", "rejects"))
	return b.String()
}

func plural(n int, one, many string) string {
	if n == 1 {
		return one
	}
	return many
}
