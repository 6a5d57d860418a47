package anthropic

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"testing"

	"github.com/hive-swarm/hive/internal/llm"
	"github.com/hive-swarm/hive/internal/llm/llmtest"
)

// BenchmarkGenerate measures one Generate through the SDK against a local
// server, and as baseline the same request body sent as a plain net/http
// POST whose answer is decoded into a small struct: the difference is
// what the adapter and the SDK cost per call.
func BenchmarkGenerate(b *testing.B) {
	usage := llm.Usage{InputTokens: 50, OutputTokens: 20}
	srv := llmtest.NewAnthropic(func(*llmtest.Call) llmtest.Reply {
		return llmtest.Reply{Text: "The answer is forty-two, as computed by the local server.", Usage: &usage}
	})
	defer srv.Close()
	m := New(Config{Model: "claude-bench", BaseURL: srv.URL, APIKey: "sk-bench"})
	req := &llm.Request{
		System:    "You are a precise assistant.",
		Messages:  []llm.Message{llm.UserText("What is six times seven? Answer in one sentence.")},
		MaxTokens: 256,
	}
	ctx := context.Background()
	if _, err := m.Generate(ctx, req); err != nil {
		b.Fatal(err)
	}
	body := srv.Calls()[0].Body // exactly what the adapter sends

	b.Run("adapter", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			resp, err := m.Generate(ctx, req)
			if err != nil || resp.Usage != usage {
				b.Fatal(err, resp)
			}
		}
	})
	b.Run("raw_http", func(b *testing.B) {
		b.ReportAllocs()
		client := &http.Client{}
		for b.Loop() {
			r, err := http.NewRequestWithContext(ctx, http.MethodPost, srv.URL+"/v1/messages", bytes.NewReader(body))
			if err != nil {
				b.Fatal(err)
			}
			r.Header.Set("Content-Type", "application/json")
			r.Header.Set("Anthropic-Version", "2023-06-01")
			r.Header.Set("X-Api-Key", "sk-bench")
			resp, err := client.Do(r)
			if err != nil {
				b.Fatal(err)
			}
			var msg struct {
				ID      string
				Content []struct{ Type, Text string }
				Usage   struct {
					InputTokens  int64 `json:"input_tokens"`
					OutputTokens int64 `json:"output_tokens"`
				}
			}
			err = json.NewDecoder(resp.Body).Decode(&msg)
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if err != nil || msg.Usage.OutputTokens != usage.OutputTokens {
				b.Fatal(err, msg)
			}
		}
	})
}
