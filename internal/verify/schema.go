package verify

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/santhosh-tekuri/jsonschema/v6"

	"github.com/hive-swarm/hive/internal/sandbox"
)

// schemaURL names the spec's schema inside the compiler; nothing is ever
// fetched from it.
const schemaURL = "urn:hive:verify:schema"

// Schema checks that the report is JSON (the whole report, or its first
// ```json fenced block that parses) valid against spec.Schema. It fails
// with each violation at its JSON pointer ("/items/2/price: got string,
// want number"). A schema that does not compile is the spec's fault, not
// the worker's: unsure.
//
// The schema may not reference anything outside itself: no file or
// network is ever read. Schemas come from models, and a small one can
// cost minutes and gigabytes to apply (nested anyOf over $ref doubles the
// work at each level): a schema is applied in Hive's own process only
// when its cost is provably small (see [cheapSchema]), else in the
// sandbox as the program [SchemaProgram], within [Verifiers.SchemaLimits].
// One that runs past them is, like one that does not compile, the spec's
// fault and not the worker's: unsure, saying the schema is too costly.
func (v *Verifiers) Schema(ctx context.Context, spec Spec, sub Submission) Verdict {
	if len(bytes.TrimSpace(spec.Schema)) == 0 {
		return unsure(KindSchema, "the schema verifier has no schema (spec.schema is empty)")
	}
	inst, err := reportJSON(sub.Report)
	if err != nil {
		return fail(KindSchema, err.Error())
	}
	if cheapSchema(spec.Schema, inst) {
		return applySchema(spec.Schema, inst)
	}
	if v.sb == nil {
		return unsure(KindSchema, "the schema is too costly to apply outside the sandbox (it uses $ref, unevaluated*, uniqueItems or multipleOf, or is large against a large report), and this process has no sandbox")
	}
	lim := v.SchemaLimits.WithDefaults(schemaLimits)
	res, err := v.sb.Run(ctx, sandbox.Spec{Lang: sandbox.Lang(SchemaProgram.Name), Source: string(spec.Schema), Stdin: []byte(sub.Report), Limits: lim})
	if err != nil {
		return unsure(KindSchema, "apply the schema: "+err.Error())
	}
	switch {
	case res.Reason == sandbox.Canceled || ctx.Err() != nil:
		return unsure(KindSchema, "the verification was cancelled while the schema was applied")
	case res.Reason == sandbox.CPULimit || res.Reason == sandbox.WallTimeout || res.Reason == sandbox.MemoryLimit:
		return unsure(KindSchema, fmt.Sprintf("the schema could not be applied to the report within its limits (%s of CPU, %d MiB; it stopped: %s): it is too costly (deeply nested $ref, anyOf or oneOf); the task's schema must be simplified", lim.CPU, lim.Memory>>20, res.Reason))
	case !res.OK():
		return unsure(KindSchema, fmt.Sprintf("the schema checker stopped (%s, exit %d): %s", res.Reason, res.ExitCode, tailOf(string(res.Stderr), 500)))
	}
	var out Verdict
	if err := json.Unmarshal(res.Stdout, &out); err != nil || out.Verifier != KindSchema {
		return unsure(KindSchema, "the schema checker's answer did not parse")
	}
	return out
}

// schemaLimits bound the sandboxed run of a costly schema.
var schemaLimits = sandbox.Limits{CPU: 2 * time.Second, Wall: 10 * time.Second, Memory: 256 << 20}

// SchemaProgram applies a schema (its source) to a report (its stdin) in
// the sandbox and writes the [Verdict] as JSON. The sandbox must know it:
// pass it (with [Programs]) to sandbox.Init.
var SchemaProgram = sandbox.Program{Name: "jsonschema", Main: schemaMain}

// Programs are the programs verifiers run in the sandbox.
func Programs() []sandbox.Program { return []sandbox.Program{SchemaProgram} }

func schemaMain(source, stdin []byte, stdout, stderr io.Writer) int {
	inst, err := reportJSON(string(stdin))
	out := fail(KindSchema, "")
	if err != nil {
		out.Evidence = err.Error()
	} else {
		out = applySchema(source, inst)
	}
	if err := json.NewEncoder(stdout).Encode(out); err != nil {
		fmt.Fprintln(stderr, err)
		return 1
	}
	return 0
}

// applySchema validates inst against the schema raw. The validator
// panics on some inputs (a number too large for big.Rat, 1e999999999,
// against a maximum); that is unsure, not a crash.
func applySchema(raw []byte, inst any) (out Verdict) {
	defer func() {
		if p := recover(); p != nil {
			out = unsure(KindSchema, fmt.Sprintf("the schema checker failed on this report (%v); a number may be out of range", p))
		}
	}()
	sch, err := compileSchema(raw)
	if err != nil {
		return unsure(KindSchema, "the schema is invalid: "+headTail(err.Error(), maxEvidence-40))
	}
	err = sch.Validate(inst)
	if err == nil {
		return pass(KindSchema, "the report is valid against the schema")
	}
	var verr *jsonschema.ValidationError
	if !errors.As(err, &verr) {
		return unsure(KindSchema, "validate: "+err.Error())
	}
	return fail(KindSchema, schemaErrors(verr))
}

// cheapWork bounds schema nodes × report size (values and string bytes)
// for a schema applied in Hive's own process: at the bound, 1,000 nodes
// against a 1,000-byte string, compiling and applying took 15 ms.
const cheapWork = 2_000_000

// cheapSchema reports whether applying the schema raw to inst is provably
// cheap. Without references a schema is a tree, and each of its nodes is
// applied at most once to each value of the report, at a cost at most
// linear in the value's size (a string's length is counted, a key's
// too), so the work is at most their product. Keywords whose cost is not
// bounded that way send it to the sandbox: references; unevaluated*;
// uniqueItems's pairs; multipleOf's and huge numbers' arbitrary
// precision; and regular expressions, which the validator compiles (a
// 9 KB pattern compiles to a million instructions) from pattern,
// patternProperties or a report's strings under format "regex", as it
// may under any format or content keyword.
func cheapSchema(raw []byte, inst any) bool {
	var doc any
	d := json.NewDecoder(bytes.NewReader(raw))
	d.UseNumber()
	if d.Decode(&doc) != nil {
		return true // compiling it fails at once, and says why
	}
	nodes, size, ok := 0, 0, true
	walkJSON(doc, func(v any) {
		nodes++
		if m, isMap := v.(map[string]any); isMap {
			for k := range m {
				switch k {
				case "$ref", "$dynamicRef", "$recursiveRef", "unevaluatedProperties", "unevaluatedItems", "uniqueItems",
					"multipleOf", "divisibleBy", "pattern", "patternProperties", "format", "contentEncoding", "contentMediaType", "contentSchema":
					ok = false
				}
			}
		}
		if n, isNum := v.(json.Number); isNum {
			ok = ok && smallNumber(n)
		}
	})
	walkJSON(inst, func(v any) {
		size++
		switch v := v.(type) {
		case json.Number:
			ok = ok && smallNumber(v)
		case string:
			size += len(v)
		case map[string]any:
			for k := range v {
				size += len(k)
			}
		}
	})
	return ok && nodes*size <= cheapWork
}

// walkJSON calls visit on v and on every value inside it.
func walkJSON(v any, visit func(any)) {
	visit(v)
	switch v := v.(type) {
	case map[string]any:
		for _, x := range v {
			walkJSON(x, visit)
		}
	case []any:
		for _, x := range v {
			walkJSON(x, visit)
		}
	}
}

// smallNumber reports whether n is short and without a large exponent:
// such numbers cost little in arbitrary precision.
func smallNumber(n json.Number) bool {
	s := string(n)
	if len(s) > 40 {
		return false
	}
	i := strings.IndexAny(s, "eE")
	if i < 0 {
		return true
	}
	e, err := strconv.Atoi(strings.TrimPrefix(s[i+1:], "+"))
	return err == nil && e >= -300 && e <= 300
}

func compileSchema(raw []byte) (*jsonschema.Schema, error) {
	doc, err := jsonschema.UnmarshalJSON(bytes.NewReader(raw))
	if err != nil {
		return nil, fmt.Errorf("not JSON: %w", err)
	}
	c := jsonschema.NewCompiler()
	c.UseLoader(noLoader{})
	if err := c.AddResource(schemaURL, doc); err != nil {
		return nil, err
	}
	return c.Compile(schemaURL)
}

// noLoader refuses every external reference.
type noLoader struct{}

func (noLoader) Load(url string) (any, error) {
	return nil, fmt.Errorf("external reference %q not allowed: the schema must be self-contained", url)
}

// reportJSON parses the report as JSON: the whole of it, or else the
// first fenced block (```json first) that parses.
func reportJSON(report string) (any, error) {
	t := strings.TrimSpace(report)
	if t == "" {
		return nil, errors.New("the report is empty; it must be a JSON document")
	}
	inst, wholeErr := jsonschema.UnmarshalJSON(strings.NewReader(t))
	if wholeErr == nil {
		return inst, nil
	}
	blocks := fencedBlocks(report)
	// ```json blocks first, then the others.
	sort.SliceStable(blocks, func(i, j int) bool { return blocks[i].lang == "json" && blocks[j].lang != "json" })
	for _, b := range blocks {
		if inst, err := jsonschema.UnmarshalJSON(strings.NewReader(b.body)); err == nil {
			return inst, nil
		}
	}
	return nil, fmt.Errorf("the report is not JSON (%v); answer with the JSON document alone, or in a ```json fenced block", wholeErr)
}

type fenced struct{ lang, body string }

// fencedBlocks returns the report's fenced code blocks, in order.
func fencedBlocks(text string) []fenced {
	var out []fenced
	rest := text
	for {
		i := strings.Index(rest, "```")
		if i < 0 {
			return out
		}
		body := rest[i+3:]
		nl := strings.IndexByte(body, '\n')
		if nl < 0 {
			return out
		}
		lang := strings.ToLower(strings.TrimSpace(body[:nl]))
		body = body[nl+1:]
		j := strings.Index(body, "```")
		if j < 0 {
			return append(out, fenced{lang, body})
		}
		out = append(out, fenced{lang, body[:j]})
		rest = body[j+3:]
	}
}

// schemaErrors lists the leaf violations of e, one a line, each at its
// JSON pointer, within about maxEvidence bytes.
func schemaErrors(e *jsonschema.ValidationError) string {
	var lines []string
	var walk func(u *jsonschema.OutputUnit)
	seen := map[string]bool{}
	walk = func(u *jsonschema.OutputUnit) {
		if u.Error != nil && len(u.Errors) == 0 {
			loc := u.InstanceLocation
			if loc == "" {
				loc = "/"
			}
			line := fmt.Sprintf("%s: %s", loc, u.Error)
			if !seen[line] {
				seen[line] = true
				lines = append(lines, line)
			}
		}
		for i := range u.Errors {
			walk(&u.Errors[i])
		}
	}
	walk(e.DetailedOutput()) // BasicOutput says only "validation failed" under a $ref
	if len(lines) == 0 {
		lines = []string{e.Error()}
	}
	var b strings.Builder
	fmt.Fprintf(&b, "the report does not match the schema (%d errors):", len(lines))
	for i, l := range lines {
		if b.Len()+len(l) > maxEvidence-40 {
			fmt.Fprintf(&b, "\n… and %d more", len(lines)-i)
			break
		}
		b.WriteString("\n- " + l)
	}
	return b.String()
}
