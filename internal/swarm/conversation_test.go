package swarm

import (
	"encoding/json"
	"reflect"
	"testing"

	"github.com/hive-swarm/hive/internal/llm"
)

// conversation is the reference for conversationJSON: the views that
// json.Marshal would encode.
func conversation(system string, msgs []llm.Message) []MessageView {
	out := make([]MessageView, 0, len(msgs)+1)
	if system != "" {
		out = append(out, MessageView{Role: "system", Parts: []PartView{{Type: "text", Text: system}}})
	}
	for _, m := range msgs {
		v := MessageView{Role: string(m.Role)}
		for _, p := range m.Parts {
			switch p := p.(type) {
			case llm.Text:
				v.Parts = append(v.Parts, PartView{Type: "text", Text: p.Text})
			case llm.ToolCall:
				in := p.Input
				if !json.Valid(in) {
					in, _ = json.Marshal(string(in))
				}
				v.Parts = append(v.Parts, PartView{Type: "tool_call", ID: p.ID, Name: p.Name, Input: in})
			case llm.ToolResult:
				v.Parts = append(v.Parts, PartView{Type: "tool_result", ID: p.CallID, Text: p.Content, IsError: p.IsError})
			case llm.Image:
				v.Parts = append(v.Parts, PartView{Type: "image", Text: p.URL})
			}
		}
		out = append(out, v)
	}
	return out
}

// conversationJSON decodes to exactly the views the reference builds, for
// every kind of part, text that needs escaping, and tool inputs that are
// not JSON.
func TestConversationJSON(t *testing.T) {
	tricky := "q\"uote\\ <b> & \n\t\x01 é \u2028 bad\xff"
	cases := []struct {
		system string
		msgs   []llm.Message
	}{
		{},
		{system: tricky},
		{msgs: []llm.Message{llm.UserText("no system")}},
		{system: "s", msgs: []llm.Message{
			llm.UserText(tricky),
			{Role: llm.RoleAssistant, Parts: []llm.Part{
				llm.Text{Text: "thinking"},
				llm.ToolCall{ID: "c1", Name: "run_code", Input: json.RawMessage(`{"code": "print('<hi>')",` + "\n" + `"language":"python"}`)},
				llm.ToolCall{ID: "c2", Name: "submit", Input: json.RawMessage(`{not json`)},
				llm.ToolCall{ID: "c3", Name: "empty"},
			}},
			{Role: llm.RoleUser, Parts: []llm.Part{
				llm.ToolResult{CallID: "c1", Content: tricky, IsError: true},
				llm.ToolResult{CallID: "c2"},
				llm.Image{URL: "https://example.com/x.png"},
				llm.Image{Data: []byte("png")},
			}},
			{Role: llm.RoleAssistant},
		}},
	}
	for i, c := range cases {
		var got, want any // decoded whole: tool inputs compared as JSON values
		data := conversationJSON(c.system, c.msgs)
		if err := json.Unmarshal(data, &got); err != nil {
			t.Fatalf("case %d: %v\n%s", i, err, data)
		}
		ref, err := json.Marshal(conversation(c.system, c.msgs))
		if err != nil {
			t.Fatal(err)
		}
		if err := json.Unmarshal(ref, &want); err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(got, want) {
			t.Errorf("case %d:\n got %s\nwant %s", i, data, ref)
		}
	}
}
