package openai_test

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"strings"
	"testing"

	sdk "github.com/openai/openai-go/v3"
	"github.com/openai/openai-go/v3/option"

	"github.com/hive-swarm/hive/internal/llm"
	"github.com/hive-swarm/hive/internal/llm/llmtest"
	"github.com/hive-swarm/hive/internal/llm/openai"
)

// TestBatchFiles checks the Batch API's files: the input uploaded as JSONL
// of purpose batch, and results read from both the output file (answers)
// and the error file (error statuses, with theirs).
func TestBatchFiles(t *testing.T) {
	srv := llmtest.NewOpenAI(func(c *llmtest.Call) llmtest.Reply {
		if c.LastUserText() == "bad" {
			return llmtest.Reply{Status: http.StatusBadRequest, ErrorMessage: "no good"}
		}
		return llmtest.Reply{Text: "fine", Usage: &llm.Usage{InputTokens: 9, OutputTokens: 2, CacheReadTokens: 4}}
	})
	defer srv.Close()
	m := openai.New(openai.Config{Model: "gpt-test", BaseURL: srv.URL + "/v1"})
	ctx := context.Background()
	id, err := m.SubmitBatch(ctx, []llm.BatchRequest{
		{CustomID: "good", Request: &llm.Request{Messages: []llm.Message{llm.UserText("good")}}},
		{CustomID: "bad", Request: &llm.Request{Messages: []llm.Message{llm.UserText("bad")}}},
	})
	if err != nil {
		t.Fatal(err)
	}
	st, err := m.PollBatch(ctx, id, nil)
	if err != nil || !st.Ended {
		t.Fatalf("PollBatch: %+v, %v", st, err)
	}
	if r := st.Results["good"]; r.Err != nil || r.Response.Text() != "fine" || r.Response.Usage != (llm.Usage{InputTokens: 9, OutputTokens: 2, CacheReadTokens: 4}) {
		t.Errorf("good: %+v", r)
	}
	var e *llm.Error
	if r := st.Results["bad"]; r.Response != nil || !errors.As(r.Err, &e) || e.Status != http.StatusBadRequest || e.Kind != llm.KindBadRequest || !strings.Contains(e.Message, "no good") {
		t.Errorf("bad: %+v", r)
	}

	// The batch as the SDK sees it: both result files, and the input.
	batches := sdk.NewBatchService(option.WithBaseURL(srv.URL + "/v1"))
	files := sdk.NewFileService(option.WithBaseURL(srv.URL + "/v1"))
	b, err := batches.Get(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	if b.Status != sdk.BatchStatusCompleted || b.OutputFileID == "" || b.ErrorFileID == "" || b.RequestCounts.Total != 2 || b.RequestCounts.Completed != 1 || b.RequestCounts.Failed != 1 {
		t.Errorf("batch: status %s, output %q, error %q, counts %+v", b.Status, b.OutputFileID, b.ErrorFileID, b.RequestCounts)
	}
	res, err := files.Content(ctx, b.InputFileID)
	if err != nil {
		t.Fatal(err)
	}
	input, _ := io.ReadAll(res.Body)
	res.Body.Close()
	lines := strings.Split(strings.TrimSpace(string(input)), "\n")
	if len(lines) != 2 {
		t.Fatalf("input file:\n%s", input)
	}
	for i, l := range lines {
		var line struct {
			CustomID string         `json:"custom_id"`
			Method   string         `json:"method"`
			URL      string         `json:"url"`
			Body     map[string]any `json:"body"`
		}
		if err := json.Unmarshal([]byte(l), &line); err != nil {
			t.Fatal(err)
		}
		if line.CustomID != []string{"good", "bad"}[i] || line.Method != "POST" || line.URL != "/v1/chat/completions" || line.Body["model"] != "gpt-test" || line.Body["stream"] != nil {
			t.Errorf("input line %d: %s", i, l)
		}
	}
}
