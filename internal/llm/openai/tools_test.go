package openai

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/hive-swarm/hive/internal/llm"
)

// Tool definitions are cached by content: a tool that changes its schema
// or description under the same name gets its new definition.
func TestToolJSON(t *testing.T) {
	a := llm.Tool{Name: "submit", Description: "send it", Schema: json.RawMessage(`{"type": "object", "properties": {"report": {"type": "string"}}}`)}
	b := a
	b.Schema = json.RawMessage(`{"type":"object","properties":{"answer":{"type":"integer"}}}`)
	c := a
	c.Description = ""
	want := map[*llm.Tool]string{
		&a: `{"name":"submit","description":"send it","parameters":{"type":"object","properties":{"report":{"type":"string"}}}}`,
		&b: `{"name":"submit","description":"send it","parameters":{"type":"object","properties":{"answer":{"type":"integer"}}}}`,
		&c: `{"name":"submit","parameters":{"type":"object","properties":{"report":{"type":"string"}}}}`,
	}
	for range 2 { // the second round is served from the cache
		for tool, w := range want {
			got, err := toolJSON(*tool)
			if err != nil || string(got) != w {
				t.Errorf("toolJSON(%s) = %s, %v; want %s", tool.Schema, got, err, w)
			}
		}
	}
	got, err := toolJSON(llm.Tool{Name: "none"})
	if err != nil || !strings.Contains(string(got), `"parameters":{"type":"object","properties":{}}`) {
		t.Errorf("no schema: %s, %v", got, err)
	}
	for _, bad := range []string{`[1]`, `null`, `{"type":`} {
		if _, err := toolJSON(llm.Tool{Name: "bad", Schema: json.RawMessage(bad)}); err == nil {
			t.Errorf("schema %s accepted", bad)
		}
	}
}
