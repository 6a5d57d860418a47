package verify

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"runtime"
	"slices"
	"strings"

	"golang.org/x/sync/errgroup"

	"github.com/hive-swarm/hive/internal/llm"
	"github.com/hive-swarm/hive/internal/sandbox"
)

// maxVoteSamples caps spec.N, so that a typo cannot order a thousand calls.
const maxVoteSamples = 32

// Vote asks for spec.N more answers to the task (default 3), from
// spec.Models in turn (default the submission's model), each given the
// task alone as a user message, and counts the submission as one more
// vote. Answers are compared after normalising them by what they are:
//
//   - code (the submission has a "code" artifact or a fenced block): by
//     behaviour. Each answer's code runs in the sandbox followed by
//     spec.Code, a probe that calls it and prints results, and answers
//     whose stdout is the same agree. A run that fails agrees with none.
//   - numbers (the submission's report holds one): the final number (see
//     [FinalNumber]), so "$20.00" and "The answer is 20" agree.
//   - otherwise the text, without case or whitespace differences.
//
// The submission passes when its answer has more than spec.Threshold of
// the votes (default 0.5: a strict majority). It fails with the answers
// tallied otherwise, also when no two answers agree at all: an answer no
// other sample confirms must not pass a gate. Only when no sample could
// vote is the verdict unsure.
func (v *Verifiers) Vote(ctx context.Context, spec Spec, sub Submission, c Caller) Verdict {
	if c == nil {
		return unsure(KindVote, "no model caller: the vote verifier samples models, and this process gave it no way to call them")
	}
	if strings.TrimSpace(sub.Task) == "" {
		return unsure(KindVote, "the submission has no task to ask other samples")
	}
	threshold := spec.Threshold
	if threshold == 0 {
		threshold = 0.5
	}
	if threshold < 0 || threshold >= 1 {
		return unsure(KindVote, fmt.Sprintf("bad vote threshold %v: want a share in [0, 1)", spec.Threshold))
	}
	n := cmp.Or(spec.N, 3)
	if n < 1 || n > maxVoteSamples {
		return unsure(KindVote, fmt.Sprintf("bad vote n %d: want 1 to %d samples", spec.N, maxVoteSamples))
	}
	models := spec.Models
	if len(models) == 0 {
		models = []string{sub.Model}
	}

	// The submission is voter 0; samples follow.
	voters := make([]voter, n+1)
	voters[0] = voter{who: "the submission", text: sub.Report}
	if code, ok := submittedCode(sub); ok {
		voters[0].code, voters[0].hasCode = code, true
	}
	g, gctx := errgroup.WithContext(ctx)
	for i := 1; i <= n; i++ {
		model := models[(i-1)%len(models)]
		voters[i].who = cmp.Or(model, "the default model")
		g.Go(func() error {
			resp, err := c.Call(gctx, model, &llm.Request{Model: model, Messages: []llm.Message{llm.UserText(sub.Task)}})
			if err != nil {
				voters[i].err = err
				return nil
			}
			voters[i].text = resp.Text()
			voters[i].code, voters[i].hasCode = ExtractCode(voters[i].text)
			return nil
		})
	}
	g.Wait() // the calls return no error: each is kept with its voter
	sortSamples(voters[1:])
	if ctx.Err() != nil {
		return unsure(KindVote, "the verification was cancelled while sampling")
	}
	var failed []string
	for _, vt := range voters[1:] {
		if vt.err != nil {
			failed = append(failed, fmt.Sprintf("%s: %v", vt.who, vt.err))
		}
	}
	if len(failed) == n {
		return unsure(KindVote, "every sample failed, so nothing was compared:\n"+headTail(strings.Join(failed, "\n"), maxEvidence-80))
	}

	var err error
	switch {
	case voters[0].hasCode:
		err = v.keysByBehaviour(ctx, spec, voters)
	default:
		_, numeric := FinalNumber(sub.Report)
		for i := range voters {
			if voters[i].err == nil {
				voters[i].keyText(numeric)
			}
		}
	}
	if err != nil {
		return unsure(KindVote, err.Error())
	}
	return tally(voters, threshold, failed)
}

// voter is one vote: the submission or a sample.
type voter struct {
	who     string
	text    string
	code    string
	hasCode bool
	err     error // the sample could not be had

	key  string // what is compared
	show string // what evidence shows
	lone bool   // agrees with nobody (no answer, or code that failed)
}

// keyText sets the key of a text answer: its final number, or the
// normalised text.
func (vt *voter) keyText(numeric bool) {
	if numeric {
		if num, ok := FinalNumber(vt.text); ok {
			vt.key, vt.show = "number:"+num, num
			return
		}
		vt.lone, vt.show = true, "(no number) "+oneLine(vt.text, 80)
		return
	}
	t := normText(vt.text)
	vt.key, vt.show = "text:"+t, oneLine(t, 160)
}

// keysByBehaviour runs every answer's code with the probe and keys it by
// what it printed. Its error is the sandbox's.
func (v *Verifiers) keysByBehaviour(ctx context.Context, spec Spec, voters []voter) error {
	lang := sandbox.Python
	if spec.Lang != "" {
		l, err := sandbox.ParseCodeLang(spec.Lang)
		if err != nil {
			return err
		}
		lang = l
	}
	if v.sb == nil {
		return errNoSandbox
	}
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(runtime.GOMAXPROCS(0))
	for i := range voters {
		vt := &voters[i]
		if vt.err != nil {
			continue
		}
		if !vt.hasCode {
			vt.lone, vt.show = true, "(no code) "+oneLine(vt.text, 80)
			continue
		}
		g.Go(func() error {
			res, err := v.run(gctx, lang, joinProgram(vt.code, spec.Code).source, nil)
			if err != nil {
				return err
			}
			switch {
			case res.OK():
				out := string(res.Stdout)
				vt.key, vt.show = "output:"+out, "prints "+oneLine(out, 160)
				if strings.TrimSpace(out) == "" {
					vt.show = "prints nothing"
				}
			case res.Reason == sandbox.Exited:
				vt.lone, vt.show = true, "crashed: "+oneLine(lastLine(string(res.Stderr)), 160)
			default:
				vt.lone, vt.show = true, "stopped: "+string(res.Reason)
			}
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		return err
	}
	if ctx.Err() != nil {
		return errors.New("the verification was cancelled while running the answers")
	}
	return nil
}

// tally counts the votes and judges the submission's answer.
func tally(voters []voter, threshold float64, failed []string) Verdict {
	type group struct {
		key, show string
		who       []string
	}
	var groups []*group
	byKey := map[string]*group{}
	total := 0
	for _, vt := range voters {
		if vt.err != nil {
			continue
		}
		total++
		g := byKey[vt.key]
		if vt.lone || g == nil {
			g = &group{key: vt.key, show: vt.show}
			groups = append(groups, g)
			if !vt.lone {
				byKey[vt.key] = g
			}
		}
		g.who = append(g.who, vt.who)
	}
	// groups[0] holds the submission; sort the rest by votes, stably.
	mine := groups[0]
	slices.SortStableFunc(groups, func(a, b *group) int { return len(b.who) - len(a.who) })
	var b strings.Builder
	agree := len(mine.who)
	fmt.Fprintf(&b, "the submission's answer (%s) got %d of %d votes (it needs more than %.0f%%)", mine.show, agree, total, threshold*100)
	if len(failed) > 0 {
		fmt.Fprintf(&b, "; %d %s failed and did not vote", len(failed), plural(len(failed), "sample"))
	}
	b.WriteString(". The answers:")
	for i, g := range groups {
		if b.Len() > maxEvidence-120 {
			fmt.Fprintf(&b, "\n… and %d more answers", len(groups)-i)
			break
		}
		fmt.Fprintf(&b, "\n- %s: %d %s (%s)", g.show, len(g.who), plural(len(g.who), "vote"), strings.Join(g.who, ", "))
	}
	ev := b.String()
	// No majority for the submission fails it, even when no two answers
	// agree at all: it is then unconfirmed, and a gate must not pass it.
	if float64(agree)/float64(total) > threshold {
		return pass(KindVote, ev)
	}
	return fail(KindVote, ev)
}

func plural(n int, word string) string {
	if n == 1 {
		return word
	}
	return word + "s"
}

// oneLine returns s on one line, cut to about n bytes.
func oneLine(s string, n int) string {
	s = strings.Join(strings.Fields(s), " ")
	if len(s) > n {
		s = strings.ToValidUTF8(s[:n], "") + "…"
	}
	return fmt.Sprintf("%q", s)
}

func lastLine(s string) string {
	s = strings.TrimRight(s, "\n")
	if i := strings.LastIndexByte(s, '\n'); i >= 0 {
		return s[i+1:]
	}
	return s
}

// sortSamples orders sampled voters by model and answer. Samples are
// asked at once, so which call gets which answer is up to the order they
// reach the model; a verdict's evidence lists voters in order, and a
// repeated run must give the same evidence (it goes into the next
// prompt, and its tokens into the cost).
func sortSamples(vs []voter) {
	slices.SortStableFunc(vs, func(a, b voter) int {
		return cmp.Or(strings.Compare(a.who, b.who), strings.Compare(a.text, b.text), strings.Compare(errText(a.err), errText(b.err)))
	})
}

func errText(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}
