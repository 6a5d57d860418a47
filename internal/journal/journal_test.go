package journal

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hive-swarm/hive/internal/journal/pgtest"
)

// TestSQLite runs the conformance suite on SQLite files in t.TempDir().
func TestSQLite(t *testing.T) {
	testStore(t, func(t testing.TB) string {
		return filepath.Join(t.TempDir(), "sub", "hive.db")
	})
}

// TestPostgres runs the conformance suite on PostgreSQL, each store in a
// schema of its own that is dropped afterwards. HIVE_TEST_POSTGRES names
// the server (default: the local one CI runs).
func TestPostgres(t *testing.T) {
	testStore(t, postgresURL)
}

// postgresURL returns a URL for a fresh schema (see [pgtest.Schema]).
func postgresURL(t testing.TB) string {
	u, _ := pgtest.Schema(t)
	return u
}

// tlog routes the store's logs to t.Log.
type tlog struct{ t testing.TB }

func (w tlog) Write(p []byte) (int, error) {
	w.t.Helper()
	w.t.Log(strings.TrimSpace(string(p)))
	return len(p), nil
}

func open(t testing.TB, url string) *Store {
	t.Helper()
	s, err := Open(context.Background(), url, slog.New(slog.NewTextHandler(tlog{t}, nil)))
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// openClosed opens url and closes the store when the test ends (if the
// test has not closed it itself).
func openClosed(t *testing.T, url string) *Store {
	s := open(t, url)
	t.Cleanup(func() {
		if err := s.Close(); err != nil && !errors.Is(err, ErrClosed) {
			t.Errorf("close: %v", err)
		}
	})
	return s
}

// testStore is the conformance suite every dialect passes. newURL returns
// the URL of a fresh, empty store each time it is called.
func testStore(t *testing.T, newURL func(t testing.TB) string) {
	ctx := context.Background()

	t.Run("Runs", func(t *testing.T) {
		s := openClosed(t, newURL(t))
		t0 := time.Unix(1700000000, 123456789)
		runs := []Run{
			{ID: "abcd1111", Task: "first", Status: "running", Spec: json.RawMessage(`{"lead":"x"}`), Created: t0},
			{ID: "abcd2222", Task: "second", Status: "running", Created: t0.Add(time.Second)},
			{ID: "ffff0000", Task: "third ünïcode", Status: "queued", Created: t0.Add(2 * time.Second)},
		}
		for _, r := range runs {
			if err := s.CreateRun(ctx, r); err != nil {
				t.Fatal(err)
			}
		}
		if err := s.CreateRun(ctx, Run{ID: "abcd1111", Task: "again"}); !errors.Is(err, ErrExists) {
			t.Errorf("duplicate CreateRun: got %v, want ErrExists", err)
		}
		got, err := s.Run(ctx, "abcd1111")
		if err != nil {
			t.Fatal(err)
		}
		if got.Task != "first" || got.Status != "running" || string(got.Spec) != `{"lead":"x"}` ||
			!got.Created.Equal(t0) || !got.Updated.Equal(t0) || got.Usage != nil {
			t.Errorf("Run = %+v", got)
		}

		upd := Run{ID: "abcd1111", Status: "done", Answer: "42", CostNanos: 1234, Usage: json.RawMessage(`{"in":1}`), Updated: t0}
		before := time.Now()
		if err := s.UpdateRun(ctx, upd); err != nil {
			t.Fatal(err)
		}
		if err := s.UpdateRun(ctx, Run{ID: "nope", Status: "done"}); !errors.Is(err, ErrNotFound) {
			t.Errorf("UpdateRun of missing run: got %v, want ErrNotFound", err)
		}
		got, err = s.Run(ctx, "abcd1111")
		if err != nil {
			t.Fatal(err)
		}
		if got.Status != "done" || got.Answer != "42" || got.CostNanos != 1234 || string(got.Usage) != `{"in":1}` ||
			got.Task != "first" || string(got.Spec) != `{"lead":"x"}` || got.Updated.Before(before) || !got.Created.Equal(t0) {
			t.Errorf("after UpdateRun: %+v", got)
		}

		for _, tc := range []struct {
			id, want string
			err      error
		}{
			{"ffff0000", "ffff0000", nil},
			{"ffff", "ffff0000", nil},
			{"abcd2", "abcd2222", nil},
			{"abcd", "", ErrAmbiguous},
			{"fff", "", ErrNotFound}, // too short for a prefix
			{"ABCD2", "", ErrNotFound},
			{"abcd%", "", ErrNotFound},
			{"zzzzzz", "", ErrNotFound},
		} {
			r, err := s.Run(ctx, tc.id)
			if !errors.Is(err, tc.err) || r.ID != tc.want {
				t.Errorf("Run(%q) = %q, %v; want %q, %v", tc.id, r.ID, err, tc.want, tc.err)
			}
		}

		all, err := s.Runs(ctx, 0)
		if err != nil {
			t.Fatal(err)
		}
		if ids := runIDs(all); ids != "ffff0000 abcd2222 abcd1111" {
			t.Errorf("Runs(0) = %s, want newest first", ids)
		}
		two, err := s.Runs(ctx, 2)
		if err != nil {
			t.Fatal(err)
		}
		if ids := runIDs(two); ids != "ffff0000 abcd2222" {
			t.Errorf("Runs(2) = %s", ids)
		}
	})

	t.Run("Events", func(t *testing.T) {
		s := openClosed(t, newURL(t))
		// Out of order, with a duplicate in the same batch and one in a later batch.
		for _, seq := range []int64{3, 1, 2, 5, 4} {
			s.AppendEvent("r1", seq, fmt.Appendf(nil, `{"n":%d}`, seq))
		}
		s.AppendEvent("r1", 2, []byte(`{"dup":true}`))
		s.AppendEvent("r2", 1, []byte(`{"other":1}`))
		if err := s.Flush(ctx); err != nil {
			t.Fatal(err)
		}
		s.AppendEvent("r1", 3, []byte(`{"dup":true}`))
		s.AppendEvent("r1", 6, []byte(`{"n":6}`))
		if err := s.Flush(ctx); err != nil {
			t.Fatal(err)
		}
		evs, err := s.Events(ctx, "r1", 0, 0)
		if err != nil {
			t.Fatal(err)
		}
		var b strings.Builder
		for _, e := range evs {
			fmt.Fprintf(&b, "%d=%s ", e.Seq, e.Data)
		}
		if want := `1={"n":1} 2={"n":2} 3={"n":3} 4={"n":4} 5={"n":5} 6={"n":6} `; b.String() != want {
			t.Errorf("Events = %s\nwant     %s", b.String(), want)
		}
		evs, err = s.Events(ctx, "r1", 4, 0)
		if err != nil {
			t.Fatal(err)
		}
		if len(evs) != 2 || evs[0].Seq != 5 || evs[1].Seq != 6 {
			t.Errorf("Events after 4 = %v", evs)
		}
		evs, err = s.Events(ctx, "r1", 1, 2)
		if err != nil {
			t.Fatal(err)
		}
		if len(evs) != 2 || evs[0].Seq != 2 || evs[1].Seq != 3 {
			t.Errorf("Events after 1, limit 2 = %v", evs)
		}
		for run, want := range map[string]int64{"r1": 6, "r2": 1, "none": 0} {
			if got, err := s.LastSeq(ctx, run); err != nil || got != want {
				t.Errorf("LastSeq(%s) = %d, %v; want %d", run, got, err, want)
			}
		}
	})

	t.Run("Nodes", func(t *testing.T) {
		s := openClosed(t, newURL(t))
		s.PutNode("r1", "a", []byte(`{"id":"a","v":1}`))
		s.PutNode("r1", "b", []byte(`{"id":"b","v":1}`))
		s.PutNode("r1", "a", []byte(`{"id":"a","v":2}`)) // same batch, most likely
		s.PutNode("r2", "a", []byte(`{"id":"r2a"}`))
		if err := s.Flush(ctx); err != nil {
			t.Fatal(err)
		}
		s.PutNode("r1", "c", []byte(`{"id":"c","v":1}`))
		s.PutNode("r1", "b", []byte(`{"id":"b","v":3}`)) // later batch
		s.PutNode("r1", "d", []byte(`{"id":"d","v":1}`))
		if err := s.Flush(ctx); err != nil {
			t.Fatal(err)
		}
		nodes, err := s.Nodes(ctx, "r1")
		if err != nil {
			t.Fatal(err)
		}
		got := string(bytes.Join(rawBytes(nodes), []byte(" ")))
		want := `{"id":"a","v":2} {"id":"b","v":3} {"id":"c","v":1} {"id":"d","v":1}`
		if got != want {
			t.Errorf("Nodes = %s\nwant    %s", got, want)
		}
		if nodes, err := s.Nodes(ctx, "missing"); err != nil || len(nodes) != 0 {
			t.Errorf("Nodes(missing) = %v, %v", nodes, err)
		}
	})

	t.Run("Artifacts", func(t *testing.T) {
		s := openClosed(t, newURL(t))
		bin := []byte{0, 1, 2, 0xff, 0xfe, 'x'} // not UTF-8
		if err := s.PutArtifact(ctx, "r1", "art1", "n1", "out.bin", bin); err != nil {
			t.Fatal(err)
		}
		if err := s.PutArtifact(ctx, "r1", "empty", "n2", "empty.txt", nil); err != nil {
			t.Fatal(err)
		}
		name, node, content, err := s.Artifact(ctx, "r1", "art1")
		if err != nil || name != "out.bin" || node != "n1" || !bytes.Equal(content, bin) {
			t.Errorf("Artifact = %q %q %v %v", name, node, content, err)
		}
		if err := s.PutArtifact(ctx, "r1", "art1", "n3", "v2.txt", []byte("v2")); err != nil {
			t.Fatal(err)
		}
		name, node, content, err = s.Artifact(ctx, "r1", "art1")
		if err != nil || name != "v2.txt" || node != "n3" || string(content) != "v2" {
			t.Errorf("Artifact after overwrite = %q %q %q %v", name, node, content, err)
		}
		if _, _, content, err := s.Artifact(ctx, "r1", "empty"); err != nil || content == nil || len(content) != 0 {
			t.Errorf("empty Artifact = %v, %v", content, err)
		}
		for _, k := range [][2]string{{"r1", "nope"}, {"r2", "art1"}} {
			if _, _, _, err := s.Artifact(ctx, k[0], k[1]); !errors.Is(err, ErrNotFound) {
				t.Errorf("Artifact(%s, %s): got %v, want ErrNotFound", k[0], k[1], err)
			}
		}
	})

	t.Run("StepsDurable", func(t *testing.T) {
		url := newURL(t)
		s := open(t, url)
		if _, ok, err := s.Step(ctx, "r1", "call/1"); ok || err != nil {
			t.Fatalf("Step before put: ok=%v err=%v", ok, err)
		}
		if err := s.PutStep(ctx, "r1", "call/1", []byte(`{"text":"hello"}`)); err != nil {
			t.Fatal(err)
		}
		if err := s.PutStep(ctx, "r1", "call/2", []byte(`{"text":"v1"}`)); err != nil {
			t.Fatal(err)
		}
		if err := s.PutStep(ctx, "r1", "call/2", []byte(`{"text":"v2"}`)); err != nil {
			t.Fatal(err)
		}
		// Visible at once, without Flush: PutStep returned after commit.
		if data, ok, err := s.Step(ctx, "r1", "call/1"); !ok || err != nil || string(data) != `{"text":"hello"}` {
			t.Fatalf("Step = %s, %v, %v", data, ok, err)
		}
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}
		if err := s.PutStep(ctx, "r1", "late", nil); !errors.Is(err, ErrClosed) {
			t.Errorf("PutStep after Close: got %v, want ErrClosed", err)
		}
		s.AppendEvent("r1", 1, nil) // dropped, must not panic
		if err := s.Close(); !errors.Is(err, ErrClosed) {
			t.Errorf("second Close: got %v, want ErrClosed", err)
		}

		s = openClosed(t, url)
		for key, want := range map[string]string{"call/1": `{"text":"hello"}`, "call/2": `{"text":"v2"}`} {
			if data, ok, err := s.Step(ctx, "r1", key); !ok || err != nil || string(data) != want {
				t.Errorf("Step(%s) after reopen = %s, %v, %v; want %s", key, data, ok, err, want)
			}
		}
		if _, ok, _ := s.Step(ctx, "r2", "call/1"); ok {
			t.Error("Step of another run found")
		}
	})

	t.Run("CloseFlushes", func(t *testing.T) {
		url := newURL(t)
		s := open(t, url)
		const n = 1000
		for i := range int64(n) {
			s.AppendEvent("r1", i+1, fmt.Appendf(nil, `{"i":%d}`, i+1))
			if i%100 == 0 {
				s.PutNode("r1", fmt.Sprint("n", i), []byte(`{}`))
			}
		}
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}
		if leaked := storeGoroutines(); leaked != "" {
			t.Errorf("goroutines left after Close:\n%s", leaked)
		}
		s = openClosed(t, url)
		evs, err := s.Events(ctx, "r1", 0, 0)
		if err != nil {
			t.Fatal(err)
		}
		if len(evs) != n || evs[n-1].Seq != n || string(evs[n-1].Data) != fmt.Sprintf(`{"i":%d}`, n) {
			t.Errorf("after Close and reopen: %d events, want %d", len(evs), n)
		}
		if nodes, err := s.Nodes(ctx, "r1"); err != nil || len(nodes) != n/100 {
			t.Errorf("after Close and reopen: %d nodes (%v), want %d", len(nodes), err, n/100)
		}
	})

	t.Run("GroupCommit", func(t *testing.T) {
		s := openClosed(t, newURL(t))
		const n = 2000
		before := s.commits.Load()
		for i := range int64(n) {
			s.AppendEvent("r1", i+1, []byte(`{"kind":"delta","text":"some streamed tokens"}`))
		}
		if err := s.Flush(ctx); err != nil {
			t.Fatal(err)
		}
		txs := s.commits.Load() - before
		t.Logf("%d events in %d transactions", n, txs)
		if txs > n/5 {
			t.Errorf("%d events took %d transactions; want batches", n, txs)
		}
		if last, err := s.LastSeq(ctx, "r1"); err != nil || last != n {
			t.Errorf("LastSeq = %d, %v", last, err)
		}
	})

	// Batches of every size are split into the writer's fixed multi-row
	// INSERTs without losing or repeating a row.
	t.Run("BatchSizes", func(t *testing.T) {
		s := openClosed(t, newURL(t))
		for _, n := range []int{1, 3, 4, 5, 63, 64, 65, 255, 256, 257, 341, 700} {
			run := fmt.Sprint("b", n)
			for i := range n {
				s.PutNode(run, fmt.Sprint("n", i), fmt.Appendf(nil, `{"i":%d}`, i))
				s.AppendEvent(run, int64(i+1), fmt.Appendf(nil, `{"e":%d}`, i))
				s.PutStepAsync(run, fmt.Sprint("k", i), fmt.Appendf(nil, `{"k":%d}`, i))
			}
			if err := s.Flush(ctx); err != nil {
				t.Fatal(err)
			}
			evs, err := s.Events(ctx, run, 0, 0)
			if err != nil {
				t.Fatal(err)
			}
			nodes, err := s.Nodes(ctx, run)
			if err != nil {
				t.Fatal(err)
			}
			if len(evs) != n || len(nodes) != n {
				t.Fatalf("%d rows: %d events, %d nodes", n, len(evs), len(nodes))
			}
			for i := range n {
				if want := fmt.Sprintf(`{"e":%d}`, i); evs[i].Seq != int64(i+1) || string(evs[i].Data) != want {
					t.Fatalf("%d rows: event %d = %d %s", n, i, evs[i].Seq, evs[i].Data)
				}
				if want := fmt.Sprintf(`{"i":%d}`, i); string(nodes[i]) != want {
					t.Fatalf("%d rows: node %d = %s", n, i, nodes[i])
				}
				data, ok, err := s.Step(ctx, run, fmt.Sprint("k", i))
				if want := fmt.Sprintf(`{"k":%d}`, i); err != nil || !ok || string(data) != want {
					t.Fatalf("%d rows: step %d = %s %v %v", n, i, data, ok, err)
				}
			}
		}
	})

	t.Run("ConcurrentWriters", func(t *testing.T) {
		s := openClosed(t, newURL(t))
		const workers, events = 100, 20
		var wg sync.WaitGroup
		errc := make(chan error, workers)
		for w := range workers {
			wg.Go(func() {
				run := fmt.Sprintf("run%03d", w)
				if err := s.CreateRun(ctx, Run{ID: run, Task: "t", Status: "running"}); err != nil {
					errc <- err
					return
				}
				for i := range int64(events) {
					s.AppendEvent(run, i+1, fmt.Appendf(nil, `{"w":%d,"i":%d}`, w, i+1))
					s.AppendEvent("shared", int64(w*events)+i+1, []byte(`{}`))
					if i%10 == 0 {
						s.PutNode(run, fmt.Sprint("node", i%20), fmt.Appendf(nil, `{"i":%d}`, i))
					}
				}
				if err := s.PutStep(ctx, run, "final", []byte(run)); err != nil {
					errc <- err
					return
				}
				if _, err := s.Events(ctx, run, 0, 10); err != nil { // reads while others write
					errc <- err
					return
				}
				if err := s.UpdateRun(ctx, Run{ID: run, Status: "done"}); err != nil {
					errc <- err
				}
			})
		}
		wg.Wait()
		close(errc)
		for err := range errc {
			t.Error(err)
		}
		if err := s.Flush(ctx); err != nil {
			t.Fatal(err)
		}
		for w := range workers {
			run := fmt.Sprintf("run%03d", w)
			evs, err := s.Events(ctx, run, 0, 0)
			if err != nil || len(evs) != events {
				t.Fatalf("%s: %d events, %v", run, len(evs), err)
			}
			for i, e := range evs {
				if e.Seq != int64(i+1) || string(e.Data) != fmt.Sprintf(`{"w":%d,"i":%d}`, w, i+1) {
					t.Fatalf("%s event %d = %d %s", run, i, e.Seq, e.Data)
				}
			}
			if data, ok, err := s.Step(ctx, run, "final"); !ok || err != nil || string(data) != run {
				t.Errorf("%s step = %s, %v, %v", run, data, ok, err)
			}
			if nodes, err := s.Nodes(ctx, run); err != nil || len(nodes) != 2 {
				t.Errorf("%s: %d nodes, %v; want 2", run, len(nodes), err)
			}
		}
		if last, err := s.LastSeq(ctx, "shared"); err != nil || last != workers*events {
			t.Errorf("shared LastSeq = %d, %v", last, err)
		}
		runs, err := s.Runs(ctx, 0)
		if err != nil || len(runs) != workers {
			t.Fatalf("Runs = %d, %v", len(runs), err)
		}
		for _, r := range runs {
			if r.Status != "done" {
				t.Errorf("run %s status %q", r.ID, r.Status)
			}
		}
	})

	t.Run("Audit", func(t *testing.T) { testAudit(t, newURL(t)) })
	t.Run("AuditEnd", func(t *testing.T) { testAuditEnd(t, newURL(t)) })
	t.Run("AuditAnchorFails", func(t *testing.T) { testAuditAnchorFails(t, newURL(t)) })
	t.Run("Approvals", func(t *testing.T) { testApprovals(t, newURL(t)) })
	t.Run("SpendCap", func(t *testing.T) { testSpendCap(t, newURL(t)) })
	t.Run("Readmit", func(t *testing.T) { testReadmit(t, newURL(t)) })
	t.Run("PrincipalCap", func(t *testing.T) { testPrincipalCap(t, newURL(t)) })

	t.Run("FailedWriteIsolated", func(t *testing.T) {
		s := openClosed(t, newURL(t))
		// A trigger that rejects one event makes its batch fail; every
		// other write of that batch must still commit.
		rejectEvent(t, s, 13)
		for i := range int64(20) {
			s.AppendEvent("r1", i+1, []byte(`{}`))
		}
		s.PutNode("r1", "n", []byte(`{}`))
		err := s.Flush(ctx)
		if err == nil || !strings.Contains(err.Error(), "rejected seq 13") {
			t.Errorf("Flush = %v, want the rejected event's error", err)
		}
		if err := s.Flush(ctx); err != nil {
			t.Errorf("second Flush = %v, want nil (error reported once)", err)
		}
		evs, err := s.Events(ctx, "r1", 0, 0)
		if err != nil {
			t.Fatal(err)
		}
		if len(evs) != 19 {
			t.Errorf("%d events committed, want 19", len(evs))
		}
		for _, e := range evs {
			if e.Seq == 13 {
				t.Error("rejected event committed")
			}
		}
		if nodes, err := s.Nodes(ctx, "r1"); err != nil || len(nodes) != 1 {
			t.Errorf("nodes = %d, %v", len(nodes), err)
		}
		if err := s.PutStep(ctx, "r1", "k", []byte("v")); err != nil {
			t.Errorf("PutStep after a failed batch: %v", err)
		}
	})
}

// rejectEvent installs a trigger that fails the insert of event seq.
func rejectEvent(t *testing.T, s *Store, seq int) {
	t.Helper()
	var stmts []string
	switch s.Dialect() {
	case DialectSQLite:
		stmts = []string{fmt.Sprintf(`CREATE TRIGGER reject BEFORE INSERT ON hive_events
			WHEN NEW.seq = %d BEGIN SELECT RAISE(ABORT, 'rejected seq %d'); END`, seq, seq)}
	case DialectPostgres:
		stmts = []string{
			fmt.Sprintf(`CREATE FUNCTION reject() RETURNS trigger LANGUAGE plpgsql AS $$
				BEGIN IF NEW.seq = %d THEN RAISE EXCEPTION 'rejected seq %d'; END IF; RETURN NEW; END $$`, seq, seq),
			`CREATE TRIGGER reject BEFORE INSERT ON hive_events FOR EACH ROW EXECUTE FUNCTION reject()`,
		}
	}
	for _, q := range stmts {
		if _, err := s.wdb.Exec(q); err != nil {
			t.Fatal(err)
		}
	}
}

// storeGoroutines returns the stacks of goroutines running Store code.
func storeGoroutines() string {
	var leaked string
	for range 50 {
		buf := make([]byte, 1<<20)
		buf = buf[:runtime.Stack(buf, true)]
		leaked = ""
		for _, g := range strings.Split(string(buf), "\n\n") {
			if strings.Contains(g, "journal.(*Store).writer") {
				leaked += g + "\n\n"
			}
		}
		if leaked == "" {
			return ""
		}
		time.Sleep(10 * time.Millisecond)
	}
	return leaked
}

func runIDs(runs []Run) string {
	ids := make([]string, len(runs))
	for i, r := range runs {
		ids[i] = r.ID
	}
	return strings.Join(ids, " ")
}

func rawBytes(rs []json.RawMessage) [][]byte {
	out := make([][]byte, len(rs))
	for i, r := range rs {
		out[i] = r
	}
	return out
}

func TestSQLiteFiles(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "runs", "x.db")
	s := openClosed(t, "sqlite://"+path)
	if s.Dialect() != DialectSQLite {
		t.Errorf("Dialect = %q", s.Dialect())
	}
	if want := "sqlite://" + path + "-dbos"; s.DBOSURL() != want {
		t.Errorf("DBOSURL = %q, want %q", s.DBOSURL(), want)
	}
	for _, p := range []string{path, path + "-dbos", path + "-wal"} {
		fi, err := os.Stat(p)
		if err != nil {
			t.Errorf("stat: %v", err)
			continue
		}
		if mode := fi.Mode().Perm(); mode != 0o600 {
			t.Errorf("%s has mode %o, want 600", filepath.Base(p), mode)
		}
	}
	// The same file opened through a relative path.
	t.Chdir(dir)
	s2 := openClosed(t, "sqlite:runs/x.db")
	if s2.DBOSURL() != s.DBOSURL() {
		t.Errorf("relative DBOSURL = %q, want %q", s2.DBOSURL(), s.DBOSURL())
	}
}

func TestSQLitePath(t *testing.T) {
	wd, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		url, want string // want "" means an error
	}{
		{"hive.db", filepath.Join(wd, "hive.db")},
		{"./runs/x.db", filepath.Join(wd, "runs", "x.db")},
		{"/abs/path.db", "/abs/path.db"},
		{"sqlite:///abs/path.db", "/abs/path.db"},
		{"sqlite:/abs/path.db", "/abs/path.db"},
		{"sqlite:rel.db", filepath.Join(wd, "rel.db")},
		{"sqlite3:rel.db", filepath.Join(wd, "rel.db")},
		{"sqlite:///abs/with%20space.db", "/abs/with space.db"},
		{"sqlite://host/x.db", ""},
		{"sqlite:///x.db?_pragma=foo", ""},
		{"mysql://x", ""},
		{":memory:", ""},
		{"sqlite::memory:", ""},
		{"", ""},
	} {
		got, err := sqlitePath(tc.url)
		if tc.want == "" {
			if err == nil {
				t.Errorf("sqlitePath(%q) = %q, want an error", tc.url, got)
			}
			continue
		}
		if err != nil || got != tc.want {
			t.Errorf("sqlitePath(%q) = %q, %v; want %q", tc.url, got, err, tc.want)
		}
	}
}

// TestDBOSSchema checks that DBOS keeps its tables in the schema a
// PostgreSQL URL's search_path names, as the server resolves the name.
func TestDBOSSchema(t *testing.T) {
	for _, tc := range []struct{ url, want string }{
		{"postgres://h/db", ""},
		{"postgres://h/db?sslmode=disable&search_path=runs", "runs"},
		{"postgresql://h/db?search_path=Runs,public", "runs"},
		{"postgres://h/db?search_path=%22Runs%22%2Cpublic", "Runs"},
		{"postgres://h/db?search_path=%22%24user%22,public", ""},
	} {
		if got := searchSchema(tc.url); got != tc.want {
			t.Errorf("searchSchema(%q) = %q, want %q", tc.url, got, tc.want)
		}
	}
	if sl := openClosed(t, filepath.Join(t.TempDir(), "x.db")); sl.DBOSSchema() != "" {
		t.Errorf("SQLite DBOSSchema = %q, want none", sl.DBOSSchema())
	}
	u := postgresURL(t)
	s := openClosed(t, u)
	if want := searchSchema(u); want == "" || s.DBOSSchema() != want || s.DBOSURL() != u {
		t.Errorf("DBOSSchema = %q, DBOSURL = %q; want %q and the store's URL", s.DBOSSchema(), s.DBOSURL(), want)
	}
}

// TestBackpressure holds SQLite's write lock from another connection so
// that the writer stalls: AppendEvent must then block once the queue is
// full, not grow it, and every event must commit once the lock is released.
func TestBackpressure(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "hive.db")
	s := openClosed(t, path)

	other, err := sql.Open("sqlite", path+"?_pragma=busy_timeout(10000)")
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()
	conn, err := other.Conn(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if _, err := conn.ExecContext(ctx, `BEGIN IMMEDIATE`); err != nil {
		t.Fatal(err)
	}
	locked := true
	defer func() {
		if locked {
			conn.ExecContext(ctx, `ROLLBACK`)
		}
	}()

	// The writer takes up to maxBatch ops into its stalled batch, then the
	// queue fills; one more event than that must block.
	const n = maxBatch + queueSize + 1
	produced := make(chan struct{})
	go func() {
		defer close(produced)
		for i := range int64(n) {
			s.AppendEvent("r1", i+1, []byte(`{}`))
		}
	}()
	deadline := time.Now().Add(5 * time.Second)
	for len(s.queue) < cap(s.queue) && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	select {
	case <-produced:
		t.Fatal("AppendEvent did not block with the writer stalled and the queue full")
	case <-time.After(200 * time.Millisecond):
	}
	if got := len(s.queue); got != queueSize {
		t.Errorf("queue holds %d ops, want it full at %d", got, queueSize)
	}

	if _, err := conn.ExecContext(ctx, `ROLLBACK`); err != nil {
		t.Fatal(err)
	}
	locked = false
	<-produced
	if err := s.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	if last, err := s.LastSeq(ctx, "r1"); err != nil || last != n {
		t.Errorf("LastSeq = %d, %v; want %d", last, err, n)
	}
}

// A journal made before steps became a rowid table keeps its steps when a
// newer build opens it, and takes new ones.
func TestRebuildSteps(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "old.db")
	if err := open(t, path).Close(); err != nil {
		t.Fatal(err)
	}
	// The steps table as earlier builds made it, holding one step.
	db, err := sql.Open("sqlite", path)
	if err != nil {
		t.Fatal(err)
	}
	for _, q := range []string{
		`DROP TABLE hive_steps`,
		`CREATE TABLE hive_steps (run_id TEXT NOT NULL, key TEXT NOT NULL, data BLOB NOT NULL, PRIMARY KEY (run_id, key)) WITHOUT ROWID`,
		`INSERT INTO hive_steps (run_id, key, data) VALUES ('r1', '7/call-0', '{"old":1}')`,
	} {
		if _, err := db.ExecContext(ctx, q); err != nil {
			t.Fatal(err)
		}
	}
	db.Close()

	s := open(t, path)
	defer s.Close()
	var ddl string
	if err := s.rdb.QueryRowContext(ctx, `SELECT sql FROM sqlite_master WHERE name = 'hive_steps'`).Scan(&ddl); err != nil {
		t.Fatal(err)
	}
	if strings.Contains(ddl, "WITHOUT ROWID") {
		t.Errorf("hive_steps not migrated: %s", ddl)
	}
	if data, ok, err := s.Step(ctx, "r1", "7/call-0"); err != nil || !ok || string(data) != `{"old":1}` {
		t.Errorf("old step = %s %v %v", data, ok, err)
	}
	if err := s.PutStep(ctx, "r1", "7/call-0", []byte(`{"new":2}`)); err != nil {
		t.Fatal(err)
	}
	if err := s.PutStep(ctx, "r1", "task/7", []byte(`{"t":1}`)); err != nil {
		t.Fatal(err)
	}
	for key, want := range map[string]string{"7/call-0": `{"new":2}`, "task/7": `{"t":1}`} {
		if data, ok, err := s.Step(ctx, "r1", key); err != nil || !ok || string(data) != want {
			t.Errorf("step %s = %s %v %v; want %s", key, data, ok, err, want)
		}
	}
	var n int
	if err := s.rdb.QueryRowContext(ctx, `SELECT COUNT(*) FROM hive_steps`).Scan(&n); err != nil || n != 2 {
		t.Errorf("%d steps, %v; want 2 (an upsert, not a second row)", n, err)
	}
}
