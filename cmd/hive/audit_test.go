package main

import (
	"bufio"
	"database/sql"
	"encoding/json"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	_ "modernc.org/sqlite"
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
	exec := func(q string, args ...any) {
		t.Helper()
		if _, err := db.Exec(q, args...); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
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
