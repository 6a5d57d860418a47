package verify

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/hive-swarm/hive/internal/sandbox"
)

func TestSchema(t *testing.T) {
	v := newVerifiers(t)
	const person = `{
		"type": "object",
		"required": ["name", "age"],
		"properties": {
			"name": {"type": "string"},
			"age": {"type": "integer", "minimum": 0},
			"tags": {"type": "array", "items": {"type": "string"}}
		},
		"additionalProperties": false
	}`
	tests := []struct {
		name     string
		schema   string
		report   string
		outcome  string
		evidence []string
	}{
		{"valid", person, `{"name": "Ada", "age": 36}`, Pass, nil},
		{"valid fenced", person, "Here it is:\n```json\n{\"name\": \"Ada\", \"age\": 36, \"tags\": [\"x\"]}\n```\n", Pass, nil},
		{"fenced, json block preferred", person, "```\nnot json\n```\n```json\n{\"name\": \"Ada\", \"age\": 1}\n```", Pass, nil},
		{"missing property", person, `{"name": "Ada"}`, Fail, []string{"/: missing property 'age'"}},
		{"wrong types at pointers", person, `{"name": 7, "age": -1, "tags": ["a", 2]}`, Fail,
			[]string{"/name: got number, want string", "/age: minimum: got -1, want 0", "/tags/1: got number, want string", "3 errors"}},
		{"extra property", person, `{"name": "Ada", "age": 3, "x": 1}`, Fail, []string{"/: additional properties 'x' not allowed"}},
		{"not json", person, "I made the object.", Fail, []string{"not JSON"}},
		{"empty report", person, "", Fail, []string{"empty"}},
		{"invalid schema", `{"type": 5}`, `{}`, Unsure, []string{"schema is invalid"}},
		{"schema not json", `{"type": `, `{}`, Unsure, []string{"schema is invalid"}},
		{"external ref refused", `{"$ref": "file:///etc/passwd"}`, `{}`, Unsure, []string{"not allowed"}},
		{"no schema", ``, `{}`, Unsure, []string{"no schema"}},
		// With a reference the schema is applied in the sandbox.
		{"ref, valid", `{"$defs": {"p": ` + person + `}, "$ref": "#/$defs/p"}`, `{"name": "Ada", "age": 36}`, Pass, nil},
		{"ref, invalid", `{"$defs": {"p": ` + person + `}, "$ref": "#/$defs/p"}`, `{"name": "Ada", "age": -1}`, Fail, []string{"/age: minimum: got -1, want 0"}},
		{"huge number in the report", `{"type": "number", "maximum": 10}`, `1e999999999`, Unsure, []string{"checker failed"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := v.Verify(testCtx(t), Spec{Kind: KindSchema, Schema: []byte(tt.schema)}, Submission{Report: tt.report}, nil)
			checkVerdict(t, got, tt.outcome, tt.evidence...)
		})
	}
}

// bombSchema nests levels of anyOf over two references to the next level:
// a report that matches no leaf makes a naive validator try 2^levels
// paths. At 18 levels (1.2 KB) it took 15.7 s and 1 GiB in Hive's own
// process.
func bombSchema(levels int) string {
	var defs []string
	for i := range levels {
		defs = append(defs, fmt.Sprintf(`"d%d": {"anyOf": [{"$ref": "#/$defs/d%d"}, {"$ref": "#/$defs/d%d"}]}`, i, i+1, i+1))
	}
	defs = append(defs, fmt.Sprintf(`"d%d": {"type": "string", "minLength": 3}`, levels))
	return `{"$ref": "#/$defs/d0", "$defs": {` + strings.Join(defs, ", ") + `}}`
}

func TestSchemaBomb(t *testing.T) {
	v := newVerifiers(t)
	v.SchemaLimits = sandbox.Limits{CPU: 2 * time.Second, Wall: 20 * time.Second}
	schema := bombSchema(24)
	t.Logf("schema: %d bytes", len(schema))
	start := time.Now()
	got := v.Verify(testCtx(t), Spec{Kind: KindSchema, Schema: []byte(schema)}, Submission{Report: "1"}, nil)
	took := time.Since(start)
	checkVerdict(t, got, Unsure, "too costly", "simplified")
	// The CPU limit is rounded up to whole seconds; the rest is the
	// sandbox's start and a loaded machine.
	if took > 15*time.Second {
		t.Errorf("the check took %v against a 2 s CPU limit", took)
	}
	// A schema of the same shape that a report satisfies at once is fine.
	got = v.Verify(testCtx(t), Spec{Kind: KindSchema, Schema: []byte(bombSchema(3))}, Submission{Report: `"abcd"`}, nil)
	checkVerdict(t, got, Pass)
}

// TestSchemaWithoutSandbox: a cheap schema is applied in process; a costly
// one is unsure without a sandbox, never applied in process.
func TestSchemaWithoutSandbox(t *testing.T) {
	v := New(nil, testLogger(t))
	got := v.Verify(testCtx(t), Spec{Kind: KindSchema, Schema: []byte(`{"type": "integer"}`)}, Submission{Report: "1"}, nil)
	checkVerdict(t, got, Pass)
	start := time.Now()
	got = v.Verify(testCtx(t), Spec{Kind: KindSchema, Schema: []byte(bombSchema(24))}, Submission{Report: "1"}, nil)
	checkVerdict(t, got, Unsure, "too costly", "no sandbox")
	if d := time.Since(start); d > time.Second {
		t.Errorf("took %v: the schema was applied", d)
	}
}

func TestCheapSchema(t *testing.T) {
	tests := []struct {
		schema, report string
		cheap          bool
	}{
		{`{"type": "object", "properties": {"a": {"anyOf": [{"type": "string"}, {"type": "integer"}]}}}`, `{"a": 1}`, true},
		{`{"$ref": "#/$defs/x", "$defs": {"x": {}}}`, `1`, false},
		{`{"type": "array", "uniqueItems": true}`, `[1, 2]`, false},
		{`{"multipleOf": 0.01}`, `1`, false},
		{`{"type": "number"}`, `1e400`, false},
		{`{"type": "number"}`, `1e10`, true},
		{`{"items": {"unevaluatedProperties": false}}`, `[]`, false},
		{`{"type": "array", "items": {"type": "integer"}}`, "[" + strings.Repeat("1,", 600_000) + "1]", false},
		// A pattern compiles to up to a million instructions; a format may
		// compile the report's own strings.
		{`{"type": "string", "pattern": "^a+$"}`, `"aaa"`, false},
		{`{"patternProperties": {"^x": {}}}`, `{}`, false},
		{`{"$schema": "http://json-schema.org/draft-07/schema#", "items": {"format": "regex"}}`, `["a"]`, false},
		{`{"contentMediaType": "application/json"}`, `"{}"`, false},
		// A long string is as costly as its length, for each node.
		{"{\"allOf\": [" + strings.Repeat(`{"minLength": 1},`, 3900) + "{}]}", `"` + strings.Repeat("x", 1<<20) + `"`, false},
		{`{"type": "object", "properties": {"name": {"type": "string", "minLength": 1}}}`, `{"name": "` + strings.Repeat("x", 10_000) + `"}`, true},
	}
	for _, tt := range tests {
		inst, err := reportJSON(tt.report)
		if err != nil {
			t.Fatal(err)
		}
		if got := cheapSchema([]byte(tt.schema), inst); got != tt.cheap {
			t.Errorf("cheapSchema(%.60s, %.20s) = %v, want %v", tt.schema, tt.report, got, tt.cheap)
		}
	}
}
