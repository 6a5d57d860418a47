package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hive-swarm/hive/internal/journal/pgtest"
	"github.com/hive-swarm/hive/internal/price"
	"github.com/hive-swarm/hive/internal/swarm"
)

// postgresURL returns a URL for a fresh schema (see [pgtest.Schema]).
func postgresURL(t *testing.T) string {
	u, _ := pgtest.Schema(t)
	return u
}

// hive run, runs and show on a PostgreSQL journal given with --db.
func TestRunOnPostgres(t *testing.T) {
	url := postgresURL(t)
	w := newWorld(t)
	code, out, errOut := w.hive("run", "--db", url, "count to three")
	if code != 0 || out != "three reports\n" {
		t.Fatalf("run: exit %d, stdout %q: %s", code, out, errOut)
	}
	if _, err := os.Stat(filepath.Join(w.dir, "runs", "hive.db")); err == nil {
		t.Fatal("run wrote the SQLite journal of defaults.db, not the one --db names")
	}

	code, out, errOut = w.hive("runs", "--json", "--db", url)
	if code != 0 {
		t.Fatalf("runs: exit %d: %s", code, errOut)
	}
	var runs []swarm.RunView
	if err := json.Unmarshal([]byte(out), &runs); err != nil || len(runs) != 1 {
		t.Fatalf("runs --json: %v\n%s", err, out)
	}
	r := runs[0]
	if r.Status != swarm.StatusDone || r.Task != "count to three" || r.Answer != "three reports" || r.CostNanos <= 0 || r.CostUSD <= 0 {
		t.Fatalf("runs --json: %+v", r)
	}

	code, out, errOut = w.hive("show", "--json", "--db", url, r.ID[:8])
	if code != 0 {
		t.Fatalf("show --json: exit %d: %s", code, errOut)
	}
	var show struct {
		Run    swarm.RunView `json:"run"`
		Nodes  []swarm.Node  `json:"nodes"`
		Totals totalsJSON    `json:"totals"`
	}
	if err := json.Unmarshal([]byte(out), &show); err != nil {
		t.Fatal(err)
	}
	var sum int64
	for _, n := range show.Nodes {
		if n.Status != swarm.StatusDone {
			t.Errorf("node %s is %s", n.ID, n.Status)
		}
		sum += int64(n.Cost)
	}
	if show.Run.ID != r.ID || len(show.Nodes) != 4 || sum != r.CostNanos || show.Totals.CostNanos != r.CostNanos {
		t.Fatalf("show --json: run %s, %d nodes costing %d, totals %d; want run %s, 4 nodes costing %d", show.Run.ID, len(show.Nodes), sum, show.Totals.CostNanos, r.ID, r.CostNanos)
	}

	code, out, errOut = w.hive("show", "--db", url, r.ID)
	if code != 0 || !strings.Contains(out, "lead done") || !strings.Contains(out, price.Amount(r.CostNanos).String()) || !strings.Contains(out, "answer:\nthree reports") {
		t.Fatalf("show: exit %d: %s\n%s", code, errOut, out)
	}
}

// A run on PostgreSQL whose process was killed is resumed by hive resume
// with its answer; another, killed too, is cancelled by hive cancel.
func TestResumeAndCancelOnPostgres(t *testing.T) {
	w := newWorldDB(t, postgresURL(t))
	w.slow.Store(true)
	cmd, _, _ := w.process("run", "SLOW count to three")
	id := w.waitRun()
	cmd.Process.Kill()
	cmd.Wait()
	w.slow.Store(false)
	code, stdout, errOut := w.hive("resume", id)
	if code != 0 || stdout != "three reports\n" {
		t.Fatalf("resume: exit %d, stdout %q:\n%s", code, stdout, errOut)
	}

	w.slow.Store(true)
	cmd, _, _ = w.process("run", "SLOW count to four")
	var other string
	deadline := time.Now().Add(20 * time.Second)
	for other == "" && time.Now().Before(deadline) {
		_, out, _ := w.hive("runs", "--json")
		var runs []swarm.RunView
		json.Unmarshal([]byte(out), &runs)
		for _, r := range runs {
			if r.ID != id {
				other = r.ID
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	if other == "" {
		t.Fatal("the second run did not start")
	}
	cmd.Process.Kill()
	cmd.Wait()
	if code, out, errOut := w.hive("cancel", other); code != 0 || !strings.Contains(out, "cancelled run "+other) {
		t.Fatalf("cancel: exit %d, %q %q", code, out, errOut)
	}
	_, out, _ := w.hive("show", "--json", other)
	var show showJSON
	if err := json.Unmarshal([]byte(out), &show); err != nil || show.Run.Status != "cancelled" {
		t.Fatalf("show after cancel: %v %s", err, out)
	}
}
