package swarm

import (
	"slices"
	"strings"
	"testing"

	"github.com/hive-swarm/hive/internal/llm/llmtest"
)

func submit(report string) llmtest.Reply {
	return llmtest.Reply{ToolCalls: []llmtest.ToolCall{toolCall("submit", submitArgs{Report: report})}}
}

func finish(answer string) llmtest.Reply {
	return llmtest.Reply{ToolCalls: []llmtest.ToolCall{toolCall("finish", finishArgs{Answer: answer})}}
}

// Workers delegate to sub-workers (depth 2); sub-workers may not delegate.
func TestRecursiveDelegation(t *testing.T) {
	h := func(c *llmtest.Call) llmtest.Reply {
		if isLead(c) {
			if len(c.ToolResults()) == 0 {
				return llmtest.Reply{ToolCalls: []llmtest.ToolCall{toolCall("delegate", delegateArgs{Tasks: tasks(2, "mid")})}}
			}
			var parts []string
			for _, r := range reports(c) {
				parts = append(parts, r.Report)
			}
			return finish(strings.Join(parts, " | "))
		}
		name := taskName(c)
		if strings.HasPrefix(name, "mid") && !strings.Contains(name, "/leaf") {
			if len(c.ToolResults()) == 0 {
				return llmtest.Reply{ToolCalls: []llmtest.ToolCall{toolCall("delegate", delegateArgs{Tasks: tasks(2, name+"/leaf")})}}
			}
			var parts []string
			for _, r := range reports(c) {
				parts = append(parts, r.Report)
			}
			return submit(name + "[" + strings.Join(parts, ",") + "]")
		}
		if slices.Contains(c.Tools, "delegate") {
			return submit("leaf offered delegate at max depth")
		}
		return submit(name)
	}
	hs := newHarness(t, h, Options{})
	res := hs.run(Spec{Task: "recurse", BudgetUSD: 1e9, MaxDepth: 2})
	want := "mid-0[mid-0/leaf-0,mid-0/leaf-1] | mid-1[mid-1/leaf-0,mid-1/leaf-1]"
	if res.Status != StatusDone || res.Answer != want {
		t.Fatalf("run %s: answer %q (error %q), want %q", res.Status, res.Answer, res.Error, want)
	}
	nodes := hs.nodes(res.RunID)
	depth := map[string]int{}
	for _, n := range nodes {
		depth[n.ID] = n.Depth
	}
	if len(nodes) != 7 || depth["1.1"] != 2 || depth["2.2"] != 2 || depth["1"] != 1 {
		t.Fatalf("tree: %v", depth)
	}
}

// Malformed tool calls come back to the model as tool errors; it recovers.
func TestMalformedToolCallsRecover(t *testing.T) {
	h := func(c *llmtest.Call) llmtest.Reply {
		if !isLead(c) {
			return submit("ok")
		}
		switch turns(c) {
		case 0:
			return llmtest.Reply{ToolCalls: []llmtest.ToolCall{{Name: "delegate", Input: `{"tasks": [`}}}
		case 1:
			return llmtest.Reply{ToolCalls: []llmtest.ToolCall{toolCall("frobnicate", map[string]int{"x": 1})}}
		case 2:
			return llmtest.Reply{Text: "I think the answer is 42."}
		}
		var seen []string
		for _, c2 := range []string{"not valid JSON", `unknown tool "frobnicate"`, "you must answer by calling one of your tools"} {
			for _, m := range c.Messages {
				if strings.Contains(m.Text(), c2) || containsResult(m.Parts, c2) {
					seen = append(seen, c2)
					break
				}
			}
		}
		return finish(strings.Join(seen, ";"))
	}
	hs := newHarness(t, h, Options{})
	res := hs.run(Spec{Task: "x", BudgetUSD: 1e9, MaxToolErrors: 4})
	if res.Status != StatusDone {
		t.Fatalf("run %s: %s", res.Status, res.Error)
	}
	if res.Answer != `not valid JSON;unknown tool "frobnicate";you must answer by calling one of your tools` {
		t.Fatalf("the model did not see every error: %q", res.Answer)
	}
}

// A model that keeps getting its calls wrong fails the node with evidence.
func TestMalformedToolCallsFail(t *testing.T) {
	h := func(c *llmtest.Call) llmtest.Reply {
		return llmtest.Reply{ToolCalls: []llmtest.ToolCall{{Name: "finish", Input: `{"answer": 42`}}}
	}
	hs := newHarness(t, h, Options{})
	res := hs.run(Spec{Task: "x", BudgetUSD: 1e9, MaxToolErrors: 3})
	if res.Status != StatusFailed || !strings.Contains(res.Error, "3 malformed turns") || !strings.Contains(res.Error, "not valid JSON") {
		t.Fatalf("run %s: %q", res.Status, res.Error)
	}
	if got := hs.srv.Requests(); got != 3 {
		t.Fatalf("%d requests, want 3", got)
	}
}

// A worker that never calls submit fails after its retries; the lead
// gets the failure as a report and still finishes.
func TestWorkerNeverSubmits(t *testing.T) {
	h := func(c *llmtest.Call) llmtest.Reply {
		if !isLead(c) {
			return llmtest.Reply{Text: "Here is my answer, in prose."}
		}
		if len(c.ToolResults()) == 0 {
			return llmtest.Reply{ToolCalls: []llmtest.ToolCall{toolCall("delegate", delegateArgs{Tasks: tasks(1, "chatty")})}}
		}
		r := reports(c)[0]
		return finish(string(r.Status) + ": " + r.Error)
	}
	hs := newHarness(t, h, Options{})
	res := hs.run(Spec{Task: "x", BudgetUSD: 1e9, MaxToolErrors: 3})
	if res.Status != StatusDone || !strings.HasPrefix(res.Answer, "failed: ") || !strings.Contains(res.Answer, "without a tool call") || !strings.Contains(res.Answer, "in prose") {
		t.Fatalf("run %s: answer %q", res.Status, res.Answer)
	}
	if got := hs.srv.Requests(); got != 2+3 {
		t.Fatalf("%d requests, want 5", got)
	}
}
