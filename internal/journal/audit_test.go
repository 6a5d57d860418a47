package journal

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"fmt"
	"log/slog"
	"path/filepath"
	"strings"
	"testing"

	"github.com/hive-swarm/hive/internal/audit"
)

// ended is the end states of the runs these tests write.
func ended(status string) bool { return status == "done" || status == "cancelled" }

// verifyRun checks run id of s as hive audit verify does, against the
// anchored head if one is given.
func verifyRun(t *testing.T, s *Store, id string, key ed25519.PublicKey, anchored ...*audit.Head) audit.Report {
	t.Helper()
	ctx := context.Background()
	head, err := s.AuditHead(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	c := audit.Check{Head: head, Key: key}
	if r, err := s.Run(ctx, id); err == nil {
		c.Ended = ended(r.Status)
	}
	if len(anchored) > 0 {
		c.Anchored = anchored[0]
	}
	v := audit.NewVerifier(id, c)
	if err := s.AuditRows(ctx, id, v.Add); err != nil {
		t.Fatal(err)
	}
	rep, err := v.Finish()
	if err != nil {
		t.Fatal(err)
	}
	return rep
}

// testAudit edits, deletes and reorders stored events and heads the way
// someone with write access to the database would, and expects
// verification to name the first bad event each time, and to pass again
// once the rows are put back.
func testAudit(t *testing.T, url string) {
	ctx := context.Background()
	pub, priv, _ := ed25519.GenerateKey(rand.Reader)
	s := open(t, url)
	s.SetAudit(AuditOptions{Key: priv, Ended: ended})
	for i := range int64(12) {
		s.AppendEvent("a", i+1, fmt.Appendf(nil, `{"seq":%d,"text":"event %d"}`, i+1, i+1))
	}
	for i := range int64(3) {
		s.AppendEvent("b", i+1, fmt.Appendf(nil, `{"seq":%d}`, i+1))
	}
	if err := s.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	healthy := func(what string) {
		t.Helper()
		for id, n := range map[string]int{"a": 12, "b": 3} {
			rep := verifyRun(t, s, id, pub)
			if rep.Problem != nil || !rep.Signed || rep.Events != n || rep.Sealed != int64(n) {
				t.Fatalf("%s: run %s: %+v, want %d events, sealed and signed, no problem", what, id, rep, n)
			}
		}
	}
	healthy("as written")

	exec := func(q string, args ...any) {
		t.Helper()
		if _, err := s.wdb.ExecContext(ctx, q, args...); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	type stored struct {
		data, link []byte
	}
	read := func(seq int64) stored {
		t.Helper()
		var r stored
		if err := s.rdb.QueryRowContext(ctx, `SELECT data, link FROM hive_events WHERE run_id = 'a' AND seq = $1`, seq).Scan(&r.data, &r.link); err != nil {
			t.Fatal(err)
		}
		return r
	}
	put := func(seq int64, r stored) {
		t.Helper()
		exec(`DELETE FROM hive_events WHERE run_id = 'a' AND seq = $1`, seq)
		exec(`INSERT INTO hive_events (run_id, seq, data, link) VALUES ('a', $1, $2, $3)`, seq, r.data, r.link)
	}
	expect := func(what string, seq int64, reason string) {
		t.Helper()
		rep := verifyRun(t, s, "a", pub)
		if rep.Problem == nil {
			t.Fatalf("%s: not detected", what)
		}
		if rep.Problem.Seq != seq || !strings.Contains(rep.Problem.Reason, reason) {
			t.Fatalf("%s: found %v, want event %d: %q", what, rep.Problem, seq, reason)
		}
	}

	orig := map[int64]stored{}
	for seq := int64(1); seq <= 12; seq++ {
		orig[seq] = read(seq)
	}
	exec(`UPDATE hive_events SET data = $1 WHERE run_id = 'a' AND seq = 5`, []byte(`{"seq":5,"text":"forged"}`))
	expect("an edited event", 5, "changed")
	put(5, orig[5])
	healthy("put back")

	exec(`DELETE FROM hive_events WHERE run_id = 'a' AND seq = 7`)
	expect("a deleted event", 8, "deleted")
	put(7, orig[7])

	put(3, orig[4])
	put(4, orig[3])
	expect("two events swapped", 3, "changed")
	put(3, orig[3])
	put(4, orig[4])

	exec(`DELETE FROM hive_events WHERE run_id = 'a' AND seq = 12`)
	expect("the last event deleted", 12, "missing")
	put(12, orig[12])

	exec(`UPDATE hive_events SET link = NULL WHERE run_id = 'a' AND seq = 9`)
	expect("a link removed", 9, "removed")
	put(9, orig[9])
	healthy("all put back")

	// Someone who knows the scheme rewrites the event, every link after it
	// and the head: only the signature gives them away.
	exec(`UPDATE hive_events SET data = $1 WHERE run_id = 'a' AND seq = 2`, []byte(`{"seq":2,"text":"forged"}`))
	var prev audit.Hash
	for seq := int64(1); seq <= 12; seq++ {
		data := orig[seq].data
		if seq == 2 {
			data = []byte(`{"seq":2,"text":"forged"}`)
		}
		prev = audit.Link(prev, "a", seq, data)
		exec(`UPDATE hive_events SET link = $1 WHERE run_id = 'a' AND seq = $2`, prev[:], seq)
	}
	exec(`UPDATE hive_audit_heads SET hash = $1 WHERE run_id = 'a'`, prev[:])
	expect("a rewritten chain and head", 0, "signature")
	exec(`DELETE FROM hive_audit_heads WHERE run_id = 'a'`)
	expect("the head deleted", 0, "no signed head")

	// A fresh process goes on with run b's chain from the database.
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s = openClosed(t, url)
	s.SetAudit(AuditOptions{Key: priv, Ended: ended})
	s.AppendEvent("b", 4, []byte(`{"seq":4}`))
	if err := s.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	if rep := verifyRun(t, s, "b", pub); rep.Problem != nil || rep.Events != 4 || rep.Sealed != 4 {
		t.Fatalf("run b after a restart: %+v", rep)
	}
	ids, err := s.AuditRuns(ctx)
	if err != nil || strings.Join(ids, ",") != "a,b" {
		t.Fatalf("AuditRuns = %v, %v", ids, err)
	}
}

// tamperer writes s's database as someone with write access to it would.
type tamperer struct {
	t *testing.T
	s *Store
}

func (x tamperer) exec(q string, args ...any) {
	x.t.Helper()
	if _, err := x.s.wdb.ExecContext(context.Background(), q, args...); err != nil {
		x.t.Fatalf("%s: %v", q, err)
	}
}

// storedHead is a head's row as stored.
type storedHead struct {
	seq, sealed int64
	hash, sig   []byte
	keyID       string
	final       bool
	version     int
}

func (x tamperer) head(run string) storedHead {
	x.t.Helper()
	var h storedHead
	err := x.s.rdb.QueryRowContext(context.Background(), `SELECT seq, hash, sig, key_id, sealed_ns, final, version FROM hive_audit_heads WHERE run_id = $1`, run).
		Scan(&h.seq, &h.hash, &h.sig, &h.keyID, &h.sealed, &h.final, &h.version)
	if err != nil {
		x.t.Fatal(err)
	}
	return h
}

func (x tamperer) putHead(run string, h storedHead) {
	x.t.Helper()
	x.exec(`UPDATE hive_audit_heads SET seq = $2, hash = $3, sig = $4, key_id = $5, sealed_ns = $6, final = $7, version = $8 WHERE run_id = $1`,
		run, h.seq, h.hash, h.sig, h.keyID, h.sealed, h.final, h.version)
}

// appendLinked appends event seq to run with the link it would have had.
func (x tamperer) appendLinked(run string, seq int64, data []byte) {
	x.t.Helper()
	var prev []byte
	if err := x.s.rdb.QueryRowContext(context.Background(), `SELECT link FROM hive_events WHERE run_id = $1 AND seq = $2`, run, seq-1).Scan(&prev); err != nil {
		x.t.Fatal(err)
	}
	link := audit.Link(audit.Hash(prev), run, seq, data)
	x.exec(`INSERT INTO hive_events (run_id, seq, data, link) VALUES ($1, $2, $3, $4)`, run, seq, data, link[:])
}

// expectProblem verifies run and wants a problem at event seq whose reason
// holds reason.
func expectProblem(t *testing.T, rep audit.Report, what string, seq int64, reason string) {
	t.Helper()
	if rep.Problem == nil {
		t.Fatalf("%s: not detected: %+v", what, rep)
	}
	if rep.Problem.Seq != seq || !strings.Contains(rep.Problem.Reason, reason) {
		t.Fatalf("%s: found %v, want event %d: %q", what, rep.Problem, seq, reason)
	}
}

// testAuditEnd: a head sealed when its run has ended is final, and says
// so under the signature; events appended after it, and an older head put
// back after the tail was deleted, fail verification; with the run's
// status rewritten too, only the anchored head shows the rollback.
func testAuditEnd(t *testing.T, url string) {
	ctx := context.Background()
	pub, priv, _ := ed25519.GenerateKey(rand.Reader)
	anchor := audit.AnchorFile{Path: filepath.Join(t.TempDir(), "anchor.jsonl")}
	opts := AuditOptions{Key: priv, Ended: ended, Anchor: anchor}
	s := openClosed(t, url)
	s.SetAudit(opts)
	x := tamperer{t, s}
	if err := s.CreateRun(ctx, Run{ID: "r", Task: "t", Status: "running"}); err != nil {
		t.Fatal(err)
	}
	event := func(id string, seq int64) { s.AppendEvent(id, seq, fmt.Appendf(nil, `{"seq":%d}`, seq)) }
	for seq := range int64(5) {
		event("r", seq+1)
	}
	if err := s.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	if rep := verifyRun(t, s, "r", pub); rep.Problem != nil || rep.Sealed != 5 || rep.Final {
		t.Fatalf("a running run: %+v", rep)
	}
	older := x.head("r")
	for seq := int64(6); seq <= 8; seq++ {
		event("r", seq)
	}
	if err := s.UpdateRun(ctx, Run{ID: "r", Task: "t", Status: "done"}); err != nil {
		t.Fatal(err)
	}
	if rep := verifyRun(t, s, "r", pub); rep.Problem != nil || rep.Sealed != 8 || !rep.Final || rep.HeadVersion != audit.HeadVersion {
		t.Fatalf("an ended run: %+v", rep)
	}
	// Hive journals the run's end after its status: the event seals the
	// run again in its own batch, with no Flush (Close commits it).
	event("r", 9)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s = openClosed(t, url)
	s.SetAudit(opts)
	x = tamperer{t, s}
	if rep := verifyRun(t, s, "r", pub); rep.Problem != nil || rep.Sealed != 9 || !rep.Final {
		t.Fatalf("an event journaled after the end by Hive: %+v", rep)
	}

	// An event appended after the end, its link recomputed.
	x.appendLinked("r", 10, []byte(`{"seq":10,"text":"forged"}`))
	expectProblem(t, verifyRun(t, s, "r", pub), "an event appended after the end", 10, "after the run's final head (event 9)")
	x.exec(`DELETE FROM hive_events WHERE run_id = 'r' AND seq = 10`)

	// The tail deleted and the head sealed while the run ran put back.
	x.exec(`DELETE FROM hive_events WHERE run_id = 'r' AND seq > 5`)
	x.putHead("r", older)
	expectProblem(t, verifyRun(t, s, "r", pub), "an older head put back", 0, "sealed while it was running")

	// The run's status set back to running as well: the journal alone
	// verifies; the anchored head does not.
	x.exec(`UPDATE hive_runs SET status = 'running' WHERE id = 'r'`)
	if rep := verifyRun(t, s, "r", pub); rep.Problem != nil {
		t.Fatalf("the rollback with the status rewritten, without the anchor: %v", rep.Problem)
	}
	heads, err := anchor.Newest()
	if err != nil {
		t.Fatal(err)
	}
	if a := heads["r"]; a == nil || a.Seq != 9 || !a.Final {
		t.Fatalf("the anchored head of r: %+v", a)
	}
	expectProblem(t, verifyRun(t, s, "r", pub, heads["r"]), "the rollback against the anchor", 6, "missing: the anchored head (event 9 sha256:")

	// A cancelled run resumed: its head is sealed again, open, with no new
	// event, so that the events that follow are not after a final head.
	if err := s.CreateRun(ctx, Run{ID: "c", Task: "t", Status: "running"}); err != nil {
		t.Fatal(err)
	}
	for seq := range int64(3) {
		event("c", seq+1)
	}
	for _, st := range []string{"cancelled", "running"} {
		if err := s.UpdateRun(ctx, Run{ID: "c", Task: "t", Status: st}); err != nil {
			t.Fatal(err)
		}
		if rep := verifyRun(t, s, "c", pub); rep.Problem != nil || rep.Sealed != 3 || rep.Final != (st == "cancelled") {
			t.Fatalf("run c %s: %+v", st, rep)
		}
	}
	event("c", 4)
	if err := s.Close(); err != nil { // no seal: a running run's tail
		t.Fatal(err)
	}
	s = openClosed(t, url)
	heads, err = anchor.Newest()
	if err != nil {
		t.Fatal(err)
	}
	if rep := verifyRun(t, s, "c", pub, heads["c"]); rep.Problem != nil || rep.Events != 4 || rep.Sealed != 3 || rep.Final || rep.Anchored != 3 {
		t.Fatalf("run c resumed: %+v", rep)
	}

	// A head sealed by a build before heads recorded the run's end, as the
	// migration leaves it: version 1, not final, signed without the flag.
	x = tamperer{t, s}
	h := x.head("c")
	old := audit.Head{RunID: "c", Seq: h.seq, Hash: audit.Hash(h.hash), Version: 1}
	h.sig, h.final, h.version = ed25519.Sign(priv, old.Message()), false, 1
	x.putHead("c", h)
	x.exec(`UPDATE hive_runs SET status = 'done' WHERE id = 'c'`)
	x.exec(`DELETE FROM hive_events WHERE run_id = 'c' AND seq > 3`)
	if rep := verifyRun(t, s, "c", pub); rep.Problem != nil || rep.HeadVersion != 1 || !rep.Signed || rep.Sealed != 3 {
		t.Fatalf("a v1 head of an ended run: %+v", rep)
	}
	x.appendLinked("c", 4, []byte(`{"seq":4}`))
	expectProblem(t, verifyRun(t, s, "c", pub), "an event after the v1 head of an ended run", 4, "though the run has ended")
}

// testAuditAnchorFails: an anchor that cannot be written loses no journaled
// work: the batch commits, the head is stored, the failure is logged.
func testAuditAnchorFails(t *testing.T, url string) {
	ctx := context.Background()
	var logs bytes.Buffer // written by the writer goroutine before Flush returns
	s, err := Open(ctx, url, slog.New(slog.NewTextHandler(&logs, nil)))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	s.SetAudit(AuditOptions{Ended: ended, Anchor: audit.AnchorFile{Path: t.TempDir()}}) // a directory
	if err := s.CreateRun(ctx, Run{ID: "r", Task: "t", Status: "running"}); err != nil {
		t.Fatal(err)
	}
	s.AppendEvent("r", 1, []byte(`{}`))
	if err := s.UpdateRun(ctx, Run{ID: "r", Task: "t", Status: "done"}); err != nil {
		t.Fatalf("update with the anchor failing: %v", err)
	}
	if err := s.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	if rep := verifyRun(t, s, "r", nil); rep.Problem != nil || rep.Events != 1 || rep.Sealed != 1 || !rep.Final {
		t.Fatalf("%+v", rep)
	}
	if !strings.Contains(logs.String(), "not anchored") || !strings.Contains(logs.String(), "runs=[r]") {
		t.Fatalf("the anchor's failure was not logged:\n%s", logs.String())
	}
}
