package audit

import (
	"crypto/ed25519"
	"crypto/rand"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// chain builds n chained rows of run id.
func chain(id string, n int) ([]Row, Hash) {
	var prev Hash
	rows := make([]Row, n)
	for i := range rows {
		seq := int64(i + 1)
		data := []byte(fmt.Sprintf(`{"seq":%d,"type":"node","text":"event %d"}`, seq, seq))
		prev = Link(prev, id, seq, data)
		rows[i] = Row{Seq: seq, Data: data, Link: bytesOf(prev)}
	}
	return rows, prev
}

// verify runs a Verifier of run id over rows.
func verify(id string, rows []Row, c Check) (Report, error) {
	v := NewVerifier(id, c)
	for _, r := range rows {
		v.Add(r)
	}
	return v.Finish()
}

func TestLinkCoversEverything(t *testing.T) {
	base := Link(Hash{}, "r1", 1, []byte("x"))
	for name, h := range map[string]Hash{
		"prev": Link(Hash{1}, "r1", 1, []byte("x")),
		"run":  Link(Hash{}, "r2", 1, []byte("x")),
		"seq":  Link(Hash{}, "r1", 2, []byte("x")),
		"data": Link(Hash{}, "r1", 1, []byte("y")),
		// The run id and the data are length-prefixed: moving a byte
		// from one to the other changes the link.
		"split": Link(Hash{}, "r", 1, []byte("1x")),
	} {
		if h == base {
			t.Errorf("changing the %s did not change the link", name)
		}
	}
	if Link(Hash{}, "r1", 1, []byte("x")) != base {
		t.Error("the link is not deterministic")
	}
}

// Every kind of tampering with the stored rows is found, at the first
// event it touched.
func TestVerifyFindsTampering(t *testing.T) {
	pub, priv, _ := ed25519.GenerateKey(rand.Reader)
	rows, last := chain("run-1", 8)
	head := Sign(priv, Head{RunID: "run-1", Seq: 8, Hash: last})
	clone := func() []Row { return append([]Row(nil), rows...) }
	cases := []struct {
		name    string
		tamper  func([]Row) []Row
		check   Check
		seq     int64
		reason  string
		healthy bool
	}{
		{name: "untouched", tamper: func(r []Row) []Row { return r }, check: Check{Head: &head, Key: pub}, healthy: true},
		{name: "edited", tamper: func(r []Row) []Row { r[4].Data = []byte(`{"seq":5,"type":"node","text":"forged"}`); return r }, seq: 5, reason: "changed"},
		{name: "deleted in the middle", tamper: func(r []Row) []Row { return append(r[:2:2], r[3:]...) }, seq: 4, reason: "deleted"},
		{name: "reordered", tamper: func(r []Row) []Row { r[2].Data, r[3].Data = r[3].Data, r[2].Data; return r }, seq: 3, reason: "changed"},
		// Two rows' seqs swapped, read back in seq order.
		{name: "seqs swapped", tamper: func(r []Row) []Row {
			r[2].Data, r[3].Data, r[2].Link, r[3].Link = r[3].Data, r[2].Data, r[3].Link, r[2].Link
			return r
		}, seq: 3, reason: "changed"},
		{name: "read out of order", tamper: func(r []Row) []Row { r[2], r[3] = r[3], r[2]; return r }, seq: 4, reason: "moved"},
		{name: "link removed", tamper: func(r []Row) []Row { r[6].Link = nil; return r }, seq: 7, reason: "link was removed"},
		{name: "last deleted", tamper: func(r []Row) []Row { return r[:7] }, check: Check{Head: &head}, seq: 8, reason: "missing"},
		{name: "rewritten without the key", tamper: func(r []Row) []Row {
			r[1].Data = []byte("forged")
			var prev Hash
			for i := range r {
				prev = Link(prev, "run-1", r[i].Seq, r[i].Data)
				r[i].Link = bytesOf(prev)
			}
			return r
		}, check: Check{Head: &head, Key: pub}, reason: "does not match the chain"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			ck := c.check
			if ck.Head == nil && ck.Key == nil {
				ck = Check{Head: &head, Key: pub}
			}
			rep, err := verify("run-1", c.tamper(clone()), ck)
			if err != nil {
				t.Fatal(err)
			}
			if c.healthy {
				if rep.Problem != nil || !rep.Signed || rep.Sealed != 8 || rep.Events != 8 {
					t.Fatalf("a healthy chain: %+v", rep)
				}
				return
			}
			if rep.Problem == nil {
				t.Fatalf("not detected: %+v", rep)
			}
			if rep.Problem.Seq != c.seq || !strings.Contains(rep.Problem.Reason, c.reason) {
				t.Errorf("found %v, want event %d: %q", rep.Problem, c.seq, c.reason)
			}
		})
	}
}

// A head rewritten to match a rewritten chain fails its signature; with no
// key, the head the operator kept catches it.
func TestVerifyHead(t *testing.T) {
	pub, priv, _ := ed25519.GenerateKey(rand.Reader)
	rows, last := chain("r", 5)
	forged := append([]Row(nil), rows...)
	forged[4].Data = []byte("forged")
	var prev Hash
	for i := range forged {
		prev = Link(prev, "r", forged[i].Seq, forged[i].Data)
		forged[i].Link = bytesOf(prev)
	}
	fake := Head{RunID: "r", Seq: 5, Hash: prev}
	fakeSigned := fake
	fakeSigned.Sig = ed25519.Sign(priv, Head{RunID: "r", Seq: 5, Hash: last}.Message()) // the real head's signature

	for name, c := range map[string]Check{
		"unsigned head":         {Head: &fake, Key: pub},
		"another head's sig":    {Head: &fakeSigned, Key: pub},
		"no head, a key":        {Key: pub},
		"no key, the kept head": {Head: &fake, Kept: &last},
		"another key signed it": {Head: ptr(Sign(mustKey(t), fake)), Key: pub},
	} {
		rep, err := verify("r", forged, c)
		if err != nil {
			t.Fatal(err)
		}
		if rep.Problem == nil {
			t.Errorf("%s: the rewritten chain passed", name)
		}
	}
	rep, err := verify("r", rows, Check{Head: ptr(Sign(priv, Head{RunID: "r", Seq: 5, Hash: last})), Key: pub, Kept: &last})
	if err != nil || rep.Problem != nil || !rep.Signed {
		t.Fatalf("the real chain: %+v %v", rep, err)
	}
	// A head kept from earlier (the run went on after it) still holds.
	mid := Hash(rows[2].Link)
	if rep, _ := verify("r", rows, Check{Kept: &mid}); rep.Problem != nil {
		t.Fatalf("a kept head of event 3: %v", rep.Problem)
	}
}

// Events journaled before links were kept are counted, not failed; a run
// with none chained is ErrNoChain.
func TestVerifyUnchained(t *testing.T) {
	rows, _ := chain("r", 4)
	old := []Row{{Seq: 1, Data: []byte("a")}, {Seq: 2, Data: []byte("b")}}
	var prev Hash
	for _, r := range rows[2:] {
		prev = Link(prev, "r", r.Seq, r.Data)
		old = append(old, Row{Seq: r.Seq, Data: r.Data, Link: bytesOf(prev)})
	}
	rep, err := verify("r", old, Check{})
	if err != nil || rep.Problem != nil || rep.Unchained != 2 || rep.Events != 4 {
		t.Fatalf("%+v %v", rep, err)
	}
	if _, err := verify("r", old[:2], Check{}); err != ErrNoChain {
		t.Fatalf("no chain at all: %v", err)
	}
}

func TestKeys(t *testing.T) {
	path := filepath.Join(t.TempDir(), "audit.key")
	pub, err := GenerateKey(path)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := GenerateKey(path); err == nil || !strings.Contains(err.Error(), "already exists") {
		t.Fatalf("a second keygen over the key: %v", err)
	}
	priv, err := LoadPrivateKey(path)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{path, path + ".pub"} {
		got, err := LoadPublicKey(p)
		if err != nil || !got.Equal(pub) || !priv.Public().(ed25519.PublicKey).Equal(got) {
			t.Fatalf("%s: %v", p, err)
		}
	}
}

func ptr[T any](v T) *T { return &v }

func mustKey(t *testing.T) ed25519.PrivateKey {
	_, k, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func bytesOf(h Hash) []byte { return append([]byte(nil), h[:]...) }

// With a key, a run with no link and no head cannot be told from one whose
// links and head were stripped: a problem, not "unchained".
func TestVerifyStrippedWithKey(t *testing.T) {
	pub, _, _ := ed25519.GenerateKey(rand.Reader)
	rows := []Row{{Seq: 1, Data: []byte("a")}, {Seq: 2, Data: []byte("b")}}
	rep, err := verify("r", rows, Check{Key: pub})
	if err != nil || rep.Problem == nil || !strings.Contains(rep.Problem.Reason, "cannot be verified") {
		t.Fatalf("%+v %v", rep, err)
	}
}

// A final head: nothing may follow it. A run the journal shows as ended:
// its head must be final and cover its last event. The signature covers
// the flag.
func TestVerifyFinal(t *testing.T) {
	pub, priv, _ := ed25519.GenerateKey(rand.Reader)
	rows, last := chain("r", 8)
	mid := Hash(rows[4].Link)
	final := Sign(priv, Head{RunID: "r", Seq: 8, Hash: last, Final: true})
	open8 := Sign(priv, Head{RunID: "r", Seq: 8, Hash: last})
	open5 := Sign(priv, Head{RunID: "r", Seq: 5, Hash: mid})
	flipped := open8
	flipped.Final = true
	// Event 9 appended after the end, its link recomputed.
	data := []byte(`{"seq":9,"type":"run_finished"}`)
	appended := append(append([]Row(nil), rows...), Row{Seq: 9, Data: data, Link: bytesOf(Link(last, "r", 9, data))})
	cases := []struct {
		name   string
		rows   []Row
		check  Check
		seq    int64
		reason string // "" when healthy
	}{
		{"final, ended", rows, Check{Head: &final, Ended: true}, 0, ""},
		{"open, running, a tail after it", rows, Check{Head: &open5}, 0, ""},
		{"appended after a final head", appended, Check{Head: &final}, 9, "after the run's final head (event 8)"},
		{"appended after the end", appended, Check{Head: &final, Ended: true}, 9, "after the run's final head"},
		{"appended after the last head of an ended run", appended, Check{Head: &open8, Ended: true}, 9, "though the run has ended"},
		{"ended, the head not final", rows, Check{Head: &open8, Ended: true}, 0, "sealed while it was running"},
		{"the tail deleted, an older head put back", rows[:5], Check{Head: &open5, Ended: true}, 0, "sealed while it was running"},
		{"ended with no head", rows, Check{Ended: true}, 0, "has no head"},
		{"the final flag set without the key", rows, Check{Head: &flipped, Ended: true}, 0, "signature does not verify"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			c.check.Key = pub
			if c.check.Head == nil {
				c.check.Key = nil
			}
			rep, err := verify("r", c.rows, c.check)
			if err != nil {
				t.Fatal(err)
			}
			if c.reason == "" {
				if rep.Problem != nil || rep.HeadVersion != HeadVersion || rep.Final != c.check.Head.Final {
					t.Fatalf("healthy: %+v", rep)
				}
				return
			}
			if rep.Problem == nil || rep.Problem.Seq != c.seq || !strings.Contains(rep.Problem.Reason, c.reason) {
				t.Fatalf("found %v, want event %d: %q", rep.Problem, c.seq, c.reason)
			}
		})
	}
}

// Heads signed before heads recorded the run's end still verify, and are
// reported as version 1; a version 2 signature does not pass for a v1 head.
func TestVerifyHeadV1(t *testing.T) {
	pub, priv, _ := ed25519.GenerateKey(rand.Reader)
	rows, last := chain("r", 4)
	v1 := Head{RunID: "r", Seq: 4, Hash: last, Version: 1}
	v1.Sig = ed25519.Sign(priv, v1.Message())
	rep, err := verify("r", rows, Check{Head: &v1, Key: pub, Ended: true})
	if err != nil || rep.Problem != nil || rep.HeadVersion != 1 || !rep.Signed {
		t.Fatalf("a v1 head: %+v %v", rep, err)
	}
	if !strings.HasPrefix(string(v1.Message()), "hive audit head v1\n") || !strings.HasPrefix(string(Head{}.Message()), "hive audit head v2\n") {
		t.Fatal("message versions")
	}
	v2 := Sign(priv, Head{RunID: "r", Seq: 4, Hash: last, Final: true})
	v2.Version = 1
	if rep, _ := verify("r", rows, Check{Head: &v2, Key: pub}); rep.Problem == nil {
		t.Fatal("a v2 head relabelled v1 passed")
	}
	// A v1 head of an ended run must still cover its last event.
	if rep, _ := verify("r", append(rows, Row{Seq: 5, Data: []byte("x"), Link: bytesOf(Link(last, "r", 5, []byte("x")))}), Check{Head: &v1, Key: pub, Ended: true}); rep.Problem == nil || rep.Problem.Seq != 5 {
		t.Fatalf("an event after a v1 head of an ended run: %v", rep.Problem)
	}
}

// The stored head must be the anchored one, or a later one whose chain
// passes through it; a problem names both heads.
func TestVerifyAnchored(t *testing.T) {
	pub, priv, _ := ed25519.GenerateKey(rand.Reader)
	rows, last := chain("r", 8)
	mid := Hash(rows[4].Link)
	h8 := Sign(priv, Head{RunID: "r", Seq: 8, Hash: last, Final: true})
	h5 := Sign(priv, Head{RunID: "r", Seq: 5, Hash: mid})
	h5final := Sign(priv, Head{RunID: "r", Seq: 5, Hash: mid, Final: true})
	other := Sign(priv, Head{RunID: "r", Seq: 5, Hash: Hash{1}})
	forged := h8
	forged.Sig = append([]byte(nil), h8.Sig...)
	forged.Sig[0] ^= 1
	cases := []struct {
		name      string
		rows      []Row
		head, anc *Head
		reason    string
	}{
		{"the same", rows, &h8, &h8, ""},
		{"a later stored head", rows, &h8, &h5, ""},
		// The status set back to running too: only the anchor tells.
		{"the tail deleted, an older head put back", rows[:5], &h5, &h8, "event 6: missing: the anchored head (event 8 sha256:" + last.String() + " final)"},
		{"an older head put back", rows, &h5, &h8, "older than the anchored one (event 8 sha256:" + last.String() + " final)"},
		{"the head removed", rows, nil, &h8, "no head, but the anchor holds one"},
		{"another head at the same seq", rows, &h5, &h5final, "differs from the anchored one"},
		{"the chain rewritten under a later head", rows, &h8, &other, "does not pass through the anchored head"},
		{"the anchor edited", rows, &h8, &forged, "the anchor file was edited"},
		{"no events left", nil, nil, &h8, "no linked event"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			ck := Check{Head: c.head, Anchored: c.anc}
			if c.head != nil {
				ck.Key = pub
			}
			rep, err := verify("r", c.rows, ck)
			if err != nil {
				t.Fatal(err)
			}
			if c.reason == "" {
				if rep.Problem != nil || rep.Anchored != c.anc.Seq {
					t.Fatalf("healthy: %+v", rep)
				}
				return
			}
			if rep.Problem == nil || !strings.Contains(rep.Problem.Error(), c.reason) {
				t.Fatalf("found %v, want %q", rep.Problem, c.reason)
			}
		})
	}
	rep, _ := verify("r", rows[:5], Check{Head: &h5, Key: pub, Anchored: &h8})
	if msg := rep.Problem.Error(); !strings.Contains(msg, "stored head (event 5 sha256:"+mid.String()+" open)") {
		t.Fatalf("the problem does not name the stored head: %s", msg)
	}
}

func TestAnchorFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "anchor.jsonl")
	a := AnchorFile{Path: path}
	_, priv, _ := ed25519.GenerateKey(rand.Reader)
	now := time.Now()
	h := func(run string, seq int64, final bool) Head {
		return Sign(priv, Head{RunID: run, Seq: seq, Hash: Hash{byte(seq)}, Final: final, Sealed: now})
	}
	if err := a.Append([]Head{h("a", 3, false), h("b", 2, true)}); err != nil {
		t.Fatal(err)
	}
	// A run cancelled at 5 and resumed: sealed again at 5, open.
	if err := a.Append([]Head{h("a", 5, true), h("a", 5, false), h("b", 1, false)}); err != nil {
		t.Fatal(err)
	}
	got, err := a.Newest()
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]Head{"a": h("a", 5, false), "b": h("b", 2, true)}
	if len(got) != len(want) {
		t.Fatalf("%d runs, want %d", len(got), len(want))
	}
	for id, w := range want {
		g := got[id]
		if g == nil || g.Seq != w.Seq || g.Hash != w.Hash || g.Final != w.Final || g.Version != HeadVersion || string(g.Sig) != string(w.Sig) || g.KeyID != w.KeyID || !g.Sealed.Equal(now) {
			t.Errorf("run %s: %+v, want %+v", id, g, w)
		}
	}
	if fi, err := os.Stat(path); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("anchor file: %v %v", fi, err)
	}
	f, _ := os.OpenFile(path, os.O_WRONLY|os.O_APPEND, 0)
	f.WriteString("{\"run\":\"a\",\"seq\":\"x\"}\n")
	f.Close()
	if _, err := a.Newest(); err == nil || !strings.Contains(err.Error(), "line 6") {
		t.Fatalf("a bad line: %v", err)
	}
}
