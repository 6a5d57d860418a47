package verify

import (
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"regexp"
	"sort"
	"strings"

	"github.com/hive-swarm/hive/internal/llm"
)

// judgeSystem tells the judging model what to do and how to answer.
const judgeSystem = `You are a strict reviewer. You check one worker's submission against a rubric and the task it was given.
Judge only what the rubric asks. Do not redo the task; do not be lenient with answers that are wrong, incomplete or off-task.
Answer with one JSON object and nothing else:
{"verdict": "pass" or "fail", "reason": "<one or two sentences; on fail, what exactly is wrong, so the worker can fix it>"}`

// maxJudged caps how much of a submission goes into the judge's prompt.
const maxJudged = 48 << 10

// Judge asks spec.Model (default the submission's own model) to judge the
// submission against spec.Rubric and the task, answering with a JSON
// object {"verdict": "pass"|"fail", "reason": "…"}. The answer is read
// leniently: the object may sit in prose or a fenced block, and "passed",
// "PASS" or a bare "verdict: fail" count. An answer with no verdict in it
// is unsure, with the raw answer as evidence.
func (v *Verifiers) Judge(ctx context.Context, spec Spec, sub Submission, c Caller) Verdict {
	if c == nil {
		return unsure(KindJudge, "no model caller: the judge verifier asks a model, and this process gave it no way to call one")
	}
	if strings.TrimSpace(spec.Rubric) == "" {
		return unsure(KindJudge, "the judge verifier has no rubric (spec.rubric is empty)")
	}
	model := cmp.Or(spec.Model, sub.Model)
	temp := 0.0
	req := &llm.Request{
		Model:       model,
		System:      judgeSystem,
		Messages:    []llm.Message{llm.UserText(judgePrompt(spec.Rubric, sub))},
		MaxTokens:   1024,
		Temperature: &temp,
	}
	resp, err := c.Call(ctx, model, req)
	if err != nil {
		return unsure(KindJudge, fmt.Sprintf("the judge %s could not be asked: %v", cmp.Or(model, "(default model)"), err))
	}
	answer := resp.Text()
	outcome, reason, ok := ParseJudgement(answer)
	if !ok {
		return unsure(KindJudge, "the judge's answer has no verdict: "+headTail(strings.TrimSpace(answer), maxEvidence-60))
	}
	return Verdict{Outcome: outcome, Verifier: KindJudge, Evidence: headTail(cmp.Or(reason, "(the judge gave no reason)"), maxEvidence)}
}

func judgePrompt(rubric string, sub Submission) string {
	var b strings.Builder
	fmt.Fprintf(&b, "<rubric>\n%s\n</rubric>\n\n<task>\n%s\n</task>\n\n<submission>\n%s\n</submission>\n",
		strings.TrimSpace(rubric), strings.TrimSpace(sub.Task), headTail(strings.TrimSpace(sub.Report), maxJudged))
	names := make([]string, 0, len(sub.Artifacts))
	for name := range sub.Artifacts {
		names = append(names, name)
	}
	sort.Strings(names)
	room := maxJudged
	for _, name := range names {
		body := headTail(sub.Artifacts[name], max(room, 1024))
		room -= len(body)
		fmt.Fprintf(&b, "\n<artifact name=%q>\n%s\n</artifact>\n", name, body)
	}
	b.WriteString("\nJudge the submission against the rubric. Answer with the JSON object only.")
	return b.String()
}

// verdictWord finds a verdict stated outside JSON: "verdict: pass".
var verdictWord = regexp.MustCompile(`(?i)"?verdict"?\s*[:=]\s*"?\**\s*(pass(?:ed|es)?|fail(?:ed|s)?)\b`)

// ParseJudgement reads a judge's answer: the outcome (Pass or Fail) and
// the reason, from a JSON object {"verdict": …, "reason": …} anywhere in
// the text (the last one that has a verdict), else a "verdict: pass"
// line, else an answer that is just "pass" or "fail". ok is false when
// the answer states no verdict.
func ParseJudgement(answer string) (outcome, reason string, ok bool) {
	if len(answer) > 16<<10 {
		answer = answer[len(answer)-16<<10:] // the verdict comes last
	}
	// JSON objects, tried from the last one back.
	for end := strings.LastIndexByte(answer, '}'); end >= 0; end = strings.LastIndexByte(answer[:end], '}') {
		for start := strings.LastIndexByte(answer[:end], '{'); start >= 0; start = strings.LastIndexByte(answer[:start], '{') {
			var obj map[string]any
			if json.Unmarshal([]byte(answer[start:end+1]), &obj) != nil {
				continue
			}
			if out, ok := verdictOf(obj); ok {
				return out, reasonOf(obj), true
			}
		}
	}
	if m := verdictWord.FindAllStringSubmatch(answer, -1); m != nil {
		out, _ := outcomeOf(m[len(m)-1][1])
		return out, strings.TrimSpace(answer), true
	}
	word := strings.Trim(strings.ToLower(strings.TrimSpace(answer)), " .!*`\"'")
	if out, ok := outcomeOf(word); ok {
		return out, "", true
	}
	return "", "", false
}

func verdictOf(obj map[string]any) (string, bool) {
	for k, val := range obj {
		switch strings.ToLower(k) {
		case "verdict", "outcome", "result", "decision":
		default:
			continue
		}
		switch x := val.(type) {
		case string:
			return outcomeOf(x)
		case bool:
			if x {
				return Pass, true
			}
			return Fail, true
		}
	}
	for k, val := range obj {
		if strings.ToLower(k) == "pass" || strings.ToLower(k) == "passed" {
			if x, ok := val.(bool); ok {
				if x {
					return Pass, true
				}
				return Fail, true
			}
		}
	}
	return "", false
}

func outcomeOf(s string) (string, bool) {
	switch strings.ToLower(strings.TrimSpace(s)) {
	case "pass", "passed", "passes", "yes", "accept", "accepted", "approve", "approved", "correct", "ok":
		return Pass, true
	case "fail", "failed", "fails", "no", "reject", "rejected", "incorrect", "wrong":
		return Fail, true
	}
	return "", false
}

func reasonOf(obj map[string]any) string {
	for k, val := range obj {
		switch strings.ToLower(k) {
		case "reason", "reasoning", "explanation", "why", "feedback", "comment":
			if s, ok := val.(string); ok {
				return strings.TrimSpace(s)
			}
		}
	}
	return ""
}
