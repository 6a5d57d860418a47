package swarm

import (
	"context"
	"database/sql"
	"fmt"
	"testing"
	"time"

	"github.com/hive-swarm/hive/internal/journal/pgtest"
	"github.com/hive-swarm/hive/internal/llm/llmtest"
)

// postgresURL returns a URL for a fresh schema, where the journal's
// tables and DBOS's go, and the schema's name (see [pgtest.Schema]).
func postgresURL(t *testing.T) (url, schema string) { return pgtest.Schema(t) }

// A lead delegates 40 workers and finishes, on a journal and a DBOS system
// database in one fresh PostgreSQL schema.
func TestPostgresDelegateAndFinish(t *testing.T) {
	url, schema := postgresURL(t)
	const n = 40
	h := func(c *llmtest.Call) llmtest.Reply {
		if !isLead(c) {
			return llmtest.Reply{Latency: 5 * time.Millisecond, ToolCalls: []llmtest.ToolCall{toolCall("submit", submitArgs{Report: "report of " + taskName(c)})}}
		}
		if len(c.ToolResults()) == 0 {
			return llmtest.Reply{ToolCalls: []llmtest.ToolCall{toolCall("delegate", delegateArgs{Tasks: tasks(n, "t")})}}
		}
		return llmtest.Reply{ToolCalls: []llmtest.ToolCall{toolCall("finish", finishArgs{Answer: fmt.Sprintf("%d reports", len(reports(c)))})}}
	}
	srv := llmtest.NewOpenAI(h)
	t.Cleanup(srv.Close)
	hs := &harness{t: t, srv: srv, dbPath: url}
	hs.open(Options{})
	if d := hs.store.Dialect(); d != "postgres" {
		t.Fatalf("dialect %s", d)
	}
	res := hs.run(Spec{Task: "count to forty", BudgetUSD: 1e9})
	if res.Status != StatusDone || res.Answer != fmt.Sprintf("%d reports", n) {
		t.Fatalf("run ended %s: %q %s", res.Status, res.Answer, res.Error)
	}
	if got := srv.Requests(); got != n+2 {
		t.Fatalf("server saw %d requests, want %d", got, n+2)
	}
	nodes := hs.nodes(res.RunID)
	if len(nodes) != n+1 {
		t.Fatalf("%d nodes, want %d", len(nodes), n+1)
	}
	var sum int64
	for _, nd := range nodes {
		if nd.Status != StatusDone {
			t.Errorf("node %s is %s", nd.ID, nd.Status)
		}
		sum += int64(nd.Cost)
	}
	if sum != int64(res.Cost) || res.Cost <= 0 {
		t.Fatalf("node costs sum to %d, run cost %d", sum, res.Cost)
	}
	// Read back through a second engine: the run is journaled as over.
	hs.close()
	hs.open(Options{})
	again, err := hs.engine.Wait(context.Background(), res.RunID)
	if err != nil || again.Status != res.Status || again.Answer != res.Answer || again.Cost != res.Cost {
		t.Fatalf("reopened: %+v, %v; want %+v", again, err, res)
	}
	// DBOS kept its workflow in the test's schema, not a shared one.
	db, err := sql.Open("pgx", url)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var status string
	if err := db.QueryRow(`SELECT status FROM `+schema+`.workflow_status WHERE workflow_uuid = $1`, res.RunID).Scan(&status); err != nil {
		t.Fatalf("the run's workflow in schema %s: %v", schema, err)
	}
	if status != "SUCCESS" {
		t.Fatalf("workflow status %s", status)
	}
}

// The crash test on PostgreSQL: a child process killed three times
// resumes to the answer of an uninterrupted run, with no finished call
// sent twice.
func TestPostgresCrashResume(t *testing.T) {
	if testing.Short() {
		t.Skip("crash test runs a child process through 3 kills")
	}
	postgresURL(t) // skip early when there is no server
	testCrashResume(t, func(t *testing.T, _ string) string {
		url, _ := postgresURL(t)
		return url
	}, 3, crashWorkers/5)
}
