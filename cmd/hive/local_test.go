package main

import (
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hive-swarm/hive/internal/llm"
	"github.com/hive-swarm/hive/internal/llm/llmtest"
)

// readmeLocalModels returns the hive.toml files of the README's "Local
// models" section.
func readmeLocalModels(t *testing.T) []string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("..", "..", "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	s := string(b)
	i := strings.Index(s, "### Local models")
	if i < 0 {
		t.Fatal("the README has no Local models section")
	}
	s = s[i:]
	if j := strings.Index(s[3:], "\n## "); j >= 0 {
		s = s[:j+3]
	}
	var out []string
	for _, m := range regexp.MustCompile("(?s)```toml\n(.*?)```").FindAllStringSubmatch(s, -1) {
		out = append(out, m[1])
	}
	if len(out) != 3 {
		t.Fatalf("%d hive.toml files in the Local models section, want 3", len(out))
	}
	return out
}

// localScript is a lead that delegates two tasks and a worker whose first
// call is cut off at the output limit; with wantFinal, the lead is held to
// its final turn by a token budget.
type localScript struct {
	mu    sync.Mutex
	calls []*llmtest.Call
}

func (s *localScript) handle(c *llmtest.Call) llmtest.Reply {
	s.mu.Lock()
	s.calls = append(s.calls, c)
	s.mu.Unlock()
	if isLead(c) {
		switch {
		case strings.Contains(c.LastUserText(), "budget is exhausted"):
			return finish("final turn")
		case assistantTurns(c) == 0:
			return delegate(map[string]any{"name": "a", "instructions": "Say a."}, map[string]any{"name": "b", "instructions": "Say b."})
		}
		return finish("two reports")
	}
	if assistantTurns(c) == 0 && mentions(c, "Say a.") {
		return llmtest.Reply{StopReason: llm.StopMaxTokens, ToolCalls: []llmtest.ToolCall{{Name: "submit", Input: `{"report": "a very long rep`}}}
	}
	return submit("done")
}

// TestReadmeLocalModels runs each hive.toml of the README's Local models
// section against a server that speaks its dialect (llama.cpp, vLLM,
// Ollama; the hosted lead against an Anthropic server): a worker's call
// cut off mid-arguments, which llama.cpp would answer with a 500 for
// every later request were it sent back, and a run held by its token
// budget to the lead's final turn, which llama.cpp ignores unless
// tool_choice is a string.
func TestReadmeLocalModels(t *testing.T) {
	for i, file := range readmeLocalModels(t) {
		t.Run(fmt.Sprint(i), func(t *testing.T) {
			s := &localScript{}
			var local *llmtest.Server
			switch {
			case strings.Contains(file, ":8080/"):
				local = llmtest.NewLlamaCpp(s.handle)
				local.Slots = 1 // fewer slots than the file's concurrency: the server queues
			case strings.Contains(file, ":8000/"):
				local = llmtest.NewVLLM(s.handle)
			case strings.Contains(file, ":11434/"):
				local = llmtest.NewOllama(s.handle)
			default:
				t.Fatalf("no known local server in:\n%s", file)
			}
			defer local.Close()
			cfg := regexp.MustCompile(`base_url = "http://127\.0\.0\.1:\d+/v1"`).ReplaceAllString(file, fmt.Sprintf("base_url = %q", local.URL+"/v1"))
			vars := map[string]string{"HOME": t.TempDir(), "ANTHROPIC_API_KEY": secretKey}
			if strings.Contains(cfg, `provider = "anthropic"`) {
				hosted := llmtest.NewAnthropic(s.handle)
				defer hosted.Close()
				cfg = strings.Replace(cfg, `provider = "anthropic"`, fmt.Sprintf("provider = \"anthropic\"\nbase_url = %q", hosted.URL), 1)
			}
			path := filepath.Join(vars["HOME"], "hive.toml")
			cfg = strings.Replace(cfg, "[defaults]\n", "[defaults]\ndb = \"hive.db\"\n", 1) // the journal beside it
			if err := os.WriteFile(path, []byte(cfg), 0o600); err != nil {
				t.Fatal(err)
			}
			vars["HIVE_CONFIG"] = path

			code, out, errOut := hiveIn(t, vars, "run", "two tasks")
			if code != 0 || out != "two reports\n" {
				t.Fatalf("run: exit %d, %q, %s", code, out, errOut)
			}
			// The cut call went back as {} and the model was told.
			s.mu.Lock()
			calls := s.calls
			s.calls = nil
			s.mu.Unlock()
			told := false
			for _, c := range calls {
				for _, m := range c.Messages {
					for _, p := range m.Parts {
						if tc, ok := p.(llm.ToolCall); ok && !strings.HasPrefix(string(tc.Input), "{") {
							t.Errorf("call %d sent back arguments %q", c.N, tc.Input)
						}
						if r, ok := p.(llm.ToolResult); ok && strings.Contains(r.Content, "cut off at the output limit") {
							told = true
						}
					}
				}
				if len(c.Warnings) > 0 {
					t.Errorf("call %d: the server warned %q", c.N, c.Warnings)
				}
			}
			if !told {
				t.Error("the worker was never told its call was cut off")
			}

			// A token budget that holds the lead's first call and little
			// more: what it leaves cannot hold one worker's worst case, so
			// that the outcome does not depend on whether the two workers'
			// calls overlap: the lead's final turn, finish alone, required.
			start := time.Now()
			code, out, errOut = hiveIn(t, vars, "run", "--budget-tokens", "4000", "two tasks")
			if code != 0 || out != "final turn\n" {
				t.Fatalf("run under a token budget: exit %d, %q, %s", code, out, errOut)
			}
			s.mu.Lock()
			defer s.mu.Unlock()
			var final *llmtest.Call
			for _, c := range s.calls {
				if isLead(c) && strings.Contains(c.LastUserText(), "budget is exhausted") {
					final = c
				}
			}
			if final == nil || len(final.Tools) != 1 || final.Tools[0] != "finish" || len(final.Warnings) > 0 {
				t.Fatalf("final turn: %+v", final)
			}
			if strings.Contains(final.Path, "/chat/completions") && !strings.Contains(file, ":11434/") && final.ToolChoice != "required" {
				t.Errorf("final turn's tool_choice %q, want required", final.ToolChoice)
			}
			t.Logf("the token-bound run took %v", time.Since(start))
		})
	}
}
