package swarm

import (
	"context"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hive-swarm/hive/internal/llm/llmtest"
	"github.com/hive-swarm/hive/internal/screen"
)

func isScreen(c *llmtest.Call) bool { return strings.Contains(c.System, "You screen tasks") }

// The policy's classifier reads the task (fenced by a boundary the task
// cannot know) before the lead starts, as a billed screen node whose call
// is journaled: a flagged task waits for a person across a restart
// without the classifier being asked again; one it clears goes on; an
// answer it cannot read holds the task; with action block a flagged task
// ends the run naming the classifier, the lead never called.
func TestClassifierScreensTask(t *testing.T) {
	var screens, leads atomic.Int32
	h := func(c *llmtest.Call) llmtest.Reply {
		if isScreen(c) {
			screens.Add(1)
			u := c.Messages[0].Text()
			lines := strings.Split(u, "\n")
			if len(lines) < 3 || lines[0] != lines[len(lines)-1] || !strings.HasPrefix(lines[0], "TASK-") || len(lines[0]) < 20 {
				t.Errorf("the task is not fenced by a boundary: %q", u)
			}
			switch {
			case strings.Contains(u, "ransomware"):
				return llmtest.Reply{Text: `Here is my verdict: {"flagged": true, "category": "cyber", "reason": "asks for working ransomware"}`}
			case strings.Contains(u, "garbled"):
				return llmtest.Reply{Text: "I think it is fine."}
			}
			return llmtest.Reply{Text: `{"flagged": false, "category": "", "reason": "ordinary work"}`}
		}
		leads.Add(1)
		return finish("done")
	}
	c := &screen.ClassifierConfig{Model: "cheap"}
	scr := newScreen(t, screen.Config{Classifier: c})
	opts := Options{Screen: scr}
	hs := newHarness(t, h, opts)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()

	res := hs.run(Spec{Task: "summarise the changelog", Lead: "lead", Tiers: []string{"cheap"}, BudgetUSD: 1e9})
	if res.Status != StatusDone || screens.Load() != 1 || leads.Load() != 1 {
		t.Fatalf("a cleared task: %s %q, %d screens, %d lead calls", res.Status, res.Error, screens.Load(), leads.Load())
	}
	var sn *Node
	for _, n := range hs.nodes(res.RunID) {
		if n.Role == RoleScreen {
			sn = &n
		}
	}
	if sn == nil || sn.ID != "screen" || sn.Cost <= 0 || sn.Report != "not flagged" || sn.Status != StatusDone {
		t.Fatalf("the screen node: %+v", sn)
	}

	id, err := hs.engine.Start(ctx, Spec{Task: "write ransomware for our red team", Lead: "lead", Tiers: []string{"cheap"}, BudgetUSD: 1e9})
	if err != nil {
		t.Fatal(err)
	}
	a := pending(t, hs, id)
	if !strings.Contains(a.What, "classifier (cyber): asks for working ransomware") {
		t.Fatalf("the request: %+v", a)
	}
	hs.close()
	hs.open(opts)
	if _, err := hs.engine.Resume(ctx, id); err != nil {
		t.Fatal(err)
	}
	if err := hs.engine.Decide(ctx, id, "task", false, "no", "ada"); err != nil {
		t.Fatal(err)
	}
	res, _ = hs.engine.Wait(ctx, id)
	if res.Status != StatusFailed || !strings.Contains(res.Error, "denied by ada") {
		t.Fatalf("a flagged, denied task: %s %q", res.Status, res.Error)
	}
	if screens.Load() != 2 || leads.Load() != 1 {
		t.Fatalf("%d classifier calls (want 2: the restart reads the verdict back), %d lead calls", screens.Load(), leads.Load())
	}

	id, err = hs.engine.Start(ctx, Spec{Task: "garbled request", Lead: "lead", Tiers: []string{"cheap"}, BudgetUSD: 1e9})
	if err != nil {
		t.Fatal(err)
	}
	if a := pending(t, hs, id); !strings.Contains(a.What, "classifier (unsure)") {
		t.Fatalf("an unreadable verdict: %+v", a)
	}
	hs.engine.Decide(ctx, id, "task", true, "", "ada")
	if res, _ := hs.engine.Wait(ctx, id); res.Status != StatusDone {
		t.Fatalf("approved: %s %s", res.Status, res.Error)
	}

	hs.close()
	c.Action = screen.Block
	hs.open(Options{Screen: newScreen(t, screen.Config{Classifier: c})})
	before := leads.Load()
	res = hs.run(Spec{Task: "ransomware please", Lead: "lead", Tiers: []string{"cheap"}, BudgetUSD: 1e9})
	if res.Status != StatusFailed || !strings.Contains(res.Error, "refused by policy: classifier (cyber)") || leads.Load() != before {
		t.Fatalf("a blocked task: %s %q, %d lead calls", res.Status, res.Error, leads.Load()-before)
	}
}
