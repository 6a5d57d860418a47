package swarm

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/hive-swarm/hive/internal/journal"
	"github.com/hive-swarm/hive/internal/llm/llmtest"
)

func TestTwoEnginesSQLite(t *testing.T) {
	testTwoEngines(t, filepath.Join(t.TempDir(), "hive.db"))
}

func TestTwoEnginesPostgres(t *testing.T) {
	url, _ := postgresURL(t)
	testTwoEngines(t, url)
}

// Two engines share one journal, as hive serve and a hive run in another
// terminal do. Engine B starts while A's run is in flight: B must neither
// recover nor execute it, and B's Resume of it says where it runs; A's run
// ends with its answer, having made exactly the calls A alone makes.
func testTwoEngines(t *testing.T, url string) {
	const workerLatency = 3 * time.Second
	var leads, workers atomic.Int64
	h := func(c *llmtest.Call) llmtest.Reply {
		if !isLead(c) {
			workers.Add(1)
			rep := submit("report " + taskName(c))
			rep.Latency = workerLatency
			return rep
		}
		leads.Add(1)
		if turns(c) == 0 {
			return llmtest.Reply{ToolCalls: []llmtest.ToolCall{toolCall("delegate", delegateArgs{Tasks: tasks(2, "job")})}}
		}
		return finish(fmt.Sprintf("%d reports", len(reports(c))))
	}
	srv := llmtest.NewOpenAI(h)
	t.Cleanup(srv.Close)
	a := &harness{t: t, srv: srv, dbPath: url}
	a.open(Options{})

	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	id, err := a.engine.Start(ctx, Spec{Task: "two engines", Lead: "lead", Tiers: []string{"cheap"}})
	if err != nil {
		t.Fatal(err)
	}
	for workers.Load() < 2 {
		if ctx.Err() != nil {
			t.Fatal("the workers never started")
		}
		time.Sleep(10 * time.Millisecond)
	}

	// Engine B, on its own store over the same database.
	started := time.Now()
	b := &harness{t: t, srv: srv, dbPath: url}
	b.open(Options{})
	if rec := b.engine.Recovered(); len(rec) != 0 {
		t.Errorf("engine B recovered %v, which engine A is running", rec)
	}
	_, err = b.engine.Resume(ctx, id)
	want := fmt.Sprintf("run %s is running in another Hive process (pid %d on ", id, os.Getpid())
	if err == nil || !strings.HasPrefix(err.Error(), want) || !strings.HasSuffix(err.Error(), "); cancel it there or wait") {
		t.Fatalf("B.Resume of A's run: %v; want %q…", err, want)
	}
	t.Logf("B.Resume: %v", err)

	res, err := a.engine.Wait(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	if res.Status != StatusDone || res.Answer != "2 reports" {
		t.Fatalf("A's run ended %s %q (%s), want done %q", res.Status, res.Answer, res.Error, "2 reports")
	}
	// B's queue runner polls every second: it had time to claim the run.
	if since := time.Since(started); since < 2*time.Second {
		t.Fatalf("A's run ended %v after B started: too soon to tell", since)
	}
	time.Sleep(500 * time.Millisecond)
	if l, w := leads.Load(), workers.Load(); l != 2 || w != 2 {
		t.Fatalf("the model served %d lead and %d worker calls, want the 2 and 2 of one execution", l, w)
	}
}

// A process that holds its executor id live keeps it: a second engine
// given the same id through DBOS__VMID refuses to start rather than take
// over the first one's runs.
func TestExecutorIDHeld(t *testing.T) {
	t.Setenv("DBOS__VMID", "hive-shared")
	hs := newHarness(t, func(c *llmtest.Call) llmtest.Reply { return finish("x") }, Options{})
	_, err := New(context.Background(), hs.store, hs.reg, testLogger(t), Options{})
	if err == nil || !strings.Contains(err.Error(), "executor id hive-shared is held by a live Hive process") {
		t.Fatalf("second engine with one DBOS__VMID: %v", err)
	}
	ex, err := hs.store.Executor(context.Background(), "hive-shared")
	if err != nil || ex.PID != os.Getpid() {
		t.Fatalf("the first engine's record: %+v, %v", ex, err)
	}
	// Closed, the first engine leaves no record behind.
	hs.close()
	store, err := journal.Open(context.Background(), hs.dbPath, testLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	if all, err := store.Executors(context.Background()); err != nil || len(all) != 0 {
		t.Fatalf("records after Close: %+v, %v", all, err)
	}
}

// A journal written before executors had ids of their own: the run of a
// killed process sits pending under the shared id "hive", with no
// liveness record. The next process recovers it at once.
func TestLegacyExecutorRecovered(t *testing.T) {
	if testing.Short() {
		t.Skip("runs child processes")
	}
	cs := newCrashServer()
	defer cs.server.Close()
	db := filepath.Join(t.TempDir(), "hive.db")
	url := cs.server.URL + "/v1"

	child := func(run string, env ...string) *exec.Cmd {
		cmd := exec.Command(os.Args[0], "-test.run=^$")
		cmd.Env = append(append(os.Environ(), crashChildEnv+"="+db, crashURLEnv+"="+url, crashRunEnv+"="+run), env...)
		cmd.Stderr = os.Stderr
		return cmd
	}
	first := child("", "DBOS__VMID="+legacyExecutorID)
	out, err := first.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := first.Start(); err != nil {
		t.Fatal(err)
	}
	var line [64]byte
	n, _ := out.Read(line[:])
	id, ok := strings.CutPrefix(strings.TrimSpace(string(line[:n])), "RUN ")
	if !ok {
		t.Fatalf("child said %q", line[:n])
	}
	for cs.served() < 20 {
		time.Sleep(5 * time.Millisecond)
	}
	first.Process.Signal(syscall.SIGKILL)
	first.Wait()

	// Make the journal what an older Hive leaves: no liveness records.
	ctx := context.Background()
	store, err := journal.Open(ctx, db, testLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	all, err := store.Executors(ctx)
	if err != nil || len(all) != 1 || all[0].ID != legacyExecutorID {
		t.Fatalf("records of the killed child: %+v, %v", all, err)
	}
	if err := store.ForgetExecutor(ctx, all[0]); err != nil {
		t.Fatal(err)
	}
	store.Close()

	start := time.Now()
	second := child(id)
	res, err := second.Output()
	if err != nil {
		t.Fatalf("resume: %v", err)
	}
	if !strings.Contains(string(res), fmt.Sprintf("ANSWER %d reports", crashWorkers)) {
		t.Fatalf("resumed child said %q", res)
	}
	t.Logf("the legacy executor's run was recovered and finished in %v", time.Since(start).Round(time.Millisecond))
}
