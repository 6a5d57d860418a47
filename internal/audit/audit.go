// Package audit makes a run's journal tamper-evident. Every event of a
// run is chained: its link is SHA-256 over the link before it, the run's
// id, the event's seq and the event's bytes as journaled, so that editing,
// deleting or reordering a stored event changes every link after it. The
// chain's last link, the head, is kept per run and signed with an Ed25519
// key when one is configured; without a key the operator keeps the head
// (hive audit head) and gives it to hive audit verify. Someone who can
// write the database can recompute every link, but not the signature, nor
// the head the operator kept.
//
// The package only computes and checks: the journal stores links and
// heads, the CLI reads them back.
package audit

import (
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"strconv"
)

// A Hash is one link of a chain.
type Hash [32]byte

// String is the hash in hex.
func (h Hash) String() string { return hex.EncodeToString(h[:]) }

// ParseHash reads a hash written by String, with or without a "sha256:"
// prefix.
func ParseHash(s string) (Hash, error) {
	var h Hash
	if len(s) > 7 && s[:7] == "sha256:" {
		s = s[7:]
	}
	b, err := hex.DecodeString(s)
	if err != nil || len(b) != len(h) {
		return h, fmt.Errorf("%q is not a SHA-256 hash in hex (64 hex digits)", s)
	}
	copy(h[:], b)
	return h, nil
}

// Link returns the link of event seq of run runID whose journaled bytes
// are data, following prev (the zero Hash for a run's first event).
func Link(prev Hash, runID string, seq int64, data []byte) Hash {
	h := sha256.New()
	var n [8]byte
	h.Write(prev[:])
	binary.BigEndian.PutUint64(n[:], uint64(len(runID)))
	h.Write(n[:])
	h.Write([]byte(runID))
	binary.BigEndian.PutUint64(n[:], uint64(seq))
	h.Write(n[:])
	binary.BigEndian.PutUint64(n[:], uint64(len(data)))
	h.Write(n[:])
	h.Write(data)
	var out Hash
	h.Sum(out[:0])
	return out
}

// A Head is the last link of a run's chain when it was sealed.
type Head struct {
	RunID string
	Seq   int64 // the seq of the event Hash is the link of
	Hash  Hash
	// Sig is an Ed25519 signature of [Head.Message] by the key KeyID
	// names; nil when no key was configured.
	Sig   []byte
	KeyID string
}

// Message is what a head's signature signs.
func (h Head) Message() []byte {
	return []byte("hive audit head v1\n" + h.RunID + "\n" + strconv.FormatInt(h.Seq, 10) + "\n" + h.Hash.String() + "\n")
}

// Sign returns h signed with key.
func Sign(key ed25519.PrivateKey, h Head) Head {
	h.Sig = ed25519.Sign(key, h.Message())
	h.KeyID = KeyID(key.Public().(ed25519.PublicKey))
	return h
}

// KeyID names a public key: the first 8 bytes of its SHA-256, in hex.
func KeyID(pub ed25519.PublicKey) string {
	s := sha256.Sum256(pub)
	return hex.EncodeToString(s[:8])
}

// A Row is one stored event, as read back from the journal.
type Row struct {
	Seq  int64
	Data []byte
	// Link is the stored link; nil for an event journaled before the
	// journal kept links.
	Link []byte
}

// A Problem is the first thing wrong that Verify found.
type Problem struct {
	// Seq is the event it was found at; 0 when it concerns the head.
	Seq    int64
	Reason string
}

func (p *Problem) Error() string {
	if p.Seq == 0 {
		return p.Reason
	}
	return fmt.Sprintf("event %d: %s", p.Seq, p.Reason)
}

// A Check says what to check a run's chain against besides itself.
type Check struct {
	// Head is the head the journal keeps; nil when it has none.
	Head *Head
	// Key, when set, must have signed Head.
	Key ed25519.PublicKey
	// Kept, when set, is a head the operator kept (hive audit head): the
	// chain must pass through it.
	Kept *Hash
}

// A Report is what Verify found of one run.
type Report struct {
	RunID string
	// Events counts the run's events; Unchained those at its start that
	// predate the chain (journaled before links were kept).
	Events, Unchained int
	// Last is the link of the last event.
	Last Hash
	// Sealed is the seq the head covers; Signed whether a key signed it
	// and was checked.
	Sealed int64
	Signed bool
	// Problem is the first thing wrong, nil when nothing is.
	Problem *Problem
}

// ErrNoChain is a run none of whose events are chained.
var ErrNoChain = errors.New("no event of the run is chained: it was journaled before links were kept")

// A Verifier checks the rows of one run, given in seq order to Add, against
// their links and a Check; Finish reports the first problem: an edited
// event, one deleted or moved before it, a link removed, events deleted at
// the end, a head that does not match or is not signed by the key.
type Verifier struct {
	c        Check
	rep      Report
	prev     Hash
	lastSeq  int64
	chained  bool
	keptSeen bool
	headLink *Hash
}

// NewVerifier returns a Verifier of run runID's rows against c.
func NewVerifier(runID string, c Check) *Verifier {
	return &Verifier{c: c, rep: Report{RunID: runID}}
}

// Add checks the next row. Its error is always nil: it fits a row
// callback.
func (v *Verifier) Add(row Row) error {
	v.rep.Events++
	if v.rep.Problem != nil {
		return nil
	}
	if row.Seq <= v.lastSeq {
		v.rep.Problem = &Problem{row.Seq, fmt.Sprintf("out of order after event %d", v.lastSeq)}
		return nil
	}
	v.lastSeq = row.Seq
	if row.Link == nil {
		if v.chained {
			v.rep.Problem = &Problem{row.Seq, "its link was removed"}
		} else {
			v.rep.Unchained++
		}
		return nil
	}
	v.chained = true
	want := Link(v.prev, v.rep.RunID, row.Seq, row.Data)
	if len(row.Link) != len(want) || Hash(row.Link) != want {
		v.rep.Problem = &Problem{row.Seq, "changed, or an event before it was deleted, moved or changed"}
		return nil
	}
	v.prev = want
	v.keptSeen = v.keptSeen || (v.c.Kept != nil && want == *v.c.Kept)
	if v.c.Head != nil && row.Seq == v.c.Head.Seq {
		v.headLink = &want
	}
	return nil
}

// Finish reports what the rows added showed. A run none of whose events
// is chained is ErrNoChain, unless a key was given: then it cannot be told
// from a run whose links and head were stripped, and is a problem.
func (v *Verifier) Finish() (Report, error) {
	rep, c := v.rep, v.c
	rep.Last = v.prev
	if rep.Problem != nil {
		return rep, nil
	}
	if !v.chained {
		switch {
		case rep.Events == 0 && c.Head != nil:
			rep.Problem = &Problem{0, fmt.Sprintf("the head covers %d events, but the run has none: they were deleted", c.Head.Seq)}
		case rep.Events == 0:
		case c.Key != nil:
			rep.Problem = &Problem{0, "no event is linked and there is no signed head: the links were stripped, or the run predates the chain; it cannot be verified"}
		default:
			return rep, ErrNoChain
		}
		return rep, nil
	}
	switch h := c.Head; {
	case h == nil && c.Key != nil:
		rep.Problem = &Problem{0, "the run has no signed head: it was removed, or the run was never sealed"}
	case h == nil:
	case h.Seq > v.lastSeq:
		rep.Problem = &Problem{v.lastSeq + 1, fmt.Sprintf("missing: the head covers events up to %d, the journal ends at %d", h.Seq, v.lastSeq)}
	case v.headLink == nil:
		rep.Problem = &Problem{h.Seq, "missing: the head names it"}
	case *v.headLink != h.Hash:
		rep.Problem = &Problem{0, fmt.Sprintf("the head does not match the chain at event %d: the head or the events were rewritten", h.Seq)}
	case c.Key != nil && (h.Sig == nil || !ed25519.Verify(c.Key, h.Message(), h.Sig)):
		rep.Problem = &Problem{0, "the head's signature does not verify with the key given: it was rewritten, or signed by another key"}
	default:
		rep.Sealed, rep.Signed = h.Seq, c.Key != nil
	}
	if rep.Problem == nil && c.Kept != nil && !v.keptSeen {
		rep.Problem = &Problem{0, "the chain does not pass through the head you kept: events up to it were changed or deleted"}
	}
	return rep, nil
}
