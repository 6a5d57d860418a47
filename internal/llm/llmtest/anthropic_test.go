package llmtest

import (
	"bufio"
	"encoding/json"
	"io"
	"net/http"
	"reflect"
	"strings"
	"testing"

	"github.com/hive-swarm/hive/internal/llm"
)

// anthropicPost sends body to srv as the SDK would, with the given extra
// headers, and returns the response with its body read.
func anthropicPost(t *testing.T, srv *Server, body string, header map[string]string) (*http.Response, []byte) {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, srv.URL+"/v1/messages", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Anthropic-Version", "2023-06-01")
	for k, v := range header {
		if v == "" {
			req.Header.Del(k)
		} else {
			req.Header.Set(k, v)
		}
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp, b
}

type anthropicEvent struct {
	name string
	data map[string]any
}

func anthropicEvents(t *testing.T, b []byte) []anthropicEvent {
	t.Helper()
	var evs []anthropicEvent
	var name string
	sc := bufio.NewScanner(strings.NewReader(string(b)))
	for sc.Scan() {
		line := sc.Text()
		switch {
		case strings.HasPrefix(line, "event: "):
			name = strings.TrimPrefix(line, "event: ")
		case strings.HasPrefix(line, "data: "):
			var d map[string]any
			if err := json.Unmarshal([]byte(strings.TrimPrefix(line, "data: ")), &d); err != nil {
				t.Fatalf("data of %s: %v", name, err)
			}
			if d["type"] != name {
				t.Errorf("event %s carries data of type %v", name, d["type"])
			}
			evs = append(evs, anthropicEvent{name, d})
		}
	}
	return evs
}

const anthropicBasic = `{"model":"claude-x","max_tokens":64,"stream":true,"messages":[{"role":"user","content":"hi"}]}`

func TestAnthropicStreamEvents(t *testing.T) {
	usage := llm.Usage{InputTokens: 10, OutputTokens: 20, CacheWriteTokens: 30, CacheReadTokens: 40}
	srv := NewAnthropic(func(*Call) Reply {
		return Reply{Text: "Hello there, this is a longer text.", Usage: &usage,
			ToolCalls: []ToolCall{{Name: "f", Input: `{"a":"bcdefghijklmnopqrstuvwxyz"}`}}}
	})
	defer srv.Close()
	resp, body := anthropicPost(t, srv, anthropicBasic, nil)
	if ct := resp.Header.Get("Content-Type"); !strings.HasPrefix(ct, "text/event-stream") || resp.Header.Get("Request-Id") == "" {
		t.Errorf("content type %q, request-id %q", ct, resp.Header.Get("Request-Id"))
	}
	evs := anthropicEvents(t, body)
	var names []string
	var text, input string
	for _, e := range evs {
		if len(names) == 0 || names[len(names)-1] != e.name || e.name != "content_block_delta" {
			names = append(names, e.name)
		}
		if d, ok := e.data["delta"].(map[string]any); ok {
			switch d["type"] {
			case "text_delta":
				text += d["text"].(string)
			case "input_json_delta":
				input += d["partial_json"].(string)
			}
		}
	}
	want := []string{"message_start", "content_block_start", "ping", "content_block_delta", "content_block_stop",
		"content_block_start", "content_block_delta", "content_block_stop", "message_delta", "message_stop"}
	if !reflect.DeepEqual(names, want) {
		t.Errorf("events %v, want %v", names, want)
	}
	if text != "Hello there, this is a longer text." || input != `{"a":"bcdefghijklmnopqrstuvwxyz"}` {
		t.Errorf("text %q input %q", text, input)
	}
	start := evs[0].data["message"].(map[string]any)
	if u := start["usage"].(map[string]any); u["input_tokens"] != 10.0 || u["cache_creation_input_tokens"] != 30.0 || u["cache_read_input_tokens"] != 40.0 {
		t.Errorf("message_start usage %v", u)
	}
	if !strings.HasPrefix(start["id"].(string), "msg_") || start["model"] != "claude-x" || start["role"] != "assistant" {
		t.Errorf("message_start %v", start)
	}
	md := evs[len(evs)-2].data
	if md["delta"].(map[string]any)["stop_reason"] != "tool_use" || md["usage"].(map[string]any)["output_tokens"] != 20.0 {
		t.Errorf("message_delta %v", md)
	}
}

func TestAnthropicTruncate(t *testing.T) {
	for _, tt := range []struct {
		name string
		rep  Reply
		last string
		n    int
	}{
		{"cut", Reply{Text: "some text to stream", TruncateAfter: 3}, "ping", 3},
		{"error event", Reply{Text: "some text to stream", TruncateAfter: 3, ErrorType: "overloaded_error", ErrorMessage: "Overloaded"}, "error", 4},
	} {
		t.Run(tt.name, func(t *testing.T) {
			srv := NewAnthropic(Sequence(tt.rep))
			defer srv.Close()
			_, body := anthropicPost(t, srv, anthropicBasic, nil)
			evs := anthropicEvents(t, body)
			if len(evs) != tt.n || evs[len(evs)-1].name != tt.last {
				t.Fatalf("got %d events ending %v, want %d ending %s", len(evs), evs[len(evs)-1], tt.n, tt.last)
			}
			if tt.last == "error" {
				e := evs[len(evs)-1].data["error"].(map[string]any)
				if e["type"] != "overloaded_error" || e["message"] != "Overloaded" {
					t.Errorf("error event %v", e)
				}
			}
		})
	}
}

func TestAnthropicWholeMessage(t *testing.T) {
	srv := NewAnthropic(Sequence(Reply{Text: "done", StopReason: llm.StopSequence,
		Usage:     &llm.Usage{InputTokens: 1, OutputTokens: 2},
		ToolCalls: []ToolCall{{ID: "toolu_1", Name: "f", Input: `{"x":1}`}, {Name: "g", Input: `{"x":`}}}))
	defer srv.Close()
	resp, body := anthropicPost(t, srv, `{"model":"claude-x","max_tokens":64,"stop_sequences":["END"],"messages":[{"role":"user","content":"hi"}]}`, nil)
	if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "application/json" {
		t.Fatalf("status %d content type %q", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	var msg map[string]any
	if err := json.Unmarshal(body, &msg); err != nil {
		t.Fatal(err)
	}
	want := map[string]any{
		"id": "msg_llmtest00000001", "type": "message", "role": "assistant", "model": "claude-x",
		"stop_reason": "stop_sequence", "stop_sequence": "END",
		"usage": map[string]any{"input_tokens": 1.0, "output_tokens": 2.0, "cache_creation_input_tokens": 0.0, "cache_read_input_tokens": 0.0},
		"content": []any{
			map[string]any{"type": "text", "text": "done"},
			map[string]any{"type": "tool_use", "id": "toolu_1", "name": "f", "input": map[string]any{"x": 1.0}},
			map[string]any{"type": "tool_use", "id": "toolu_llmtest000001_1", "name": "g", "input": `{"x":`},
		},
	}
	if !reflect.DeepEqual(msg, want) {
		t.Errorf("message\n%v\nwant\n%v", msg, want)
	}
}

func TestAnthropicParse(t *testing.T) {
	body := `{"model":"claude-x","max_tokens":10,
	 "system":[{"type":"text","text":"You are "},{"type":"text","text":"terse.","cache_control":{"type":"ephemeral"}}],
	 "tools":[{"name":"f","input_schema":{"type":"object"}},{"name":"g","input_schema":{"type":"object"},"cache_control":{"type":"ephemeral"}}],
	 "messages":[
	  {"role":"user","content":[{"type":"text","text":"look"},
	    {"type":"image","source":{"type":"base64","media_type":"image/png","data":"aGk="}},
	    {"type":"image","source":{"type":"url","url":"https://example.invalid/a.png"}}]},
	  {"role":"assistant","content":[{"type":"tool_use","id":"t1","name":"f","input":{"a":1}},{"type":"tool_use","id":"t2","name":"g","input":{}}]},
	  {"role":"user","content":[{"type":"tool_result","tool_use_id":"t1","content":"one"},
	    {"type":"tool_result","tool_use_id":"t2","is_error":true,"content":[{"type":"text","text":"bad "},{"type":"text","text":"input"}],"cache_control":{"type":"ephemeral"}}]}
	 ]}`
	srv := NewAnthropic(Sequence(Reply{Text: "ok"}))
	defer srv.Close()
	if resp, b := anthropicPost(t, srv, body, nil); resp.StatusCode != 200 {
		t.Fatalf("status %d: %s", resp.StatusCode, b)
	}
	c := srv.Calls()[0]
	if c.System != "You are terse." || c.MaxTokens != 10 || c.Stream || !reflect.DeepEqual(c.Tools, []string{"f", "g"}) {
		t.Errorf("system %q max %d stream %v tools %v", c.System, c.MaxTokens, c.Stream, c.Tools)
	}
	want := []llm.Message{
		{Role: llm.RoleUser, Parts: []llm.Part{llm.Text{Text: "look"},
			llm.Image{MediaType: "image/png", Data: []byte("hi")}, llm.Image{URL: "https://example.invalid/a.png"}}},
		{Role: llm.RoleAssistant, Parts: []llm.Part{
			llm.ToolCall{ID: "t1", Name: "f", Input: json.RawMessage(`{"a":1}`)},
			llm.ToolCall{ID: "t2", Name: "g", Input: json.RawMessage(`{}`)}}},
		{Role: llm.RoleUser, Cache: true, Parts: []llm.Part{
			llm.ToolResult{CallID: "t1", Content: "one"},
			llm.ToolResult{CallID: "t2", Content: "bad input", IsError: true}}},
	}
	if !reflect.DeepEqual(c.Messages, want) {
		t.Errorf("messages\n%#v\nwant\n%#v", c.Messages, want)
	}
	if got := AnthropicCacheMarks(c); !reflect.DeepEqual(got, []string{"tools.1", "system.1", "messages.2.content.1"}) {
		t.Errorf("cache marks %q", got)
	}
}

func TestAnthropicRequestChecks(t *testing.T) {
	srv := NewAnthropic(Sequence(Reply{Text: "ok"}))
	srv.APIKey = "sk-right"
	defer srv.Close()
	const ok = `{"model":"m","max_tokens":5,"messages":[{"role":"user","content":"hi"}]}`
	tests := []struct {
		name   string
		body   string
		header map[string]string
		status int
		errTyp string
	}{
		{"x-api-key", ok, map[string]string{"X-Api-Key": "sk-right"}, 200, ""},
		{"bearer", ok, map[string]string{"Authorization": "Bearer sk-right"}, 200, ""},
		{"wrong key", ok, map[string]string{"X-Api-Key": "sk-wrong"}, 401, "authentication_error"},
		{"no key", ok, nil, 401, "authentication_error"},
		{"no version", ok, map[string]string{"X-Api-Key": "sk-right", "Anthropic-Version": ""}, 400, "invalid_request_error"},
		{"no max_tokens", `{"model":"m","messages":[{"role":"user","content":"hi"}]}`, map[string]string{"X-Api-Key": "sk-right"}, 400, "invalid_request_error"},
		{"bad role", `{"model":"m","max_tokens":5,"messages":[{"role":"system","content":"hi"}]}`, map[string]string{"X-Api-Key": "sk-right"}, 400, "invalid_request_error"},
	}
	for _, tt := range tests {
		resp, body := anthropicPost(t, srv, tt.body, tt.header)
		if resp.StatusCode != tt.status || resp.Header.Get("Request-Id") == "" {
			t.Errorf("%s: status %d request-id %q: %s", tt.name, resp.StatusCode, resp.Header.Get("Request-Id"), body)
			continue
		}
		if tt.errTyp == "" {
			continue
		}
		var e struct {
			Type  string
			Error struct{ Type, Message string }
		}
		if json.Unmarshal(body, &e) != nil || e.Type != "error" || e.Error.Type != tt.errTyp || e.Error.Message == "" {
			t.Errorf("%s: error body %s", tt.name, body)
		}
	}
}
