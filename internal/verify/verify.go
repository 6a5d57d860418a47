// Package verify judges what workers submit, because a model right 95% of
// the time is wrong 5% of the time and nobody knows which 5%.
//
// A [Spec] names a verifier and its parameters (the "verify" field of a
// delegated task); a [Verdict] is its judgement, pass, fail or unsure, with
// evidence a model can act on: the failing assertion, the traceback, the
// disagreeing answers. The swarm engine runs the ladder around verifiers:
// a failed result goes back to its model with the evidence for repair, then
// up a tier, and at the top tier the failure is reported, never passed.
package verify

import (
	"context"
	"encoding/json"
	"strings"
	"time"

	"github.com/hive-swarm/hive/internal/llm"
)

// Outcomes of a verdict.
const (
	Pass   = "pass"
	Fail   = "fail"
	Unsure = "unsure"
)

// Spec says how a result is checked: {kind: tests, code}, {kind: schema,
// schema}, {kind: vote, n}, {kind: judge, rubric, model}, {kind: command,
// check}, {kind: cross, code, n?, models?, min?}, {kind: arithmetic}.
type Spec struct {
	Kind   string          `json:"kind"`
	Code   string          `json:"code,omitempty"`     // tests: the test code
	Lang   string          `json:"language,omitempty"` // tests: python (default), javascript, shell
	Schema json.RawMessage `json:"schema,omitempty"`   // schema: a JSON Schema
	N      int             `json:"n,omitempty"`        // vote, cross: samples
	Models []string        `json:"models,omitempty"`   // vote, cross: models to sample (default the worker's)
	Min    int             `json:"min,omitempty"`      // cross: independent answers that must agree (default 1)
	// Agree is the share of a cross-check's probes on which two answers
	// must give the same result to agree (default 1: all of them); below
	// 1, any exception agrees with any other.
	Agree float64 `json:"agree,omitempty"`
	// Net decides a cross-check by a net vote rather than by Min: of the
	// independent answers that pass the tests, those that agree minus
	// those that do not must be at least Margin. An answer that fails the
	// tests votes neither way, and with none to compare the net is 0.
	Net    bool   `json:"net,omitempty"`
	Margin int    `json:"margin,omitempty"`
	Rubric string `json:"rubric,omitempty"` // judge
	Model  string `json:"model,omitempty"`  // judge: the judging model
	// Check names the configured check a command verifier runs
	// ([checks.NAME] of hive.toml or the task file).
	Check string `json:"check,omitempty"`
	// Command is never run: it is here so that a model that gives a
	// command of its own can be told why it is refused. What runs is
	// Trusted, which only Hive sets, from configuration.
	Command []string      `json:"command,omitempty"`
	Trusted *CommandCheck `json:"-"`
	// Threshold is the share of the votes the submission's answer must
	// exceed to pass a vote; zero means 0.5 (a strict majority).
	Threshold float64 `json:"threshold,omitempty"`
	// Gate marks a check that only decides whether a result moves up a
	// tier (a vote among cheaper models, say): the engine skips it at the
	// top tier, where it would cost calls and change nothing.
	Gate bool `json:"gate,omitempty"`
	// OnUnsure says what an unsure verdict (the check could not tell: a
	// sandbox error, a check too costly to run, no verifier here) does:
	// [OnUnsureEscalate] (the default) moves the result up a tier as
	// unverified, without a repair, and at the top tier it stands, marked
	// unsure; [OnUnsureFail] treats it as a failure (repair, escalate, and
	// at the top tier report it failed); [OnUnsureAccept] lets it pass.
	// An unsure verdict is never passed silently: it stays on the node and
	// in the counts.
	OnUnsure string `json:"on_unsure,omitempty"`
}

// Policies for an unsure verdict ([Spec.OnUnsure]).
const (
	OnUnsureEscalate = "escalate"
	OnUnsureFail     = "fail"
	OnUnsureAccept   = "accept"
)

// UnsurePolicy returns s.OnUnsure, or its default.
func (s Spec) UnsurePolicy() string {
	if s.OnUnsure == "" {
		return OnUnsureEscalate
	}
	return s.OnUnsure
}

// CommandCheck is a command that checks a result, configured by the user
// ([checks.NAME] in hive.toml or a task file). The engine resolves the
// check a [Spec] names to one of these; a model can name a check but never
// give a command.
type CommandCheck struct {
	Name string   `json:"name"`
	Argv []string `json:"argv"`
	// Timeout bounds a run; zero means [Verifiers.CommandTimeout].
	Timeout time.Duration `json:"timeout_ns,omitempty"`
	// Env names the host environment variables the command gets; it gets
	// no others.
	Env []string `json:"env,omitempty"`
	// OnHost runs it on the host rather than in the sandbox (logged at
	// every run).
	OnHost bool `json:"on_host,omitempty"`
}

// Submission is a worker's result as verifiers see it.
type Submission struct {
	// Task is the task's instructions.
	Task string
	// Report is the worker's report; Artifacts its named artifacts (code
	// is looked for in "code", then in the report's fenced blocks).
	Report    string
	Artifacts map[string]string
	// Model is the model that produced it.
	Model string
	// Earlier holds the answers given before to the same task, oldest
	// first: by lower tiers, or attempts that failed. A cross-check
	// compares the submission with them.
	Earlier []Answer
	// Fresh says the submission's model was given the task alone, not the
	// earlier answers: the same code as one of them is then agreement,
	// not a copy.
	Fresh bool
}

// Answer is an earlier answer to a task.
type Answer struct {
	Model     string
	Report    string
	Artifacts map[string]string
}

// Verdict is a verifier's judgement.
type Verdict struct {
	Outcome  string `json:"outcome"` // pass, fail, unsure
	Verifier string `json:"verifier"`
	Evidence string `json:"evidence,omitempty"`
	// Unconfirmed marks a failure of confirmation only: the result passed
	// every check but nothing independent agreed with it. When every tier
	// fails, the engine reports the latest unconfirmed result rather than
	// a later one that failed outright.
	Unconfirmed bool `json:"unconfirmed,omitempty"`
	// Agreement, for a cross-check decided by a net vote ([Spec.Net]),
	// holds what the vote counted: for each independent answer that passes
	// the tests, the share of the probes on which it agrees with the
	// submission, highest first. A caller can count the vote again at
	// another share or margin (hive eval chooses them by cross-validation).
	// Empty when no independent answer passed the tests.
	Agreement []float64 `json:"agreement,omitempty"`
}

// A Verifier judges submissions. Verifiers that ask models (vote, judge)
// make their calls through c, which the engine provides: it reserves the
// calls against the run's budget, bills them to a verifier node of the
// run's tree, and journals them.
type Verifier interface {
	Verify(ctx context.Context, spec Spec, sub Submission, c Caller) Verdict
}

// A Caller makes a model call on a verifier's behalf.
type Caller interface {
	Call(ctx context.Context, model string, req *llm.Request) (*llm.Response, error)
}

// ExtractCode returns the code of a model's answer: the longest fenced
// block (```lang … ```), or the whole answer when it has no fence but
// looks like code. ok is false when no code is found.
func ExtractCode(text string) (code string, ok bool) {
	best := ""
	rest := text
	for {
		i := strings.Index(rest, "```")
		if i < 0 {
			break
		}
		body := rest[i+3:]
		// Skip the info string (language) up to the end of the line.
		if nl := strings.IndexByte(body, '\n'); nl >= 0 {
			body = body[nl+1:]
		} else {
			break
		}
		j := strings.Index(body, "```")
		if j < 0 {
			// An unclosed fence: take the rest.
			j = len(body)
		}
		if len(body[:j]) > len(best) {
			best = body[:j]
		}
		if j+3 > len(body) {
			break
		}
		rest = body[j+3:]
	}
	if best != "" {
		return best, true
	}
	t := strings.TrimSpace(text)
	if strings.HasPrefix(t, "def ") || strings.HasPrefix(t, "import ") || strings.HasPrefix(t, "from ") || strings.HasPrefix(t, "function ") || strings.HasPrefix(t, "class ") {
		return t + "\n", true
	}
	return "", false
}
