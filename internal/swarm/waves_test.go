package swarm

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/hive-swarm/hive/internal/llm"
	"github.com/hive-swarm/hive/internal/llm/llmtest"
)

// turns counts the assistant messages of a call: the lead's turn number.
func turns(c *llmtest.Call) int {
	n := 0
	for _, m := range c.Messages {
		if m.Role == llm.RoleAssistant {
			n++
		}
	}
	return n
}

func lastResult(c *llmtest.Call) string {
	rs := c.ToolResults()
	if len(rs) == 0 {
		return ""
	}
	return rs[len(rs)-1].Content
}

// A lead delegates 200 workers in two waves (the second without waiting),
// awaits all but a straggler, cancels it, reads an artifact that a long
// report became, and finishes.
func TestTwoWavesArtifactCancel(t *testing.T) {
	long := strings.Repeat("all work and no play. ", 1000) // 22 KB > the 8 KB cap
	var started []string
	h := func(c *llmtest.Call) llmtest.Reply {
		if !isLead(c) {
			name := taskName(c)
			switch name {
			case "w1-0":
				return llmtest.Reply{ToolCalls: []llmtest.ToolCall{toolCall("submit", submitArgs{Report: long})}}
			case "w2-99":
				return llmtest.Reply{Latency: 30 * time.Second, ToolCalls: []llmtest.ToolCall{toolCall("submit", submitArgs{Report: "late"})}}
			}
			return llmtest.Reply{Latency: 5 * time.Millisecond, ToolCalls: []llmtest.ToolCall{toolCall("submit", submitArgs{Report: "ok " + name})}}
		}
		no := false
		switch turns(c) {
		case 0:
			return llmtest.Reply{ToolCalls: []llmtest.ToolCall{toolCall("delegate", delegateArgs{Tasks: tasks(100, "w1")})}}
		case 1:
			if n := len(reports(c)); n != 100 {
				return llmtest.Reply{ToolCalls: []llmtest.ToolCall{toolCall("finish", finishArgs{Answer: fmt.Sprintf("wave 1 had %d reports", n)})}}
			}
			return llmtest.Reply{ToolCalls: []llmtest.ToolCall{toolCall("delegate", delegateArgs{Tasks: tasks(100, "w2"), Wait: &no})}}
		case 2:
			var s struct{ Started []string }
			json.Unmarshal([]byte(lastResult(c)), &s)
			started = s.Started
			if len(started) != 100 {
				return llmtest.Reply{ToolCalls: []llmtest.ToolCall{toolCall("finish", finishArgs{Answer: "bad start: " + lastResult(c)})}}
			}
			return llmtest.Reply{ToolCalls: []llmtest.ToolCall{toolCall("await", awaitArgs{IDs: started[:99], Mode: "all"})}}
		case 3:
			if n := len(reports(c)); n != 99 {
				return llmtest.Reply{ToolCalls: []llmtest.ToolCall{toolCall("finish", finishArgs{Answer: fmt.Sprintf("awaited %d", n)})}}
			}
			return llmtest.Reply{ToolCalls: []llmtest.ToolCall{toolCall("cancel", cancelArgs{IDs: started[99:], Reason: "too slow"})}}
		case 4:
			return llmtest.Reply{ToolCalls: []llmtest.ToolCall{toolCall("read_artifact", readArtifactArgs{ID: "1/report", Offset: 8000, Limit: 100})}}
		}
		return llmtest.Reply{ToolCalls: []llmtest.ToolCall{toolCall("finish", finishArgs{Answer: "cancel said " + "|" + lastResult(c)[:40]})}}
	}
	hs := newHarness(t, h, Options{})
	start := time.Now()
	res := hs.run(Spec{Task: "two waves", BudgetUSD: 1e9})
	if res.Status != StatusDone {
		t.Fatalf("run ended %s: %s", res.Status, res.Error)
	}
	if time.Since(start) > 25*time.Second {
		t.Errorf("the run waited for the straggler: %v", time.Since(start))
	}
	if !strings.HasPrefix(res.Answer, "cancel said |[bytes 8000-8100 of 22000]") {
		t.Fatalf("answer = %q", res.Answer)
	}
	if got, want := hs.srv.Requests(), 6+200; got != want {
		t.Errorf("server saw %d requests, want %d", got, want)
	}
	nodes := hs.nodes(res.RunID)
	if len(nodes) != 201 {
		t.Fatalf("%d nodes, want 201", len(nodes))
	}
	byStatus := map[Status]int{}
	for _, n := range nodes {
		byStatus[n.Status]++
		if n.ID == "200" && n.Status != StatusCancelled {
			t.Errorf("straggler is %s, want cancelled", n.Status)
		}
	}
	if byStatus[StatusDone] != 200 || byStatus[StatusCancelled] != 1 {
		t.Errorf("statuses: %v", byStatus)
	}
	// The lead saw the capped report with a pointer to the artifact.
	for _, c := range hs.srv.Calls() {
		if isLead(c) && turns(c) == 1 {
			r := reports(c)[0]
			if r.ReportArtifact != "1/report" || len(r.Report) > 8200 || !strings.Contains(r.Report, "read_artifact") {
				t.Errorf("capped report: artifact %q, %d bytes", r.ReportArtifact, len(r.Report))
			}
		}
	}
}
