package llmtest

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"reflect"
	"strings"
	"testing"

	"github.com/openai/openai-go/v3"
	"github.com/openai/openai-go/v3/option"

	"github.com/hive-swarm/hive/internal/llm"
)

// These tests read the OpenAI server with the official SDK's own decoding
// and with plain HTTP, independently of Hive's adapter.

func sdkClient(srv *Server, key string) openai.Client {
	return openai.NewClient(option.WithBaseURL(srv.URL+"/v1"), option.WithAPIKey(key), option.WithMaxRetries(0))
}

func TestOpenAIWithSDK(t *testing.T) {
	usage := llm.Usage{InputTokens: 10, OutputTokens: 5, CacheReadTokens: 30, CacheWriteTokens: 4}
	srv := NewOpenAI(Sequence(Reply{Text: "hi there you", ToolCalls: []ToolCall{
		{ID: "call_1", Name: "f", Input: `{"a":1}`},
		{ID: "call_2", Name: "g", Input: `{"b":"ü"}`},
	}, Usage: &usage}))
	defer srv.Close()
	client := sdkClient(srv, "k")
	params := openai.ChatCompletionNewParams{
		Model:    "m",
		Messages: []openai.ChatCompletionMessageParamUnion{openai.UserMessage("hello")},
	}

	cc, err := client.Chat.Completions.New(context.Background(), params)
	if err != nil {
		t.Fatal(err)
	}
	check := func(cc *openai.ChatCompletion) {
		t.Helper()
		ch := cc.Choices[0]
		if ch.Message.Content != "hi there you" || ch.FinishReason != "tool_calls" || len(ch.Message.ToolCalls) != 2 {
			t.Fatalf("choice = %+v", ch)
		}
		if tc := ch.Message.ToolCalls[1]; tc.ID != "call_2" || tc.Type != "function" || tc.Function.Name != "g" || tc.Function.Arguments != `{"b":"ü"}` {
			t.Errorf("tool call = %+v", tc)
		}
		u := cc.Usage
		if u.PromptTokens != 44 || u.CompletionTokens != 5 || u.TotalTokens != 49 || u.PromptTokensDetails.CachedTokens != 30 || u.PromptTokensDetails.CacheWriteTokens != 4 {
			t.Errorf("usage = %+v", u)
		}
	}
	check(cc)
	if cc.Object != "chat.completion" || cc.Model != "m" || cc.Created == 0 {
		t.Errorf("object %q model %q created %d", cc.Object, cc.Model, cc.Created)
	}

	params.StreamOptions.IncludeUsage = openai.Bool(true)
	stream := client.Chat.Completions.NewStreaming(context.Background(), params)
	var acc openai.ChatCompletionAccumulator
	chunks, contentChunks := 0, 0
	for stream.Next() {
		ch := stream.Current()
		chunks++
		if ch.Object != "chat.completion.chunk" {
			t.Errorf("object %q", ch.Object)
		}
		if len(ch.Choices) > 0 && ch.Choices[0].Delta.Content != "" {
			contentChunks++
		}
		acc.AddChunk(ch)
		if ch.JSON.Usage.Valid() {
			// The SDK's accumulator drops cache_write_tokens.
			acc.Usage = ch.Usage
		}
	}
	if err := stream.Err(); err != nil {
		t.Fatal(err)
	}
	check(&acc.ChatCompletion)
	if contentChunks < 3 {
		t.Errorf("text came in %d chunks, want several", contentChunks)
	}
	if srv.Requests() != 2 {
		t.Errorf("%d requests", srv.Requests())
	}
}

func TestOpenAIStreamWire(t *testing.T) {
	srv := NewOpenAI(Sequence(Reply{Text: "a b"}))
	defer srv.Close()
	post := func(body string) string {
		res, err := http.Post(srv.URL+"/v1/chat/completions", "application/json", strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		defer res.Body.Close()
		if ct := res.Header.Get("Content-Type"); ct != "text/event-stream" {
			t.Errorf("content type %q", ct)
		}
		b, _ := io.ReadAll(res.Body)
		return string(b)
	}
	events := func(s string) []string {
		var out []string
		for _, e := range strings.Split(strings.TrimSpace(s), "\n\n") {
			out = append(out, strings.TrimPrefix(e, "data: "))
		}
		return out
	}
	// Without include_usage: role, "a ", "b", finish, [DONE]; no usage key.
	evs := events(post(`{"model":"m","stream":true,"messages":[{"role":"user","content":"x"}]}`))
	if len(evs) != 5 || evs[4] != "[DONE]" || strings.Contains(strings.Join(evs, ""), "usage") {
		t.Fatalf("events %q", evs)
	}
	var fin struct {
		Choices []struct {
			Delta        map[string]any
			FinishReason *string `json:"finish_reason"`
		}
	}
	json.Unmarshal([]byte(evs[3]), &fin)
	if len(fin.Choices) != 1 || fin.Choices[0].FinishReason == nil || *fin.Choices[0].FinishReason != "stop" {
		t.Errorf("finish event %s", evs[3])
	}
	// With it: usage null on every chunk, then a usage chunk with no choices.
	evs = events(post(`{"model":"m","stream":true,"stream_options":{"include_usage":true},"messages":[{"role":"user","content":"x"}]}`))
	if len(evs) != 6 || !strings.Contains(evs[0], `"usage":null`) || !strings.Contains(evs[4], `"choices":[]`) || !strings.Contains(evs[4], `"prompt_tokens"`) {
		t.Errorf("events %q", evs)
	}
}

func TestOpenAIErrorsWithSDK(t *testing.T) {
	tests := []struct {
		reply      Reply
		status     int
		typ, code  string
		retryAfter string
	}{
		{Reply{Status: 429, RetryAfter: "2"}, 429, "requests", "rate_limit_exceeded", "2"},
		{Reply{Status: 400, ErrorMessage: "This model's maximum context length is 10 tokens"}, 400, "invalid_request_error", "context_length_exceeded", ""},
		{Reply{Status: 400, ErrorMessage: "bad"}, 400, "invalid_request_error", "", ""},
		{Reply{Status: 500}, 500, "server_error", "", ""},
		{Reply{Status: 529}, 529, "server_error", "engine_overloaded", ""},
	}
	for _, tc := range tests {
		srv := NewOpenAI(Sequence(tc.reply))
		client := sdkClient(srv, "k")
		_, err := client.Chat.Completions.New(context.Background(), openai.ChatCompletionNewParams{
			Model: "m", Messages: []openai.ChatCompletionMessageParamUnion{openai.UserMessage("x")},
		})
		var e *openai.Error
		if !errors.As(err, &e) {
			t.Fatalf("%d: %v", tc.status, err)
		}
		if e.StatusCode != tc.status || e.Type != tc.typ || e.Code != tc.code || e.Message == "" || e.Response.Header.Get("Retry-After") != tc.retryAfter {
			t.Errorf("%d: got status %d type %q code %q message %q", tc.status, e.StatusCode, e.Type, e.Code, e.Message)
		}
		if srv.Requests() != 1 {
			t.Errorf("%d requests", srv.Requests())
		}
		srv.Close()
	}

	srv := NewOpenAI(Sequence(Reply{Text: "x"}))
	defer srv.Close()
	srv.APIKey = "right"
	wrongClient := sdkClient(srv, "wrong")
	_, err := wrongClient.Chat.Completions.New(context.Background(), openai.ChatCompletionNewParams{
		Model: "m", Messages: []openai.ChatCompletionMessageParamUnion{openai.UserMessage("x")},
	})
	var e *openai.Error
	if !errors.As(err, &e) || e.StatusCode != 401 || e.Code != "invalid_api_key" {
		t.Errorf("wrong key: %v", err)
	}
}

func TestOpenAIParse(t *testing.T) {
	body := `{"model":"m","max_completion_tokens":9,"tools":[{"type":"function","function":{"name":"f"}}],"messages":[
		{"role":"developer","content":"dev"},
		{"role":"system","content":[{"type":"text","text":"sys"}]},
		{"role":"user","content":[{"type":"text","text":"look"},{"type":"image_url","image_url":{"url":"data:image/png;base64,AAEC"}}]},
		{"role":"assistant","content":null,"tool_calls":[{"id":"c1","type":"function","function":{"name":"f","arguments":"{}"}},{"id":"c2","type":"function","function":{"name":"f","arguments":"{\"x\":1}"}}]},
		{"role":"tool","tool_call_id":"c1","content":"r1"},
		{"role":"tool","tool_call_id":"c2","content":[{"type":"text","text":"r2"}]},
		{"role":"user","content":"next"},
		{"role":"tool","tool_call_id":"c3","content":"r3"}]}`
	var c Call
	if err := (&openAI{}).parse([]byte(body), &c); err != nil {
		t.Fatal(err)
	}
	if c.System != "dev\n\nsys" || c.MaxTokens != 9 || !reflect.DeepEqual(c.Tools, []string{"f"}) {
		t.Errorf("system %q max %d tools %v", c.System, c.MaxTokens, c.Tools)
	}
	want := []llm.Message{
		{Role: llm.RoleUser, Parts: []llm.Part{llm.Text{Text: "look"}, llm.Image{MediaType: "image/png", Data: []byte{0, 1, 2}}}},
		{Role: llm.RoleAssistant, Parts: []llm.Part{
			llm.ToolCall{ID: "c1", Name: "f", Input: json.RawMessage(`{}`)},
			llm.ToolCall{ID: "c2", Name: "f", Input: json.RawMessage(`{"x":1}`)},
		}},
		{Role: llm.RoleUser, Parts: []llm.Part{llm.ToolResult{CallID: "c1", Content: "r1"}, llm.ToolResult{CallID: "c2", Content: "r2"}}},
		{Role: llm.RoleUser, Parts: []llm.Part{llm.Text{Text: "next"}}},
		{Role: llm.RoleUser, Parts: []llm.Part{llm.ToolResult{CallID: "c3", Content: "r3"}}},
	}
	if !reflect.DeepEqual(c.Messages, want) {
		t.Errorf("messages\n got %#v\nwant %#v", c.Messages, want)
	}
	for _, bad := range []string{`{`, `{"messages":[{"role":"user","content":"x"}]}`, `{"model":"m","messages":[]}`, `{"model":"m","messages":[{"role":"wizard","content":"x"}]}`} {
		if err := (&openAI{}).parse([]byte(bad), &Call{}); err == nil {
			t.Errorf("parse(%s) accepted", bad)
		}
	}
}

func TestOpenAIBadRequestBody(t *testing.T) {
	srv := NewOpenAI(Sequence(Reply{Text: "x"}))
	defer srv.Close()
	res, err := http.Post(srv.URL+"/v1/chat/completions", "application/json", bytes.NewReader([]byte(`{"model":`)))
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	var e struct {
		Error struct {
			Message string
			Type    string
			Param   *string
			Code    *string
		}
	}
	json.NewDecoder(res.Body).Decode(&e)
	if res.StatusCode != 400 || e.Error.Type != "invalid_request_error" || e.Error.Message == "" || e.Error.Param != nil {
		t.Errorf("status %d error %+v", res.StatusCode, e.Error)
	}
}
