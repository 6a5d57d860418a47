package openai

import (
	"bytes"
	"encoding/json"
	"testing"

	"github.com/hive-swarm/hive/internal/llm"
)

// reference encodes r with encoding/json, HTML escaping off: what encode
// must write byte for byte.
func reference(t *testing.T, r *wireRequest) []byte {
	t.Helper()
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(r); err != nil {
		t.Fatal(err)
	}
	return bytes.TrimSuffix(buf.Bytes(), []byte("\n"))
}

// The hand-written request encoder writes exactly what encoding/json
// writes, for every kind of message, tool choice and option, and for text
// that needs escaping.
func TestEncodeMatchesEncodingJSON(t *testing.T) {
	tricky := "q\"uote\\ <html> & \n\r\t\b\f \x00\x1f \x7f é 世 \u2028\u2029 bad\xff\xfe end"
	temp, yes, no := 0.7, true, false
	tiny := 1e-7
	schema := json.RawMessage(`{"type":"object","properties":{"x":{"type":"string","description":"<x> & y"}}}`)
	reqs := []llm.Request{
		{},
		{System: tricky, Messages: []llm.Message{llm.UserText(tricky)}},
		{
			System: "s",
			Messages: []llm.Message{
				llm.UserText("task"),
				{Role: llm.RoleAssistant, Parts: []llm.Part{llm.Text{Text: tricky}, llm.ToolCall{ID: "c1", Name: "run", Input: json.RawMessage(`{"code":"print(\"<hi>\")"}`)}, llm.ToolCall{ID: "c2", Name: "none"}}},
				{Role: llm.RoleUser, Parts: []llm.Part{llm.ToolResult{CallID: "c1", Content: tricky, IsError: true}, llm.ToolResult{CallID: "c2", Content: ""}, llm.Text{Text: "more"}}},
				{Role: llm.RoleAssistant, Parts: []llm.Part{llm.ToolCall{ID: "c3", Name: "submit", Input: json.RawMessage(`{}`)}}},
				{Role: llm.RoleUser, Parts: []llm.Part{llm.Text{Text: "look"}, llm.Image{URL: "https://example.com/a.png?x=1&y=<2>"}, llm.Image{Data: []byte("\x89PNG\r\n\x1a\n"), MediaType: "image/png"}}},
				{Role: llm.RoleAssistant},
			},
			Tools:             []llm.Tool{{Name: "run", Description: tricky, Schema: schema}, {Name: "submit"}},
			ToolChoice:        llm.ToolChoice{Mode: llm.ToolName, Name: "sub\"mit"},
			ParallelToolCalls: &no,
			MaxTokens:         77,
			Temperature:       &temp,
			Stop:              []string{"\n\n", tricky},
			CacheKey:          tricky,
		},
		{Messages: []llm.Message{llm.UserText("x")}, Tools: []llm.Tool{{Name: "a"}}, ToolChoice: llm.ToolChoice{Mode: llm.ToolAny}, ParallelToolCalls: &yes, Temperature: &tiny},
		{Messages: []llm.Message{llm.UserText("x")}, Tools: []llm.Tool{{Name: "a"}}, ToolChoice: llm.ToolChoice{Mode: llm.ToolNone}},
	}
	for _, completion := range []bool{false, true} {
		m := New(Config{Model: "m\"odel"})
		m.completionTokens = completion
		for i := range reqs {
			for _, stream := range []bool{false, true} {
				w, err := m.request(&reqs[i])
				if err != nil {
					t.Fatalf("request %d: %v", i, err)
				}
				if stream {
					w.Stream = true
					w.StreamOptions = &streamOptions{IncludeUsage: true}
				}
				got, err := w.encode()
				if err != nil {
					t.Fatalf("request %d: %v", i, err)
				}
				if want := reference(t, w); !bytes.Equal(got, want) {
					t.Errorf("request %d (stream %v, completion tokens %v):\n got %s\nwant %s", i, stream, completion, got, want)
				}
			}
		}
	}
	// Shapes the converter never makes, written the same way too.
	for _, w := range []*wireRequest{
		{Model: "x"},
		{Model: "x", Messages: []wireMessage{{Role: "user", Content: partsContent(nil)}, {Role: "user", Content: partsContent{}}}},
	} {
		got, err := w.encode()
		if err != nil {
			t.Fatal(err)
		}
		if want := reference(t, w); !bytes.Equal(got, want) {
			t.Errorf("\n got %s\nwant %s", got, want)
		}
	}
}

func BenchmarkEncode(b *testing.B) {
	m := New(Config{Model: "cheap"})
	req := &llm.Request{
		System:   "You are a worker in Hive. Do the task, then call submit with your report.",
		Messages: []llm.Message{llm.UserText("Task \"b-1\":\nSay the number b-1.")},
		Tools:    []llm.Tool{{Name: "submit", Description: "Submit your report.", Schema: json.RawMessage(`{"type":"object","properties":{"report":{"type":"string"}}}`)}},
	}
	w, err := m.request(req)
	if err != nil {
		b.Fatal(err)
	}
	b.Run("hand", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			w.encode()
		}
	})
	b.Run("encoding/json", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			var buf bytes.Buffer
			enc := json.NewEncoder(&buf)
			enc.SetEscapeHTML(false)
			enc.Encode(w)
		}
	})
}

// wireText reads a JSON string as encoding/json does, with or without
// escapes, and with bytes that are not UTF-8.
func TestWireTextStrings(t *testing.T) {
	for _, s := range []string{"", "plain text", `{"code":"print(1)"}`, "line\nnext \"q\" \\ \t é", "bad\xff\xfe", "\u2028"} {
		data, _ := json.Marshal(s)
		raw := append([]byte(`"`), s...)
		raw = append(raw, '"')
		for _, in := range [][]byte{data, raw} {
			if !json.Valid(in) {
				continue
			}
			var want string
			json.Unmarshal(in, &want)
			var got wireText
			if err := got.UnmarshalJSON(in); err != nil || string(got) != want {
				t.Errorf("wireText(%s) = %q, %v; want %q", in, got, err, want)
			}
		}
	}
}
