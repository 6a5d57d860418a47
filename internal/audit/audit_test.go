package audit

import (
	"crypto/ed25519"
	"crypto/rand"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
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
