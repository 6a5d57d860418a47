package swarm

import (
	"bytes"
	"context"
	"encoding/json"
	"strings"
	"sync"
	"testing"

	"github.com/hive-swarm/hive/internal/llm"
	"github.com/hive-swarm/hive/internal/llm/llmtest"
)

// TestCutToolCall: a worker's call cut off at the output limit has
// arguments that are not JSON. They are never sent back (llama.cpp
// answers every later request with a 500 when they are): the history
// carries {} and the model is told its call was cut off; it calls again
// and the run ends done.
func TestCutToolCall(t *testing.T) {
	var mu sync.Mutex
	var echoed []string
	told := false
	h := func(c *llmtest.Call) llmtest.Reply {
		if isLead(c) {
			if turns(c) == 0 {
				return llmtest.Reply{ToolCalls: []llmtest.ToolCall{toolCall("delegate", delegateArgs{Tasks: tasks(1, "t")})}}
			}
			return finish("done")
		}
		if turns(c) == 0 {
			return llmtest.Reply{StopReason: llm.StopMaxTokens, ToolCalls: []llmtest.ToolCall{{Name: "submit", Input: `{"report": "a long report that was cu`}}}
		}
		mu.Lock()
		defer mu.Unlock()
		for _, m := range c.Messages {
			for _, p := range m.Parts {
				if tc, ok := p.(llm.ToolCall); ok {
					echoed = append(echoed, string(tc.Input))
				}
			}
		}
		told = containsResult(c.Messages[len(c.Messages)-1].Parts, "cut off at the output limit")
		return submit("short")
	}
	hs := newHarness(t, h, Options{})
	res := hs.run(Spec{Task: "cut", BudgetUSD: 1e9})
	if res.Status != StatusDone {
		t.Fatalf("run %s: %s", res.Status, res.Error)
	}
	if len(echoed) != 1 || echoed[0] != "{}" || !told {
		t.Fatalf("echoed arguments %q, told %v", echoed, told)
	}
}

// TestForcedToolChoice: after a turn without a tool call, the next call
// asks for one ("required"), which local servers enforce with a grammar;
// the calls before it leave the choice to the model.
func TestForcedToolChoice(t *testing.T) {
	var mu sync.Mutex
	choice := map[int]string{} // worker turn → tool_choice sent
	h := func(c *llmtest.Call) llmtest.Reply {
		if isLead(c) {
			if turns(c) == 0 {
				return llmtest.Reply{ToolCalls: []llmtest.ToolCall{toolCall("delegate", delegateArgs{Tasks: tasks(1, "t")})}}
			}
			return finish("done")
		}
		var body struct {
			ToolChoice json.RawMessage `json:"tool_choice"`
		}
		json.Unmarshal(c.Body, &body)
		mu.Lock()
		choice[turns(c)] = string(body.ToolChoice)
		mu.Unlock()
		if turns(c) == 0 {
			return llmtest.Reply{Text: "I would say hi."}
		}
		return submit("hi")
	}
	hs := newHarness(t, h, Options{})
	res := hs.run(Spec{Task: "force", BudgetUSD: 1e9})
	if res.Status != StatusDone {
		t.Fatalf("run %s: %s", res.Status, res.Error)
	}
	if choice[0] != "" || choice[1] != `"required"` {
		t.Fatalf("tool_choice by turn: %v", choice)
	}
}

// TestFinalTurnRequired: the lead's final turn, when the budget is
// exhausted, offers finish alone and requires a call, as a string that
// llama.cpp honours (it ignores a named function).
func TestFinalTurnRequired(t *testing.T) {
	var mu sync.Mutex
	var final *llmtest.Call
	h := func(c *llmtest.Call) llmtest.Reply {
		if !isLead(c) {
			r := submit("done")
			r.Usage = &llm.Usage{InputTokens: 100, OutputTokens: 2048}
			return r
		}
		if strings.Contains(c.LastUserText(), "budget is exhausted") {
			mu.Lock()
			final = c
			mu.Unlock()
			return finish("from what arrived")
		}
		return llmtest.Reply{ToolCalls: []llmtest.ToolCall{toolCall("delegate", delegateArgs{Tasks: tasks(50, "w"), Wait: ptr(true)})}}
	}
	hs := newHarness(t, h, Options{})
	// Room for the lead and a few workers, not fifty.
	res := hs.run(Spec{Task: "final", Tiers: []string{"strong"}, BudgetUSD: 60_000_000, MaxWorkers: 5})
	if res.Status != StatusDone || res.Answer != "from what arrived" {
		t.Fatalf("run %s: %q %q", res.Status, res.Answer, res.Error)
	}
	if final == nil {
		t.Fatal("no final turn")
	}
	if len(final.Tools) != 1 || final.Tools[0] != "finish" || !bytes.Contains(final.Body, []byte(`"tool_choice":"required"`)) {
		t.Fatalf("final turn: tools %v, body %.300s", final.Tools, final.Body)
	}
}

// TestRunUpdated: a run's updated time is when it last changed, its end,
// not when it was created.
func TestRunUpdated(t *testing.T) {
	h := func(c *llmtest.Call) llmtest.Reply { return finish("at once") }
	hs := newHarness(t, h, Options{})
	res := hs.run(Spec{Task: "updated", BudgetUSD: 1e9})
	jr, err := hs.store.Run(context.Background(), res.RunID)
	if err != nil {
		t.Fatal(err)
	}
	if !jr.Updated.After(jr.Created) {
		t.Fatalf("created %v, updated %v", jr.Created, jr.Updated)
	}
}
