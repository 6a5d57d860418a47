package server

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/openai/openai-go/v3"
	"github.com/openai/openai-go/v3/option"

	"github.com/hive-swarm/hive/internal/llm"
	"github.com/hive-swarm/hive/internal/swarm"
)

func (e *testEnv) openAIClient() openai.Client {
	return openai.NewClient(option.WithBaseURL(e.srv.URL+"/v1/"), option.WithAPIKey(testToken), option.WithMaxRetries(0))
}

// swarmUsage sums the usage of a run's nodes.
func (e *testEnv) swarmUsage(id string) (run llm.Usage, nodes llm.Usage) {
	e.t.Helper()
	got := e.waitStatus(id, swarm.StatusDone)
	for _, n := range got.Nodes {
		nodes = nodes.Add(n.Usage)
	}
	return got.Run.Usage, nodes
}

func TestChatCompletions(t *testing.T) {
	e := newTestEnv(t, (&script{n: 2}).handle)
	client := e.openAIClient()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	var resp *http.Response
	c, err := client.Chat.Completions.New(ctx, openai.ChatCompletionNewParams{
		Model: "hive",
		Messages: []openai.ChatCompletionMessageParamUnion{
			openai.SystemMessage("Be brief."),
			openai.UserMessage("What is two plus two?"),
			openai.AssistantMessage("Four."),
			openai.UserMessage("Count the reports."),
		},
	}, option.WithResponseInto(&resp))
	if err != nil {
		t.Fatal(err)
	}
	want := "2 reports: report of t-0; report of t-1"
	if len(c.Choices) != 1 || c.Choices[0].Message.Content != want || c.Choices[0].FinishReason != "stop" {
		t.Fatalf("completion: %+v", c.Choices)
	}
	id := resp.Header.Get(RunHeader)
	if id == "" || c.ID != "chatcmpl-"+id {
		t.Fatalf("run header %q, completion id %q", id, c.ID)
	}
	run, nodes := e.swarmUsage(id)
	if run != nodes {
		t.Fatalf("run usage %+v is not the sum of its nodes' %+v", run, nodes)
	}
	in := run.InputTokens + run.CacheReadTokens + run.CacheWriteTokens
	if c.Usage.PromptTokens != in || c.Usage.CompletionTokens != run.OutputTokens || c.Usage.TotalTokens != in+run.OutputTokens || in == 0 {
		t.Fatalf("usage %+v, want the swarm's %+v", c.Usage, run)
	}
	// The earlier messages reached the lead as context of the task.
	var task string
	e.do("GET", "/v1/runs/"+id, testToken, nil, &struct {
		Run *struct{ Task *string } `json:"run"`
	}{Run: &struct{ Task *string }{Task: &task}})
	for _, s := range []string{"Be brief.", "What is two plus two?", "Four.", "Count the reports."} {
		if !strings.Contains(task, s) {
			t.Errorf("task lacks %q: %q", s, task)
		}
	}
	if !strings.HasSuffix(task, "Task:\nCount the reports.") {
		t.Errorf("task does not end with the last user message: %q", task)
	}
}

func TestChatCompletionsStream(t *testing.T) {
	e := newTestEnv(t, (&script{n: 40}).handle)
	e.server.PingInterval = 10 * time.Millisecond // comments in the stream must not upset the SDK
	client := e.openAIClient()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var resp *http.Response
	stream := client.Chat.Completions.NewStreaming(ctx, openai.ChatCompletionNewParams{
		Model:         "fast",
		Messages:      []openai.ChatCompletionMessageParamUnion{openai.UserMessage("Count the reports.")},
		StreamOptions: openai.ChatCompletionStreamOptionsParam{IncludeUsage: openai.Bool(true)},
	}, option.WithResponseInto(&resp))
	var acc openai.ChatCompletionAccumulator
	chunks := 0
	for stream.Next() {
		acc.AddChunk(stream.Current())
		chunks++
	}
	if err := stream.Err(); err != nil {
		t.Fatal(err)
	}
	if len(acc.Choices) != 1 {
		t.Fatalf("%d choices", len(acc.Choices))
	}
	got := acc.Choices[0].Message.Content
	if !strings.HasPrefix(got, "40 reports: report of t-0; ") || !strings.HasSuffix(got, "report of t-39") || chunks < 4 {
		t.Fatalf("streamed %d chunks: %q", chunks, got)
	}
	id := resp.Header.Get(RunHeader)
	run, _ := e.swarmUsage(id)
	if acc.Usage.CompletionTokens != run.OutputTokens || acc.Usage.PromptTokens != run.InputTokens+run.CacheReadTokens+run.CacheWriteTokens || run.OutputTokens == 0 {
		t.Fatalf("stream usage %+v, swarm %+v", acc.Usage, run)
	}
	// The "fast" swarm's configuration was used: workers on "cheap" only,
	// with its budget.
	var view runJSON
	e.do("GET", "/v1/runs/"+id, testToken, nil, &view)
	if view.Run.BudgetUSD != 0.5 {
		t.Errorf("budget %v, want the fast swarm's 0.5", view.Run.BudgetUSD)
	}
	for _, n := range view.Nodes {
		if n.Role == swarm.RoleWorker && n.Model != "cheap" {
			t.Errorf("worker %s on %s, want cheap", n.ID, n.Model)
		}
	}
}

func TestChatCompletionsUnknownModel(t *testing.T) {
	e := newTestEnv(t, (&script{n: 1}).handle)
	client := e.openAIClient()
	_, err := client.Chat.Completions.New(context.Background(), openai.ChatCompletionNewParams{
		Model:    "gpt-nope",
		Messages: []openai.ChatCompletionMessageParamUnion{openai.UserMessage("hi")},
	})
	var apiErr *openai.Error
	if !errors.As(err, &apiErr) {
		t.Fatalf("error %v, want an *openai.Error", err)
	}
	if apiErr.StatusCode != 404 || apiErr.Code != "model_not_found" || apiErr.Type != "invalid_request_error" {
		t.Fatalf("error %d %q %q", apiErr.StatusCode, apiErr.Code, apiErr.Type)
	}
	if e.llm.Requests() != 0 {
		t.Fatal("an unknown model started a run")
	}
	// A wrong key is refused before anything runs.
	bad := openai.NewClient(option.WithBaseURL(e.srv.URL+"/v1/"), option.WithAPIKey("wrong"), option.WithMaxRetries(0))
	_, err = bad.Chat.Completions.New(context.Background(), openai.ChatCompletionNewParams{
		Model: "hive", Messages: []openai.ChatCompletionMessageParamUnion{openai.UserMessage("hi")},
	})
	if !errors.As(err, &apiErr) || apiErr.StatusCode != 401 {
		t.Fatalf("wrong key: %v", err)
	}
}
