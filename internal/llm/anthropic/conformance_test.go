package anthropic

import (
	"testing"

	"github.com/hive-swarm/hive/internal/llm"
	"github.com/hive-swarm/hive/internal/llm/llmtest"
)

// TestConformance runs the suite every llm.Model adapter passes.
func TestConformance(t *testing.T) {
	llmtest.TestModel(t, llmtest.Provider{
		Name:      "anthropic",
		NewServer: llmtest.NewAnthropic,
		NewModel: func(baseURL, apiKey string) llm.Model {
			return New(Config{Model: "claude-test", BaseURL: baseURL, APIKey: apiKey})
		},
	})
}

// TestBatchConformance runs the suite every llm.Batcher adapter passes.
func TestBatchConformance(t *testing.T) {
	llmtest.TestBatcher(t, llmtest.Provider{
		Name:      "anthropic",
		NewServer: llmtest.NewAnthropic,
		NewModel: func(baseURL, apiKey string) llm.Model {
			return New(Config{Model: "claude-test", BaseURL: baseURL, APIKey: apiKey})
		},
	})
}
