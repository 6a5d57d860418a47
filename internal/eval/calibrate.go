package eval

import (
	"cmp"
	"context"
	"fmt"
	"hash/fnv"
	"slices"
	"strings"
	"time"

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
// its gate did with them and without.
type Calibration struct {
	Folds    int     `json:"folds"`
	TargetFA float64 `json:"target_false_accept_rate"`
	// Judged counts the first tier's answers that passed the tests: the
	// labelled examples the thresholds were chosen on.
	Judged int `json:"judged"`
	// Chosen lists the thresholds used and how many problems each scored.
	Chosen []Threshold `json:"chosen"`
	// Blind counts the folds whose training answers held no wrong one:
	// there was nothing to learn, and they accept every answer that
	// passes the tests.
	Blind int `json:"blind_folds"`
	// The first tier's verdicts (the only ones the thresholds were chosen
	// for), judged with the hidden tests: wrong answers accepted and right
	// ones rejected, with the vote (the strategy's run) and without it
	// (the calibration run, on the tests alone).
	FirstTier        Confusion `json:"first_tier"`
	FirstTierWithout Confusion `json:"first_tier_without"`
	// Mismatched counts problems whose first-tier vote in the strategy's
	// run differs from the calibration's (it should be none: the same
	// samples on the same probes).
	Mismatched int `json:"mismatched"`
	// What the calibration run cost, at list prices, and took; none of it
	// is in the strategy's cost or wall time.
	CostUSD float64        `json:"cost_usd"`
	Calls   map[string]int `json:"calls"`
	Wall    time.Duration  `json:"wall_ns"`

	votes map[string][]float64 // the calibration's first-tier agreement, by problem
}

// Confusion counts a verifier's mistakes.
type Confusion struct {
	FalseAccepts int `json:"false_accepts"`
	FalseRejects int `json:"false_rejects"`
}

// firstTier returns each problem's first-tier worker node of a run.
func firstTier(nodes []swarm.Node) map[string]swarm.Node {
	out := map[string]swarm.Node{}
	for _, n := range nodes {
		if n.Role == swarm.RoleWorker && !strings.Contains(n.ID, "^") {
			out[n.Name] = n
		}
	}
	return out
}

// confusion judges the first tier's verdicts with the hidden tests.
func confusion(first map[string]swarm.Node, byID map[string]problem) Confusion {
	var c Confusion
	for id, n := range first {
		p, ok := byID[id]
		if !ok || p.correct == nil || n.Verdict == nil || n.Verdict.Outcome == verify.Unsure || n.Report == "" {
			continue
		}
		right := p.correct(n.Report)
		switch {
		case n.Verdict.Outcome == verify.Pass && !right:
			c.FalseAccepts++
		case n.Verdict.Outcome == verify.Fail && right:
			c.FalseRejects++
		}
	}
	return c
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
func crossValidate(probs []problem, items []calItem, folds int, target float64, maxVoters int) (byProblem map[string]Threshold, used []Threshold, blind int) {
	perFold := make([]Threshold, folds)
	for f := range folds {
		var train []calItem
		for _, it := range items {
			if it.fold != f {
				train = append(train, it)
			}
		}
		if !slices.ContainsFunc(train, func(it calItem) bool { return !it.right }) {
			blind++
		}
		perFold[f] = choose(train, target, maxVoters)
	}
	byProblem = make(map[string]Threshold, len(probs))
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
	return byProblem, used, blind
}

// calibrate runs st with its first tier gated by the tests alone, labels
// each first-tier answer that passed them with the hidden tests, and
// chooses every problem's thresholds by cross-validation.
func (ev *Evaluator) calibrate(ctx context.Context, st Strategy, probs []problem) (map[string]Threshold, *Calibration, error) {
	target := ev.TargetFA
	if target <= 0 {
		target = DefaultTargetFA
	}
	start := time.Now()
	tiers, tasks, combine := plan(st, probs, false, nil)
	answers, nodes, leadName, err := ev.execute(ctx, st, tiers, tasks, combine, ev.Calibrating)
	if err != nil {
		return nil, nil, fmt.Errorf("calibration: %w", err)
	}
	// Scoring runs the hidden tests of every answer, in batches.
	run := StrategyResult{Calls: map[string]int{}}
	if err := ev.score(ctx, &run, probs, answers, nodes, leadName); err != nil {
		return nil, nil, fmt.Errorf("calibration: %w", err)
	}
	byID := problemsByID(probs)
	folds := min(Folds, max(len(probs), 2))
	first := firstTier(nodes)
	var items []calItem
	for id, n := range first {
		p, ok := byID[id]
		if !ok || p.correct == nil || n.Verdict == nil || n.Verdict.Outcome != verify.Pass {
			continue
		}
		items = append(items, calItem{fold: fold(id, folds), agreement: n.Verdict.Agreement, right: p.correct(n.Report)})
	}
	byProblem, used, blind := crossValidate(probs, items, folds, target, st.N)
	return byProblem, &Calibration{Folds: folds, TargetFA: target, Judged: len(items), Chosen: used, Blind: blind,
		FirstTierWithout: confusion(first, byID), CostUSD: run.Cost.Dollars(), Calls: run.Calls, Wall: time.Since(start),
		votes: votes(first)}, nil
}

// votes returns each first-tier answer's recorded agreement, by problem.
func votes(first map[string]swarm.Node) map[string][]float64 {
	out := make(map[string][]float64, len(first))
	for id, n := range first {
		if n.Verdict != nil {
			out[id] = n.Verdict.Agreement
		}
	}
	return out
}

// finish fills in what the strategy's own run did at the first tier.
func (c *Calibration) finish(nodes []swarm.Node, probs []problem) {
	byID := problemsByID(probs)
	first := firstTier(nodes)
	c.FirstTier = confusion(first, byID)
	for id, v := range votes(first) {
		if want, ok := c.votes[id]; !ok || !slices.Equal(v, want) {
			c.Mismatched++
		}
	}
	for id := range c.votes {
		if _, ok := first[id]; !ok {
			c.Mismatched++
		}
	}
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
	if c.Blind > 0 {
		fmt.Fprintf(&b, " (%d of the %d folds had no wrong answer to learn from among the others' and accept every answer that passes the tests)", c.Blind, c.Folds)
	}
	fmt.Fprintf(&b, ". At the first tier, with the vote: %d false %s, %d false %s; without it (tests alone): %d and %d.",
		c.FirstTier.FalseAccepts, plural(c.FirstTier.FalseAccepts, "accept", "accepts"), c.FirstTier.FalseRejects, plural(c.FirstTier.FalseRejects, "reject", "rejects"),
		c.FirstTierWithout.FalseAccepts, c.FirstTierWithout.FalseRejects)
	fmt.Fprintf(&b, " The calibration run (not in the cost): $%.4f, %s.", c.CostUSD, c.Wall.Round(time.Second))
	if c.Mismatched > 0 {
		fmt.Fprintf(&b, " WARNING: %d first-tier %s differed from the calibration's.", c.Mismatched, plural(c.Mismatched, "vote", "votes"))
	}
	return b.String()
}

func plural(n int, one, many string) string {
	if n == 1 {
		return one
	}
	return many
}
