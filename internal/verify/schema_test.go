package verify

import "testing"

func TestSchema(t *testing.T) {
	v := New(nil, testLogger(t))
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
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := v.Verify(testCtx(t), Spec{Kind: KindSchema, Schema: []byte(tt.schema)}, Submission{Report: tt.report}, nil)
			checkVerdict(t, got, tt.outcome, tt.evidence...)
		})
	}
}
