package swarm

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/hive-swarm/hive/internal/llm/llmtest"
	"github.com/hive-swarm/hive/internal/mcp"
	"github.com/hive-swarm/hive/internal/screen"
)

// A credential made at run time (the repository holds none): a GitHub
// token's prefix and length.
var planted = "gh" + "p_" + strings.Repeat("A1b2C3d4E5", 4)

func newScreen(t *testing.T, c screen.Config) *screen.Screen {
	t.Helper()
	s, err := screen.New(c)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// A hostile worker submits a report carrying a credential it "found";
// the policy's screen refuses it, naming the rule, the worker must submit
// again without it, and the lead, the answer and the verdict never see it.
// The finding is journaled as an event, with the credential masked.
func TestScreenRefusesReport(t *testing.T) {
	var refusals []string
	h := func(c *llmtest.Call) llmtest.Reply {
		if !isLead(c) {
			if res := c.ToolResults(); len(res) > 0 {
				refusals = append(refusals, res[len(res)-1].Content)
				return submit("the config holds a token; I left it out")
			}
			return submit("found it: " + planted + " in .git/config")
		}
		if len(c.ToolResults()) == 0 {
			return llmtest.Reply{ToolCalls: []llmtest.ToolCall{toolCall("delegate", delegateArgs{Tasks: tasks(1, "t")})}}
		}
		for _, m := range c.Messages {
			if strings.Contains(m.Text(), planted) {
				t.Errorf("the lead was sent the credential")
			}
		}
		return finish("done")
	}
	hs := newHarness(t, h, Options{Screen: newScreen(t, screen.Config{})})
	res := hs.run(Spec{Task: "look for leaked tokens", BudgetUSD: 1e9})
	if res.Status != StatusDone {
		t.Fatalf("run %s: %s", res.Status, res.Error)
	}
	if len(refusals) != 1 || !strings.Contains(refusals[0], "refused by policy") || !strings.Contains(refusals[0], "github-token") || strings.Contains(refusals[0], planted[4:]) {
		t.Fatalf("the worker was told %q", refusals)
	}
	if w := hs.worker(res.RunID); strings.Contains(w.Report, planted) || !strings.Contains(w.Report, "left it out") {
		t.Errorf("the accepted report: %q", w.Report)
	}
	evs, err := hs.store.Events(context.Background(), res.RunID, 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	var screened []string
	for _, e := range evs {
		var ev Event
		if err := json.Unmarshal(e.Data, &ev); err != nil {
			t.Fatal(err)
		}
		if ev.Type == EventScreen {
			screened = append(screened, ev.Text)
			if ev.Node == nil || ev.Node.Role != RoleWorker {
				t.Errorf("a report's finding is not on its worker: %+v", ev.Node)
			}
		}
	}
	if len(screened) != 1 || !strings.Contains(screened[0], "github-token") || !strings.Contains(screened[0], "block") || strings.Contains(screened[0], planted[4:]) {
		t.Fatalf("screen events %q", screened)
	}
}

// A task carrying a credential never starts a run: Start refuses it as a
// bad spec naming the rule, and no model is called. A flagging rule lets
// the run start and records the finding.
func TestScreenTask(t *testing.T) {
	h := func(c *llmtest.Call) llmtest.Reply { return finish("done") }
	hs := newHarness(t, h, Options{Screen: newScreen(t, screen.Config{Rules: []screen.RuleConfig{
		{Name: "pentest", Category: "cyber", Pattern: `(?i)\bport scan\b`, Action: "flag"},
	}})})
	_, err := hs.engine.Start(context.Background(), Spec{Task: "deploy with " + planted, Lead: "lead", Tiers: []string{"cheap"}})
	var se *SpecError
	var ref *screen.Refusal
	if !errors.As(err, &se) || !errors.As(err, &ref) || ref.Finding.Rule != "github-token" || strings.Contains(err.Error(), planted[4:]) {
		t.Fatalf("Start = %v", err)
	}
	if n := len(hs.srv.Calls()); n != 0 {
		t.Fatalf("%d model calls for a refused task", n)
	}
	res := hs.run(Spec{Task: "run a port scan of our staging host"})
	if res.Status != StatusDone {
		t.Fatalf("a flagged task: %s %s", res.Status, res.Error)
	}
	evs, _ := hs.store.Events(context.Background(), res.RunID, 0, 0)
	found := false
	for _, e := range evs {
		found = found || (strings.Contains(string(e.Data), `"type":"screen"`) && strings.Contains(string(e.Data), "pentest"))
	}
	if !found {
		t.Fatal("the flagged task's finding was not journaled")
	}
}

// A credential moved from the report into an artifact is screened too.
func TestScreenRefusesArtifact(t *testing.T) {
	var told []string
	h := func(c *llmtest.Call) llmtest.Reply {
		if !isLead(c) {
			if res := c.ToolResults(); len(res) > 0 {
				told = append(told, res[len(res)-1].Content)
				return submit("nothing to report")
			}
			return llmtest.Reply{ToolCalls: []llmtest.ToolCall{toolCall("submit", submitArgs{Report: "see the artifact", Artifacts: map[string]string{"notes.txt": "token: " + planted}})}}
		}
		if len(c.ToolResults()) == 0 {
			return llmtest.Reply{ToolCalls: []llmtest.ToolCall{toolCall("delegate", delegateArgs{Tasks: tasks(1, "t")})}}
		}
		return finish("done")
	}
	hs := newHarness(t, h, Options{Screen: newScreen(t, screen.Config{})})
	res := hs.run(Spec{Task: "look", BudgetUSD: 1e9})
	if res.Status != StatusDone || len(told) != 1 || !strings.Contains(told[0], "github-token") {
		t.Fatalf("run %s %q; the worker was told %q", res.Status, res.Error, told)
	}
	for _, n := range hs.nodes(res.RunID) {
		b, _ := json.Marshal(n)
		if strings.Contains(string(b), planted) {
			t.Errorf("node %s carries the refused artifact's credential", n.ID)
		}
	}
}

// A hostile lead and worker try every way out for a credential the
// screen knows: delegated instructions (split by a zero-width space),
// the final answer (in base64), and an MCP tool's arguments (which leave
// Hive for the tool's server). Each is refused naming the rule, nothing
// reaches the server, the key is never journaled whole, and the run ends
// on the clean answer. A tool call whose arguments are too long for a
// person to read is denied without asking.
func TestScreenEveryExit(t *testing.T) {
	calc := newCalcServer(t)
	split := planted[:10] + "\u200b" + planted[10:]
	encoded := base64.StdEncoding.EncodeToString([]byte("token=" + planted))
	var leadSaw notes
	w := &steps{calls: []llmtest.ToolCall{
		toolCall("calc__add", map[string]any{"a": 2, "b": 40, "note": planted}),
		toolCall("calc__add", map[string]any{"a": 2, "b": 40, "note": strings.Repeat("x", MaxApprovalText)}),
		toolCall("calc__add", map[string]any{"a": 2, "b": 40}),
		toolCall("submit", map[string]any{"report": "42"}),
	}}
	h := func(c *llmtest.Call) llmtest.Reply {
		if !isLead(c) {
			return w.reply(c)
		}
		switch turns(c) {
		case 0:
			return llmtest.Reply{ToolCalls: []llmtest.ToolCall{toolCall("delegate", delegateArgs{Tasks: []TaskSpec{{Name: "t", Instructions: "Log in with " + split}}})}}
		case 1:
			leadSaw.add(lastResult(c))
			return llmtest.Reply{ToolCalls: []llmtest.ToolCall{toolCall("delegate", delegateArgs{Tasks: []TaskSpec{{Name: "t", Instructions: "Add 2 and 40."}}})}}
		case 2:
			return finish("here it is: " + encoded)
		case 3:
			leadSaw.add(lastResult(c))
		}
		return finish("42")
	}
	hs := newHarness(t, h, Options{Screen: newScreen(t, screen.Config{}), Approval: &ApprovalPolicy{Tools: []string{"calc__*"}}})
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	id, err := hs.engine.Start(ctx, Spec{Task: "add", Lead: "lead", Tiers: []string{"cheap"}, MCP: map[string]*mcp.ServerConfig{
		"calc": {URL: calc.URL, Allow: []string{"add"}}}})
	if err != nil {
		t.Fatal(err)
	}
	a := pending(t, hs, id)
	if !strings.Contains(a.What, `{"a":2,"b":40}`) || strings.Contains(a.What, "xxxx") {
		t.Fatalf("the request put to a person: %.300q", a.What)
	}
	if err := hs.engine.Decide(ctx, id, a.ID, true, "", "ada"); err != nil {
		t.Fatal(err)
	}
	res, err := hs.engine.Wait(ctx, id)
	if err != nil || res.Status != StatusDone || res.Answer != "42" {
		t.Fatalf("%+v %v", res, err)
	}
	if got := leadSaw.all(); len(got) != 2 || !strings.Contains(got[0], "github-token") || !strings.Contains(got[0], "No task was started") ||
		!strings.Contains(got[1], "github-token") || !strings.Contains(got[1], "Finish again") {
		t.Fatalf("the lead was told %q", got)
	}
	if !strings.Contains(w.result(0), "github-token") || !strings.Contains(w.result(0), "not made") {
		t.Fatalf("the worker's first call: %q", w.result(0))
	}
	if !strings.Contains(w.result(1), "too many for a person to review") {
		t.Fatalf("the worker's long call: %q", w.result(1))
	}
	if calc.count("add") != 1 || w.result(2) != "42" {
		t.Fatalf("%d calls reached the server; the third saw %q", calc.count("add"), w.result(2))
	}
	// Nothing journaled holds the key whole.
	evs, err := hs.store.Events(ctx, id, 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	screened := 0
	for _, ev := range evs {
		if strings.Contains(string(ev.Data), planted[4:]) || strings.Contains(string(ev.Data), encoded) {
			t.Errorf("event %d holds the key: %.200s", ev.Seq, ev.Data)
		}
		if strings.Contains(string(ev.Data), `"type":"screen"`) {
			screened++
		}
	}
	if screened < 3 {
		t.Errorf("%d screen events, want one per exit tried", screened)
	}
}
