package journal

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"fmt"
	"strings"
	"testing"

	"github.com/hive-swarm/hive/internal/audit"
)

// verifyRun checks run id of s as hive audit verify does.
func verifyRun(t *testing.T, s *Store, id string, key ed25519.PublicKey) audit.Report {
	t.Helper()
	ctx := context.Background()
	head, err := s.AuditHead(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	v := audit.NewVerifier(id, audit.Check{Head: head, Key: key})
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
	s.SetAuditKey(priv)
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
	s.SetAuditKey(priv)
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
