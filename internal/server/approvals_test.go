package server

import (
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/hive-swarm/hive/internal/screen"
	"github.com/hive-swarm/hive/internal/swarm"
)

// A run whose task the policy holds waits until an API client approves
// it: GET lists the request, POST decides it once (409 after), a wrong id
// is 404, and every call needs the token.
func TestApprovalsAPI(t *testing.T) {
	scr, err := screen.New(screen.Config{Rules: []screen.RuleConfig{{Name: "prod", Pattern: "(?i)production", On: []string{"task"}, Action: "hold"}}})
	if err != nil {
		t.Fatal(err)
	}
	sc := &script{n: 2}
	e := newTestEnvOpts(t, sc.handle, swarm.Options{Screen: scr})
	id := e.startRun("count the production hosts")
	var list struct{ Approvals []swarm.ApprovalView }
	deadline := time.Now().Add(20 * time.Second)
	for len(list.Approvals) == 0 && time.Now().Before(deadline) {
		if resp := e.do("GET", "/v1/runs/"+id+"/approvals", testToken, nil, &list); resp.StatusCode != 200 {
			t.Fatalf("GET approvals: %d", resp.StatusCode)
		}
		time.Sleep(20 * time.Millisecond)
	}
	if len(list.Approvals) != 1 || list.Approvals[0].ID != "task" || list.Approvals[0].Status != "pending" || !strings.Contains(list.Approvals[0].What, "production hosts") {
		t.Fatalf("approvals: %+v", list.Approvals)
	}
	if e.llm.Requests() != 0 {
		t.Fatalf("%d model requests while the task waited", e.llm.Requests())
	}
	if resp := e.do("POST", "/v1/runs/"+id+"/approvals/task", "", map[string]any{"approve": true}, nil); resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("without the token: %d", resp.StatusCode)
	}
	var body errorJSON
	if resp := e.do("POST", "/v1/runs/"+id+"/approvals/task", testToken, map[string]any{"note": "no verdict"}, &body); resp.StatusCode != 400 {
		t.Fatalf("no decision: %d", resp.StatusCode)
	}
	if resp := e.do("POST", "/v1/runs/"+id+"/approvals/nothing", testToken, map[string]any{"approve": true}, &body); resp.StatusCode != 404 {
		t.Fatalf("an unknown approval: %d", resp.StatusCode)
	}
	var got swarm.ApprovalView
	if resp := e.do("POST", "/v1/runs/"+id+"/approvals/task", testToken, map[string]any{"approve": true, "note": "read-only", "by": "ada"}, &got); resp.StatusCode != 200 || got.Status != "approved" || got.By != "ada" {
		t.Fatalf("approve: %d %+v", resp.StatusCode, got)
	}
	if resp := e.do("POST", "/v1/runs/"+id+"/approvals/task", testToken, map[string]any{"approve": false}, &body); resp.StatusCode != 409 {
		t.Fatalf("a second decision: %d", resp.StatusCode)
	}
	if run := e.waitStatus(id, swarm.StatusDone); !strings.HasPrefix(run.Run.Answer, "2 reports") {
		t.Fatalf("the approved run's answer: %q", run.Run.Answer)
	}
}
