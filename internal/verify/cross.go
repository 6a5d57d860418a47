package verify

import (
	"cmp"
	"context"
	_ "embed"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/hive-swarm/hive/internal/llm"
	"github.com/hive-swarm/hive/internal/sandbox"
)

//go:embed cross.py
var crossDriver string

// Each answer's CPU time in a cross-check, in seconds, for loading its
// code, the tests and every probe (less when the verifiers' CPU limit is
// less): the submission's, and an independent answer's, which only
// confirms and need not be waited for when it is slow (samples of cheap
// models loop forever often enough for it to matter).
const (
	crossLimit     = 3
	confirmerLimit = 1
)

// Cross checks Python code by cross-examination, for the wrong answers
// that pass the tests anyway. The submission must pass spec.Code (the
// tests; when they fail, the evidence is [Verifiers.Tests]'s) and must
// behave like at least spec.Min (default 1) independent answers that pass
// them too: answers given earlier to the same task (sub.Earlier: lower
// tiers, failed attempts) and spec.N samples from spec.Models, asked
// through c. An earlier answer with the submission's own code (copied
// from an escalation's history) is not independent; a sample, which saw
// the task alone, is.
//
// Behaviour is compared on probes derived from the tests: each call the
// tests make to a function, lambda or class method the submission
// defines, then the same call with each literal argument varied (0, ±1,
// empty and reversed lists, upper-cased strings, …). Two answers agree
// when every probe gives the same result (normalised: 2.0 is 2, sets are
// sorted, object addresses dropped) or raises the same exception; a probe
// that runs out of time agrees with nothing. The evidence of a
// disagreement names the probe and both results, which is what a model
// needs to repair its code.
//
// The submission runs in a sandbox of its own, the others together in
// another, each with a time limit the driver enforces.
//
// An answer that passes the tests but that nothing confirms fails with
// [Verdict.Unconfirmed] set: no independent answer agrees with it, there
// was none to ask, or no probe could be derived.
func (v *Verifiers) Cross(ctx context.Context, spec Spec, sub Submission, c Caller) Verdict {
	if spec.Lang != "" && spec.Lang != string(sandbox.Python) {
		return unsure(KindCross, fmt.Sprintf("cross-checks run Python only, not %q", spec.Lang))
	}
	if strings.TrimSpace(spec.Code) == "" {
		return unsure(KindCross, "the cross-check has no test code (spec.code is empty)")
	}
	need := cmp.Or(spec.Min, 1)
	share := spec.Agree
	if share <= 0 || share > 1 {
		share = 1
	}
	if spec.N < 0 || spec.N > maxVoteSamples {
		return unsure(KindCross, fmt.Sprintf("bad cross-check n %d: want 0 to %d samples", spec.N, maxVoteSamples))
	}
	code, ok := submittedCode(sub)
	if !ok {
		return fail(KindCross, "no code in the submission: put the code in an artifact named \"code\", or in a fenced code block of the report")
	}

	if v, dropped := droppedVerdict(KindCross, sub.Task, code); dropped {
		return v
	}

	// The submission runs first and alone, so that no other program shares
	// its sandbox: it cannot see the others' code or tamper with their
	// runs. Its run checks the tests and fixes the probes.
	mineOut, err := v.crossRun(ctx, spec.Code, []string{code}, nil, crossLimit)
	var stopped *driverStopped
	switch {
	case errors.As(err, &stopped):
		// Alone in its sandbox, only the submission can have stopped the
		// driver (a descendant that freezes it, say): that is no pass.
		return fail(KindCross, "the submission's code stopped the cross-check itself: "+stopped.Error())
	case err != nil:
		return unsure(KindCross, err.Error())
	}
	if mine := mineOut.Results[0]; !mine.Tests {
		// The tests verifier's run gives the evidence a repair needs.
		tested := v.Tests(ctx, spec, sub)
		tested.Verifier = KindCross
		if tested.Outcome == Pass {
			return unsure(KindCross, "the tests pass on their own but not in the cross-check driver: "+mine.Error)
		}
		return tested
	}
	if len(mineOut.Probes) == 0 {
		return unconfirmed("the tests pass, but no probe could be derived from them (they call no function or class the submission defines at top level), so nothing independent could be compared")
	}

	// The others: earlier answers first, then samples.
	others := make([]crossVoter, 0, len(sub.Earlier)+spec.N)
	for _, a := range sub.Earlier {
		vt := crossVoter{voter: voter{who: cmp.Or(a.Model, "an earlier attempt") + " (earlier)", text: a.Report}}
		vt.code, vt.hasCode = submittedCode(Submission{Report: a.Report, Artifacts: a.Artifacts})
		others = append(others, vt)
	}
	if spec.N > 0 {
		if c == nil {
			return unsure(KindCross, "no model caller: the cross-check samples models, and this process gave it no way to call them")
		}
		models := spec.Models
		if len(models) == 0 {
			models = []string{sub.Model}
		}
		first := len(others)
		others = append(others, make([]crossVoter, spec.N)...)
		g, gctx := errgroup.WithContext(ctx)
		for i := range spec.N {
			vt := &others[first+i]
			model := models[i%len(models)]
			vt.who = cmp.Or(model, "the default model")
			g.Go(func() error {
				resp, err := c.Call(gctx, model, &llm.Request{Model: model, Messages: []llm.Message{llm.UserText(sub.Task)}})
				if err != nil {
					vt.err = err
					return nil
				}
				vt.text = resp.Text()
				vt.code, vt.hasCode = ExtractCode(vt.text)
				return nil
			})
		}
		g.Wait() // each call's error is kept with its voter
		samples := make([]voter, spec.N)
		for i := range samples {
			samples[i] = others[first+i].voter
		}
		sortSamples(samples)
		for i := range samples {
			others[first+i].voter = samples[i]
		}
		if ctx.Err() != nil {
			return unsure(KindCross, "the verification was cancelled while sampling")
		}
	}
	var candidates []string
	var idx []int // candidates[k] is others[idx[k]]
	for i, o := range others {
		switch {
		case o.err != nil || !o.hasCode:
		case DroppedDefs(sub.Task, o.code) != nil:
			others[i].dropped = true
		case i < len(sub.Earlier) && !sub.Fresh && sameCode(o.code, code):
			// An earlier answer, seen in the history of an escalation and
			// submitted again: a copy confirms nothing. (A fresh sample saw
			// only the task: the same code from it is agreement.)
			others[i].copy = true
		default:
			candidates = append(candidates, o.code)
			idx = append(idx, i)
		}
	}
	if len(idx) == 0 && spec.Net && spec.Margin <= 0 {
		return pass(KindCross, "the tests pass; there is no independent answer to compare with, and none disagrees (net 0)")
	}
	if len(idx) == 0 {
		var b strings.Builder
		b.WriteString("the tests pass, but there is no independent answer to compare with")
		for _, o := range others {
			fmt.Fprintf(&b, "\n- %s", o.unusable())
		}
		return unconfirmed(b.String())
	}

	// The others run together, on the submission's probes.
	out, err := v.crossRun(ctx, spec.Code, candidates, mineOut.Probes, confirmerLimit)
	switch {
	case errors.As(err, &stopped):
		// One of the others stopped their shared driver: none confirms.
		return unconfirmed("the tests pass, but the independent answers could not be compared: " + stopped.Error())
	case err != nil:
		return unsure(KindCross, err.Error())
	}
	out.Results = append(mineOut.Results, out.Results...)
	mine := out.Results[0]
	var agree []string
	var shares []float64 // of each answer that passes the tests
	dissent := 0         // answers that pass the tests and disagree
	var b strings.Builder
	for k, r := range out.Results[1:] {
		o := others[idx[k]]
		switch {
		case !r.Tests:
			fmt.Fprintf(&b, "\n- %s fails the tests (%s)", o.who, clipLine(r.Error, 160))
		case len(r.Outs) != len(mine.Outs):
			fmt.Fprintf(&b, "\n- %s could not be compared", o.who)
		default:
			same, diff := 0, -1
			for i := range mine.Outs {
				if sameOut(r.Outs[i], mine.Outs[i], share < 1) {
					same++
				} else if diff < 0 {
					diff = i
				}
			}
			s := float64(same) / float64(max(len(mine.Outs), 1))
			shares = append(shares, s)
			if s >= share {
				agree = append(agree, o.who)
				continue
			}
			dissent++
			if timedOut(mine.Outs[diff]) {
				fmt.Fprintf(&b, "\n- %s passes the tests too, but this submission runs out of time on %s, so nothing can agree with it there",
					o.who, clipLine(out.Probes[diff], 200))
				continue
			}
			fmt.Fprintf(&b, "\n- %s passes the tests too, but %s gives %s where this submission gives %s",
				o.who, clipLine(out.Probes[diff], 200), clipLine(r.Outs[diff], 200), clipLine(mine.Outs[diff], 200))
		}
	}
	for _, o := range others {
		if o.err != nil || !o.hasCode || o.copy || o.dropped {
			fmt.Fprintf(&b, "\n- %s", o.unusable())
		}
	}
	on := fmt.Sprintf("all %d probes derived from them", len(out.Probes))
	if share < 1 {
		on = fmt.Sprintf("at least %.0f%% of %d probes derived from them", 100*share, len(out.Probes))
	}
	if spec.Net {
		slices.SortFunc(shares, func(a, b float64) int { return cmp.Compare(b, a) })
		if net := len(agree) - dissent; net >= spec.Margin {
			v := pass(KindCross, fmt.Sprintf("the tests pass; of the independent answers that pass them too, %d %s with this submission on %s and %d %s (net %d, at least %d needed)%s",
				len(agree), plural2(len(agree), "agrees", "agree"), on, dissent, plural2(dissent, "does not", "do not"), net, spec.Margin, b.String()))
			v.Agreement = shares
			return v
		}
		ev := fmt.Sprintf("the tests pass, but of the independent answers that pass them too, %d %s with this submission on %s and %d %s (net %d, at least %d needed):%s",
			len(agree), plural2(len(agree), "agrees", "agree"), on, dissent, plural2(dissent, "does not", "do not"), len(agree)-dissent, spec.Margin, b.String())
		v := unconfirmed(headTail(ev, maxEvidence))
		v.Agreement = shares
		return v
	}
	if len(agree) >= need {
		return pass(KindCross, fmt.Sprintf("the tests pass, and %s %s on %s", strings.Join(agree, ", "), plural2(len(agree), "agrees", "agree"), on))
	}
	ev := fmt.Sprintf("the tests pass, but %d of the independent answers %s with this submission on %s (it needs %d):%s",
		len(agree), plural2(len(agree), "agrees", "agree"), strings.Replace(on, "from them", "from the tests", 1), need, b.String())
	return unconfirmed(headTail(ev, maxEvidence))
}

// NetVote counts a net vote again from a verdict's [Verdict.Agreement]:
// the answers that agree with the submission on at least share of the
// probes, less those that do not. A cross-check with the same share
// counts the same.
func NetVote(agreement []float64, share float64) int {
	net := 0
	for _, s := range agreement {
		if s >= share {
			net++
		} else {
			net--
		}
	}
	return net
}

// crossVoter is an independent answer of a cross-check.
type crossVoter struct {
	voter
	copy    bool // the same code as the submission's
	dropped bool // its code drops a definition the task gives
}

// unusable says why o could not confirm anything.
func (o crossVoter) unusable() string {
	switch {
	case o.err != nil:
		return fmt.Sprintf("%s could not be asked: %v", o.who, o.err)
	case !o.hasCode:
		return o.who + " has no code in its answer"
	case o.copy:
		return o.who + " is the same code as the submission, so it confirms nothing"
	case o.dropped:
		return o.who + " drops a function or class the task gives"
	}
	return o.who
}

// sameOut reports whether two results of a probe agree: equal, and
// neither out of time (which says nothing of what an answer computes).
// Loosely, any exception agrees with any other: on inputs outside what a
// task specifies, right answers raise different ones.
func sameOut(a, b string, loose bool) bool {
	if timedOut(a) || timedOut(b) {
		return false
	}
	return a == b || loose && strings.HasPrefix(a, "raises ") && strings.HasPrefix(b, "raises ")
}

// timedOut reports whether a probe's output is the driver's mark of a
// probe that ran out of time.
func timedOut(out string) bool { return out == "time limit" || out == "raises Timeout" }

// sameCode reports whether two programs are the same up to whitespace.
func sameCode(a, b string) bool {
	return strings.Join(strings.Fields(a), " ") == strings.Join(strings.Fields(b), " ")
}

// crossOut is what the driver prints.
type crossOut struct {
	Probes  []string `json:"probes"`
	Results []struct {
		Tests bool     `json:"tests"`
		Error string   `json:"error"`
		Outs  []string `json:"outs"`
	} `json:"results"`
}

// crossWidth is how many candidates a driver runs at once: the
// machine's cores, not more, so that a slow but right answer is not cut
// off by its neighbours.
const crossWidth = 2

// crossRun runs the driver on the candidates in one sandbox, on probes
// (nil: derived from the tests and the first candidate), each with cpu
// seconds.
func (v *Verifiers) crossRun(ctx context.Context, tests string, candidates, probes []string, cpu int) (*crossOut, error) {
	if v.sb == nil {
		return nil, errNoSandbox
	}
	limits := v.limits()
	limit := max(1, min(cpu, int(limits.CPU/time.Second)))
	in, err := json.Marshal(map[string]any{"tests": tests, "candidates": candidates, "probes": probes,
		"limit": limit, "max_probes": 40, "width": crossWidth})
	if err != nil {
		return nil, err
	}
	// Each candidate has limit s of CPU, crossWidth at a time; the driver
	// stops one whose CPU time stops growing, and any after 15*limit+5 s
	// of wall clock (a machine busy with other work slows a candidate but
	// must not change its verdict). Give the sandbox that and some, and
	// output room for all their results.
	rounds := (len(candidates) + crossWidth - 1) / crossWidth
	wall := time.Duration((15*limit+5)*rounds+10) * time.Second
	limits.Wall, limits.CPU = wall, wall
	limits.Output = max(limits.Output, 1<<20)
	res, err := v.sb.Run(ctx, sandbox.Spec{Lang: sandbox.Python, Source: crossDriver,
		Files: map[string][]byte{"cross.json": in}, Limits: limits})
	if err != nil {
		return nil, fmt.Errorf("the sandbox failed, so the answers were not compared: %w", err)
	}
	if !res.OK() {
		return nil, &driverStopped{fmt.Sprintf("the driver stopped (%s): %s", res.Reason, clipLine(lastLine(string(res.Stderr)), 300))}
	}
	var out crossOut
	if err := json.Unmarshal(res.Stdout, &out); err != nil || len(out.Results) != len(candidates) {
		return nil, &driverStopped{fmt.Sprintf("the driver printed no result: %v", err)}
	}
	return &out, nil
}

// driverStopped is a cross-check driver that the sandbox ran but that did
// not finish: something it ran stopped it. (An error of the sandbox
// itself is not one.)
type driverStopped struct{ why string }

func (e *driverStopped) Error() string { return e.why }

func unconfirmed(evidence string) Verdict {
	v := fail(KindCross, evidence)
	v.Unconfirmed = true
	return v
}

func clipLine(s string, n int) string {
	s = strings.Join(strings.Fields(s), " ")
	if len(s) > n {
		s = strings.ToValidUTF8(s[:n], "") + "…"
	}
	return s
}

func plural2(n int, one, many string) string {
	if n == 1 {
		return one
	}
	return many
}
