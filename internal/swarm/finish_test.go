package swarm

import (
	"context"
	"strings"
	"testing"

	"github.com/hive-swarm/hive/internal/llm/llmtest"
	"github.com/hive-swarm/hive/internal/verify"
)

// TestFinishLeavesOutUnsure: finish merges by default only the patches
// whose check passed; one whose check was unsure (its task done, as its
// policy allows) is left out and named in the answer, and merged only
// when finish names it.
func TestFinishLeavesOutUnsure(t *testing.T) {
	for _, c := range []struct {
		name    string
		patches []string
		want    []string // in the run's patch
		notWant []string
		answer  []string // in the answer
	}{
		{"default", nil, []string{"+A"}, []string{"+B"}, []string{"left out", "2/patch (check unsure)"}},
		{"named", []string{"1/patch", "2/patch"}, []string{"+A", "+B"}, nil, nil},
	} {
		t.Run(c.name, func(t *testing.T) {
			dir := workspaceDir(t, map[string]string{"a.txt": "a\n", "b.txt": "b\n"})
			workers := map[string]*steps{
				"passes": {calls: []llmtest.ToolCall{toolCall("write_file", map[string]any{"path": "a.txt", "content": "A\n"}), toolCall("submit", map[string]any{"report": "A"})}},
				"unsure": {calls: []llmtest.ToolCall{toolCall("write_file", map[string]any{"path": "b.txt", "content": "B\n"}), toolCall("submit", map[string]any{"report": "B"})}},
			}
			h := func(call *llmtest.Call) llmtest.Reply {
				if isLead(call) {
					if turns(call) == 0 {
						return llmtest.Reply{ToolCalls: []llmtest.ToolCall{toolCall("delegate", delegateArgs{Tasks: []TaskSpec{
							{Name: "passes", Instructions: "Change a.", Verify: &verify.Spec{Kind: verify.KindCommand, Check: "ok"}},
							{Name: "unsure", Instructions: "Change b.", Verify: &verify.Spec{Kind: verify.KindCommand, Check: "missing", OnUnsure: verify.OnUnsureAccept}},
						}})}}
					}
					return llmtest.Reply{ToolCalls: []llmtest.ToolCall{toolCall("finish", finishArgs{Answer: "changed", Patches: c.patches})}}
				}
				return workers[taskName(call)].reply(call)
			}
			runner := SandboxRunner{Sandbox: testSandbox(t)}
			hs := newHarness(t, h, Options{CodeRunner: runner, TreeChecker: runner})
			res := hs.run(Spec{Task: "change", BudgetUSD: 1e9, Workspace: dir, Checks: map[string]verify.CommandCheck{
				"ok":      {Name: "ok", Argv: []string{"true"}},
				"missing": {Name: "missing", Argv: []string{"/nonexistent/check"}},
			}})
			if res.Status != StatusDone {
				t.Fatalf("run %s: %q %q", res.Status, res.Answer, res.Error)
			}
			for _, n := range hs.nodes(res.RunID) {
				if n.ID == "2" && (n.Status != StatusDone || n.Verdict == nil || n.Verdict.Outcome != verify.Unsure) {
					t.Fatalf("node 2: %s, verdict %+v; want done and unsure", n.Status, n.Verdict)
				}
			}
			_, _, patch, err := hs.store.Artifact(context.Background(), res.RunID, RunPatch)
			if err != nil {
				t.Fatal(err)
			}
			for _, s := range c.want {
				if !strings.Contains(string(patch), s) {
					t.Errorf("the run's patch lacks %q:\n%s", s, patch)
				}
			}
			for _, s := range c.notWant {
				if strings.Contains(string(patch), s) {
					t.Errorf("the run's patch has %q:\n%s", s, patch)
				}
			}
			for _, s := range c.answer {
				if !strings.Contains(res.Answer, s) {
					t.Errorf("the answer lacks %q: %q", s, res.Answer)
				}
			}
			if c.answer == nil && strings.Contains(res.Answer, "left out") {
				t.Errorf("the answer says something was left out: %q", res.Answer)
			}
		})
	}
}
