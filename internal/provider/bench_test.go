package provider_test

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"net/http"
	"testing"

	"github.com/hive-swarm/hive/internal/config"
	"github.com/hive-swarm/hive/internal/limit"
	"github.com/hive-swarm/hive/internal/llm"
	"github.com/hive-swarm/hive/internal/llm/llmtest"
	"github.com/hive-swarm/hive/internal/provider"
)

// BenchmarkCallOverhead measures what llm, limit and price add to one call
// of a local OpenAI-compatible server: Raw posts the body the adapter
// sends with net/http and reads the answer (the baseline); Adapter calls
// the bare adapter; Admitted calls through the limiter and prices the
// usage, as the engine does.
func BenchmarkCallOverhead(b *testing.B) {
	usage := llm.Usage{InputTokens: 12, OutputTokens: 8}
	srv := llmtest.NewOpenAI(func(*llmtest.Call) llmtest.Reply {
		return llmtest.Reply{Text: "Hello, world! How are you today?", Usage: &usage}
	})
	defer srv.Close()
	cfg, err := config.Parse([]byte("[models.m]\nprovider = \"openai\"\nmodel = \"gpt-4o-mini\"\nbase_url = \"" + srv.URL + "/v1\"\napi_key_env = \"K\"\n"))
	if err != nil {
		b.Fatal(err)
	}
	reg := provider.NewRegistry(cfg, func(string) string { return testKey }, slog.New(slog.DiscardHandler))
	m, err := reg.Get("m")
	if err != nil {
		b.Fatal(err)
	}
	ctx := context.Background()
	req := request()
	// One adapter call gives the exact body the baseline posts.
	if _, err := m.Client.Generate(ctx, req); err != nil {
		b.Fatal(err)
	}
	body := srv.Calls()[0].Body
	client := &http.Client{}

	b.Run("Raw", func(b *testing.B) {
		for b.Loop() {
			r, err := http.NewRequestWithContext(ctx, http.MethodPost, srv.URL+"/v1/chat/completions", bytes.NewReader(body))
			if err != nil {
				b.Fatal(err)
			}
			r.Header.Set("Content-Type", "application/json")
			r.Header.Set("Authorization", "Bearer "+testKey)
			res, err := client.Do(r)
			if err != nil {
				b.Fatal(err)
			}
			out, err := io.ReadAll(res.Body)
			res.Body.Close()
			if err != nil || res.StatusCode != http.StatusOK || len(out) == 0 {
				b.Fatalf("status %d, %v", res.StatusCode, err)
			}
		}
	})
	b.Run("Adapter", func(b *testing.B) {
		for b.Loop() {
			if _, err := m.Client.Generate(ctx, req); err != nil {
				b.Fatal(err)
			}
		}
	})
	admitted := m.Admitted(limit.Worker)
	b.Run("Admitted+Cost", func(b *testing.B) {
		for b.Loop() {
			resp, err := admitted.Generate(ctx, req)
			if err != nil {
				b.Fatal(err)
			}
			if c, ok := m.Cost(resp.Usage); !ok || c <= 0 {
				b.Fatal("no cost")
			}
		}
	})
}
