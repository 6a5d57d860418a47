package openai_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"testing"

	"github.com/hive-swarm/hive/internal/llm"
	"github.com/hive-swarm/hive/internal/llm/llmtest"
	"github.com/hive-swarm/hive/internal/llm/openai"
)

// BenchmarkGenerate measures one Generate against a local llmtest server
// (adapter), and as the baseline the same request as a raw net/http POST
// whose answer is decoded into a plain struct (rawHTTP). The difference is
// the adapter's own cost: building the body, the SDK's request options and
// middleware, decoding and conversion.
func BenchmarkGenerate(b *testing.B) {
	usage := llm.Usage{InputTokens: 50, OutputTokens: 10}
	srv := llmtest.NewOpenAI(llmtest.Sequence(llmtest.Reply{Text: "The answer is 42.", Usage: &usage}))
	defer srv.Close()
	client := &http.Client{Transport: http.DefaultTransport.(*http.Transport).Clone()}
	req := &llm.Request{
		System:   "You are a calculator.",
		Messages: []llm.Message{llm.UserText("What is six times seven?")},
	}

	b.Run("adapter", func(b *testing.B) {
		m := openai.New(openai.Config{Model: "gpt-bench", BaseURL: srv.URL + "/v1", APIKey: "sk-bench", HTTPClient: client})
		ctx := context.Background()
		b.ReportAllocs()
		for b.Loop() {
			resp, err := m.Generate(ctx, req)
			if err != nil || resp.Text() != "The answer is 42." {
				b.Fatal(resp, err)
			}
		}
	})

	b.Run("rawHTTP", func(b *testing.B) {
		body, _ := json.Marshal(map[string]any{
			"model":      "gpt-bench",
			"max_tokens": openai.DefaultMaxTokens,
			"messages": []map[string]any{
				{"role": "system", "content": req.System},
				{"role": "user", "content": "What is six times seven?"},
			},
		})
		b.ReportAllocs()
		for b.Loop() {
			r, err := http.NewRequest(http.MethodPost, srv.URL+"/v1/chat/completions", bytes.NewReader(body))
			if err != nil {
				b.Fatal(err)
			}
			r.Header.Set("Content-Type", "application/json")
			r.Header.Set("Authorization", "Bearer sk-bench")
			res, err := client.Do(r)
			if err != nil {
				b.Fatal(err)
			}
			var out struct {
				Choices []struct {
					Message struct{ Content string }
				}
			}
			data, err := io.ReadAll(res.Body)
			res.Body.Close()
			if err != nil || json.Unmarshal(data, &out) != nil || len(out.Choices) == 0 || out.Choices[0].Message.Content != "The answer is 42." {
				b.Fatal(string(data), err)
			}
		}
	})
}
