package verify

import (
	"bytes"
	"errors"
	"fmt"
	"sort"
	"strings"

	"github.com/santhosh-tekuri/jsonschema/v6"
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
// network is ever read.
func (v *Verifiers) Schema(spec Spec, sub Submission) Verdict {
	if len(bytes.TrimSpace(spec.Schema)) == 0 {
		return unsure(KindSchema, "the schema verifier has no schema (spec.schema is empty)")
	}
	sch, err := compileSchema(spec.Schema)
	if err != nil {
		return unsure(KindSchema, "the schema is invalid: "+headTail(err.Error(), maxEvidence-40))
	}
	inst, err := reportJSON(sub.Report)
	if err != nil {
		return fail(KindSchema, err.Error())
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
	walk(e.BasicOutput())
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
