package main

import (
	"bufio"
	"database/sql"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"

	_ "modernc.org/sqlite"

	"github.com/hive-swarm/hive/internal/audit"
)

// Two real runs journaled with a signing key verify; editing, deleting
// or rewriting their rows in the SQLite file makes hive audit verify exit
// 1 naming the run and the first bad event; export writes every event
// with its link and the heads.
func TestAuditVerify(t *testing.T) {
	w := newWorld(t)
	key := filepath.Join(w.dir, "audit.key")
	code, out, errOut := w.hive("audit", "keygen", key)
	if code != 0 || !strings.Contains(out, "signing_key = ") {
		t.Fatalf("keygen: exit %d\n%s%s", code, out, errOut)
	}
	if code, _, errOut := w.hive("audit", "keygen", key); code == 0 || !strings.Contains(errOut, "already exists") {
		t.Fatalf("a second keygen over the key: exit %d: %s", code, errOut)
	}
	cfg, _ := os.ReadFile(w.cfg)
	if err := os.WriteFile(w.cfg, append(cfg, "\n[audit]\nsigning_key = \"audit.key\"\n"...), 0o600); err != nil {
		t.Fatal(err)
	}
	var runs []string
	for _, task := range []string{"count to three", "count again"} {
		code, _, errOut := w.hive("run", "--json", task)
		if code != 0 {
			t.Fatalf("run: exit %d: %s", code, errOut)
		}
		runs = append(runs, w.waitRun())
	}
	code, out, errOut = w.hive("audit", "verify", "--all")
	if code != 0 || strings.Count(out, "signature good") != 2 {
		t.Fatalf("verify --all on untouched runs: exit %d\n%s%s", code, out, errOut)
	}
	m := regexp.MustCompile(`ok, (\d+) events, sealed through event (\d+)`).FindStringSubmatch(out)
	if m == nil || m[1] != m[2] || m[1] == "0" {
		t.Fatalf("a finished run is not sealed through its last event:\n%s", out)
	}

	db, err := sql.Open("sqlite", filepath.Join(w.dir, "runs", "hive.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	exec := execer(t, db)
	var data []byte
	if err := db.QueryRow(`SELECT data FROM hive_events WHERE run_id = ? AND seq = 3`, runs[0]).Scan(&data); err != nil {
		t.Fatal(err)
	}
	forged := strings.Replace(string(data), `"`, `"x`, 1)
	exec(`UPDATE hive_events SET data = ? WHERE run_id = ? AND seq = 3`, forged, runs[0])
	code, out, _ = w.hive("audit", "verify", "--all")
	if code != 1 || !strings.Contains(out, runs[0]+": TAMPERED at event 3") || strings.Count(out, "signature good") != 1 {
		t.Fatalf("an edited event: exit %d\n%s", code, out)
	}
	exec(`UPDATE hive_events SET data = ? WHERE run_id = ? AND seq = 3`, data, runs[0])
	exec(`DELETE FROM hive_events WHERE run_id = ? AND seq = 2`, runs[1])
	code, out, _ = w.hive("audit", "verify", runs[1])
	if code != 1 || !strings.Contains(out, "TAMPERED at event 3") {
		t.Fatalf("a deleted event: exit %d\n%s", code, out)
	}
	code, out, _ = w.hive("audit", "verify", "--json", runs[0])
	var verdicts []auditVerdict
	if err := json.Unmarshal([]byte(out), &verdicts); code != 0 || err != nil || len(verdicts) != 1 || !verdicts[0].OK || !verdicts[0].Signed {
		t.Fatalf("verify --json of the run put back: exit %d, %v\n%s", code, err, out)
	}
	// The head's signature is checked with the key given; another key's
	// public half refuses it.
	other := filepath.Join(w.dir, "other.key")
	if code, _, errOut := w.hive("audit", "keygen", other); code != 0 {
		t.Fatal(errOut)
	}
	code, out, _ = w.hive("audit", "verify", "--key", other+".pub", runs[0])
	if code != 1 || !strings.Contains(out, "signature does not verify") {
		t.Fatalf("another key: exit %d\n%s", code, out)
	}
	// A head kept by the operator: the chain must pass through it.
	code, out, _ = w.hive("audit", "head", runs[0])
	if code != 0 || !strings.HasPrefix(out, runs[0]+" sha256:") {
		t.Fatalf("head: exit %d\n%s", code, out)
	}
	kept := strings.Fields(out)[1]
	if code, out, _ := w.hive("audit", "verify", "--head", kept, runs[0]); code != 0 {
		t.Fatalf("verify --head with the kept head: exit %d\n%s", code, out)
	}
	if code, out, _ := w.hive("audit", "verify", "--head", "sha256:"+strings.Repeat("ab", 32), runs[0]); code != 1 || !strings.Contains(out, "does not pass through the head you kept") {
		t.Fatalf("verify --head with another head: exit %d\n%s", code, out)
	}

	exp := filepath.Join(w.dir, "audit.jsonl")
	if code, _, errOut := w.hive("audit", "export", "--all", "--out", exp); code != 0 {
		t.Fatalf("export: %s", errOut)
	}
	f, err := os.Open(exp)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	events, heads := 0, 0
	sc := bufio.NewScanner(f)
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		var l auditLine
		if err := json.Unmarshal(sc.Bytes(), &l); err != nil {
			t.Fatalf("export line %q: %v", sc.Text(), err)
		}
		switch {
		case l.Head != nil:
			heads++
			if l.Head.Sig == "" || len(l.Head.Hash) != 64 {
				t.Errorf("an unsigned or short head: %+v", l.Head)
			}
		case len(l.Link) == 64 && len(l.Event) > 0:
			events++
		default:
			t.Errorf("export line without a link or event: %s", sc.Text())
		}
	}
	if heads != 2 || events < 10 {
		t.Fatalf("export: %d heads, %d events", heads, events)
	}
	if code, _, errOut := w.hive("audit", "export", "--all", "--out", exp); code == 0 || !strings.Contains(errOut, "already exists") {
		t.Fatalf("export over a file: exit %d: %s", code, errOut)
	}
	if code, _, errOut := w.hive("audit", "verify", "nosuchrun"); code == 0 || !strings.Contains(errOut, "no run") {
		t.Fatalf("an unknown run: exit %d: %s", code, errOut)
	}
}

// auditDB opens the journal db (a path relative to w's directory, or a
// PostgreSQL URL) as someone with write access to it would.
// execer returns a function that runs a statement on db, failing t when
// it fails.
func execer(t *testing.T, db *sql.DB) func(q string, args ...any) {
	return func(q string, args ...any) {
		t.Helper()
		if _, err := db.Exec(q, args...); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
}

func auditDB(t *testing.T, w *world, db string) *sql.DB {
	t.Helper()
	driver, dsn := "sqlite", filepath.Join(w.dir, db)
	if strings.HasPrefix(db, "postgres") {
		driver, dsn = "pgx", db
	}
	d, err := sql.Open(driver, dsn)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d.Close() })
	return d
}

// signedWorld is a world whose hive.toml signs heads with a new key, and
// holds more lines of [audit].
func signedWorld(t *testing.T, db string, audit ...string) *world {
	t.Helper()
	w := newWorldDB(t, db)
	key := filepath.Join(w.dir, "audit.key")
	if code, _, errOut := w.hive("audit", "keygen", key); code != 0 {
		t.Fatalf("keygen: %s", errOut)
	}
	cfg, _ := os.ReadFile(w.cfg)
	cfg = append(cfg, "\n[audit]\nsigning_key = \"audit.key\"\n"...)
	for _, l := range audit {
		cfg = append(cfg, l+"\n"...)
	}
	if err := os.WriteFile(w.cfg, cfg, 0o600); err != nil {
		t.Fatal(err)
	}
	return w
}

// interruptedThenDone runs a task that is interrupted (its head sealed
// while it runs, and kept aside in saved_head) and then resumed to its end.
// It returns the run's id and the seq the kept head covers.
func interruptedThenDone(t *testing.T, w *world, db *sql.DB) (string, int64) {
	t.Helper()
	w.slow.Store(true)
	cmd, _, errb := w.process("run", "SLOW count to three")
	id := w.waitRun()
	cmd.Process.Signal(syscall.SIGINT)
	if code := exitCode(t, cmd); code != exitInterrupted {
		t.Fatalf("exit %d after SIGINT, want 130; stderr:\n%s", code, errb)
	}
	if code, out, _ := w.hive("audit", "verify", id); code != 0 {
		t.Fatalf("verify an interrupted run: exit %d\n%s", code, out)
	}
	var seq int64
	if err := db.QueryRow(`SELECT seq FROM hive_audit_heads WHERE run_id = $1`, id).Scan(&seq); err != nil {
		t.Fatal(err)
	}
	if _, err := db.Exec(`CREATE TABLE saved_head AS SELECT * FROM hive_audit_heads WHERE run_id = $1`, id); err != nil {
		t.Fatal(err)
	}
	w.slow.Store(false)
	if code, out, errOut := w.hive("resume", id); code != 0 || out != "three reports\n" {
		t.Fatalf("resume: exit %d, %q\n%s", code, out, errOut)
	}
	return id, seq
}

// TestAuditAfterEnd: events appended, with their links recomputed, after
// a run ended, and a run whose tail was deleted and an older signed head
// put back, fail hive audit verify.
func TestAuditAfterEnd(t *testing.T) { testAuditAfterEnd(t, "runs/hive.db") }

func TestAuditAfterEndOnPostgres(t *testing.T) { testAuditAfterEnd(t, postgresURL(t)) }

func testAuditAfterEnd(t *testing.T, dbURL string) {
	w := signedWorld(t, dbURL)
	db := auditDB(t, w, dbURL)
	exec := execer(t, db)
	id, kept := interruptedThenDone(t, w, db)
	code, out, _ := w.hive("audit", "verify", id)
	if code != 0 || !strings.Contains(out, "signature good") {
		t.Fatalf("verify the run at its end: exit %d\n%s", code, out)
	}
	var last int64
	var link []byte
	if err := db.QueryRow(`SELECT seq, link FROM hive_events WHERE run_id = $1 ORDER BY seq DESC LIMIT 1`, id).Scan(&last, &link); err != nil {
		t.Fatal(err)
	}
	if kept >= last {
		t.Fatalf("the head kept at the interruption covers event %d, the run ends at %d", kept, last)
	}

	// An event appended after the end, with its link.
	forged := []byte(fmt.Sprintf(`{"seq":%d,"type":"run_finished","text":"forged"}`, last+1))
	next := audit.Link(audit.Hash(link), id, last+1, forged)
	exec(`INSERT INTO hive_events (run_id, seq, data, link) VALUES ($1, $2, $3, $4)`, id, last+1, forged, next[:])
	code, out, errOut := w.hive("audit", "verify", id)
	if want := fmt.Sprintf("%s: TAMPERED at event %d", id, last+1); code != 1 || !strings.Contains(out, want) {
		t.Fatalf("an event appended after the end: exit %d, want 1 and %q\n%s%s", code, want, out, errOut)
	}
	if strings.Contains(errOut, "goroutine") || strings.Contains(errOut, "panic") {
		t.Fatalf("verify printed a stack:\n%s", errOut)
	}
	exec(`DELETE FROM hive_events WHERE run_id = $1 AND seq = $2`, id, last+1)
	if code, out, _ := w.hive("audit", "verify", id); code != 0 {
		t.Fatalf("the appended event removed: exit %d\n%s", code, out)
	}

	// The tail deleted and the head sealed at the interruption put back:
	// the run is done, its head is not final.
	exec(`DELETE FROM hive_events WHERE run_id = $1 AND seq > $2`, id, kept)
	exec(`DELETE FROM hive_audit_heads WHERE run_id = $1`, id)
	exec(`INSERT INTO hive_audit_heads SELECT * FROM saved_head`)
	code, out, _ = w.hive("audit", "verify", id)
	if code != 1 || !strings.Contains(out, id+": TAMPERED") || !strings.Contains(out, "ended") {
		t.Fatalf("an older head put back: exit %d\n%s", code, out)
	}
}

// TestAuditAnchor: with [audit] anchor_file, every sealed head is appended
// to it, and verify checks each run's stored head against the newest
// anchored one: an older head put back with the run's status rewritten
// too, or a run deleted altogether, fails. An anchor that cannot be
// written fails no run.
func TestAuditAnchor(t *testing.T) { testAuditAnchor(t, "runs/hive.db") }

func TestAuditAnchorOnPostgres(t *testing.T) { testAuditAnchor(t, postgresURL(t)) }

func testAuditAnchor(t *testing.T, dbURL string) {
	w := signedWorld(t, dbURL, `anchor_file = "anchor.jsonl"`)
	db := auditDB(t, w, dbURL)
	exec := execer(t, db)
	id, kept := interruptedThenDone(t, w, db)
	anchor, err := os.ReadFile(filepath.Join(w.dir, "anchor.jsonl"))
	if err != nil {
		t.Fatal(err)
	}
	if n := strings.Count(string(anchor), `"run":"`+id+`"`); n < 2 || !strings.Contains(string(anchor), `"final":true`) {
		t.Fatalf("%d anchored heads of the run, want its interruption and its end at least:\n%s", n, anchor)
	}
	code, out, _ := w.hive("audit", "verify", id)
	if code != 0 || !regexp.MustCompile(`sealed through event (\d+), final, signature good, anchored through event (\d+)$`).MatchString(strings.TrimSpace(out)) {
		t.Fatalf("verify against the anchor: exit %d\n%s", code, out)
	}

	// The tail deleted, the head of the interruption put back, and the
	// run's status rewritten to match: only the anchor tells.
	exec(`DELETE FROM hive_events WHERE run_id = $1 AND seq > $2`, id, kept)
	exec(`DELETE FROM hive_audit_heads WHERE run_id = $1`, id)
	exec(`INSERT INTO hive_audit_heads SELECT * FROM saved_head`)
	exec(`UPDATE hive_runs SET status = 'interrupted' WHERE id = $1`, id)
	if code, out, _ := w.hive("audit", "verify", "--anchor", filepath.Join(w.dir, "elsewhere.jsonl"), id); code != 0 {
		t.Fatalf("the rollback checked without an anchor: exit %d\n%s", code, out)
	}
	code, out, errOut := w.hive("audit", "verify", "--all")
	if code != 1 || !strings.Contains(out, fmt.Sprintf("%s: TAMPERED at event %d: missing", id, kept+1)) ||
		!strings.Contains(out, fmt.Sprintf("the stored head (event %d sha256:", kept)) || !strings.Contains(out, "older than the anchored one") || !strings.Contains(errOut, "1 of 1 runs failed") {
		t.Fatalf("the rollback against the anchor: exit %d\n%s%s", code, out, errOut)
	}

	// The run deleted altogether: the anchor still names it.
	exec(`DELETE FROM hive_events WHERE run_id = $1`, id)
	exec(`DELETE FROM hive_audit_heads WHERE run_id = $1`, id)
	exec(`DELETE FROM hive_runs WHERE id = $1`, id)
	code, out, _ = w.hive("audit", "verify", "--all")
	if code != 1 || !strings.Contains(out, id+": TAMPERED: the anchor holds a head of the run") {
		t.Fatalf("a run deleted: exit %d\n%s", code, out)
	}

	// An anchor that cannot be written: the run goes on, and says so.
	cfg, _ := os.ReadFile(w.cfg)
	cfg = []byte(strings.Replace(string(cfg), `anchor_file = "anchor.jsonl"`, `anchor_file = "."`, 1))
	if err := os.WriteFile(w.cfg, cfg, 0o600); err != nil {
		t.Fatal(err)
	}
	code, out, errOut = w.hive("run", "count again")
	if code != 0 || out != "three reports\n" || !strings.Contains(errOut, "not anchored") {
		t.Fatalf("a run with an anchor that cannot be written: exit %d, %q\n%s", code, out, errOut)
	}
}
