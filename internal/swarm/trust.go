package swarm

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"strings"

	"github.com/hive-swarm/hive/internal/verify"
)

// What a model writes is untrusted: it may choose data, never an action on
// the host. The tasks a model delegates are checked here before anything
// of them runs. A verify spec may name only the models of the run and the
// checks of its configuration; it can never carry a command; its schema
// and its sizes are bounded. A task that breaks a rule is refused with a
// tool error that says what the model may do instead, and the run goes on.

// Bounds on what a model may ask of a verifier.
const (
	maxSchemaBytes  = 64 << 10 // a JSON Schema, output_schema or verify's
	maxSchemaDepth  = 64       // nesting of a schema's JSON
	maxSamples      = 32       // vote and cross samples (n)
	maxSpecModels   = 8        // models named by one verify spec
	maxTestCode     = 256 << 10
	maxTasksPerCall = 10_000
)

// errSpec marks a task a model must fix.
var errSpec = errors.New("task refused")

// checkTasks checks the tasks of a delegate call and resolves the checks
// they name. Nothing starts unless every task passes.
func (r *run) checkTasks(tasks []TaskSpec) error {
	if len(tasks) > maxTasksPerCall {
		return fmt.Errorf("%w: %d tasks in one delegate call; at most %d", errSpec, len(tasks), maxTasksPerCall)
	}
	var errs []string
	for i, t := range tasks {
		if err := r.checkTask(&tasks[i]); err != nil {
			errs = append(errs, fmt.Sprintf("task %d (%q): %v", i, t.Name, err))
		}
	}
	if len(errs) > 0 {
		return fmt.Errorf("%w: no task was started. %s", errSpec, strings.Join(errs, "; "))
	}
	return nil
}

func (r *run) checkTask(t *TaskSpec) error {
	if strings.TrimSpace(t.Instructions) == "" {
		return errors.New("it has no instructions")
	}
	if len(t.OutputSchema) > 0 {
		if err := checkSchema(t.OutputSchema); err != nil {
			return fmt.Errorf("output_schema: %v", err)
		}
		if t.Verify == nil { // the schema is checked, not only asked for
			t.Verify = &verify.Spec{Kind: verify.KindSchema, Schema: t.OutputSchema}
		}
	}
	v := t.Verify
	if v == nil {
		return nil
	}
	v.Kind = strings.ToLower(strings.TrimSpace(v.Kind))
	v.Trusted = nil // only resolved below, never taken from the model
	switch v.Kind {
	case verify.KindTests, verify.KindCross:
		if strings.TrimSpace(v.Code) == "" {
			return fmt.Errorf("verify %s needs code: the tests to run", v.Kind)
		}
		if len(v.Code) > maxTestCode {
			return fmt.Errorf("verify %s: the test code is %d bytes; at most %d", v.Kind, len(v.Code), maxTestCode)
		}
	case verify.KindSchema:
		if err := checkSchema(v.Schema); err != nil {
			return fmt.Errorf("verify schema: %v", err)
		}
	case verify.KindCommand:
		if err := r.resolveCheck(v); err != nil {
			return err
		}
	case verify.KindVote, verify.KindJudge, verify.KindArithmetic:
	default:
		return fmt.Errorf("unknown verify kind %q (want tests, schema, vote, judge, command, cross or arithmetic)", v.Kind)
	}
	if v.Agree < 0 || v.Agree > 1 {
		return fmt.Errorf("verify agree is %g; want a share of the probes from 0 to 1", v.Agree)
	}
	if v.Margin < -maxSamples || v.Margin > maxSamples {
		return fmt.Errorf("verify margin is %d; want %d to %d", v.Margin, -maxSamples, maxSamples)
	}
	switch v.OnUnsure {
	case "", verify.OnUnsureEscalate, verify.OnUnsureFail, verify.OnUnsureAccept:
	default:
		return fmt.Errorf("verify on_unsure is %q; want escalate (the default), fail or accept", v.OnUnsure)
	}
	if v.N < 0 || v.N > maxSamples {
		return fmt.Errorf("verify %s: n is %d; it takes 0 to %d samples", v.Kind, v.N, maxSamples)
	}
	models := v.Models
	if v.Model != "" {
		models = append(models[:len(models):len(models)], v.Model)
	}
	if len(models) > maxSpecModels {
		return fmt.Errorf("verify %s names %d models; at most %d", v.Kind, len(models), maxSpecModels)
	}
	for _, m := range models {
		if err := r.checkModel(m); err != nil {
			return fmt.Errorf("verify %s: %v", v.Kind, err)
		}
	}
	return nil
}

// resolveCheck gives a command verifier the configured check it names. A
// command of the model's own is refused, whatever it is.
func (r *run) resolveCheck(v *verify.Spec) error {
	names := r.checkNames()
	offer := "this run has no configured checks ([checks.NAME] in hive.toml or the task file); use another verify kind"
	if len(names) > 0 {
		offer = "name one with {\"kind\": \"command\", \"check\": NAME}; configured: " + strings.Join(names, ", ")
	}
	if len(v.Command) > 0 {
		return fmt.Errorf("verify command: a model may not give a command to run; %s", offer)
	}
	if v.Check == "" {
		return fmt.Errorf("verify command: no check named; %s", offer)
	}
	ch, ok := r.spec.Checks[v.Check]
	if !ok {
		return fmt.Errorf("verify command: no check %q; %s", v.Check, offer)
	}
	v.Trusted = &ch
	return nil
}

func (r *run) checkNames() []string {
	names := make([]string, 0, len(r.spec.Checks))
	for n := range r.spec.Checks {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

// allowedModels returns the models the run's models may name: the lead,
// the tiers and the run's further models, without repeats.
func (r *run) allowedModels() []string {
	var out []string
	seen := map[string]bool{}
	for _, m := range append(append([]string{r.spec.Lead}, r.spec.Tiers...), r.spec.Models...) {
		if !seen[m] {
			seen[m] = true
			out = append(out, m)
		}
	}
	return out
}

// checkModel reports whether a model the run's models named may be
// called: it must be one of the run's, open, and priced when the run has
// a dollar budget. Checked before its first call.
func (r *run) checkModel(name string) error {
	allowed := r.allowedModels()
	found := false
	for _, m := range allowed {
		found = found || m == name
	}
	if !found {
		return fmt.Errorf("model %q is not one this run may use; name one of: %s", name, strings.Join(allowed, ", "))
	}
	m, err := r.e.models.Get(name)
	if err != nil {
		return err
	}
	if err := r.priced(m); err != nil {
		return fmt.Errorf("%v; name one of: %s", err, strings.Join(allowed, ", "))
	}
	return nil
}

// checkSchema bounds a JSON Schema's size and nesting. What it costs to
// apply is bounded where it is applied (package verify).
func checkSchema(raw json.RawMessage) error {
	if len(bytes.TrimSpace(raw)) == 0 {
		return errors.New("the schema is empty")
	}
	if len(raw) > maxSchemaBytes {
		return fmt.Errorf("the schema is %d bytes; at most %d", len(raw), maxSchemaBytes)
	}
	depth, maxDepth := 0, 0
	inString, escaped := false, false
	for _, c := range raw {
		switch {
		case escaped:
			escaped = false
		case inString:
			switch c {
			case '\\':
				escaped = true
			case '"':
				inString = false
			}
		case c == '"':
			inString = true
		case c == '{' || c == '[':
			depth++
			maxDepth = max(maxDepth, depth)
		case c == '}' || c == ']':
			depth--
		}
	}
	if maxDepth > maxSchemaDepth {
		return fmt.Errorf("the schema nests %d levels deep; at most %d", maxDepth, maxSchemaDepth)
	}
	if !json.Valid(raw) {
		return errors.New("the schema is not valid JSON")
	}
	if t := bytes.TrimSpace(raw); t[0] != '{' && !bytes.Equal(t, []byte("true")) && !bytes.Equal(t, []byte("false")) {
		return errors.New("a JSON Schema is an object (or true or false)")
	}
	return nil
}
