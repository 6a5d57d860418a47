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
// A head also says whether the run had ended when it was sealed
// ([Head.Final]), and the signature covers that: an event after a final
// head was appended after the run ended, and a run the journal shows as
// ended must have a final head through its last event. What a signature
// cannot tell is which of the heads it signed over a run's life is the
// newest: someone who deletes a run's tail, puts back a head signed
// earlier and sets the run's status back to running leaves a journal that
// verifies. Only a head kept outside the database catches that: one the
// operator kept, or the newest line of an [AnchorFile] the journal appends
// every sealed head to.
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
	"time"
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

// HeadVersion is the version of the message [Sign] signs. Version 2
// covers [Head.Final]; version 1, that of heads sealed before heads said
// whether the run had ended, does not.
const HeadVersion = 2

// A Head is the last link of a run's chain when it was sealed.
type Head struct {
	RunID string
	Seq   int64 // the seq of the event Hash is the link of
	Hash  Hash
	// Final says the run had ended when the head was sealed: no event of
	// the run may follow it.
	Final bool
	// Version is the version of [Head.Message] the head is signed as: 0 is
	// taken as [HeadVersion]; 1 is a head sealed before heads recorded
	// Final (which is then false and means nothing).
	Version int
	// Sig is an Ed25519 signature of [Head.Message] by the key KeyID
	// names; nil when no key was configured.
	Sig   []byte
	KeyID string
	// Sealed is when the head was sealed; it is not signed.
	Sealed time.Time
}

// Message is what a head's signature signs.
func (h Head) Message() []byte {
	if h.Version == 1 {
		return []byte("hive audit head v1\n" + h.RunID + "\n" + strconv.FormatInt(h.Seq, 10) + "\n" + h.Hash.String() + "\n")
	}
	return []byte("hive audit head v2\n" + h.RunID + "\n" + strconv.FormatInt(h.Seq, 10) + "\n" + h.Hash.String() + "\n" + h.state() + "\n")
}

// state is Final as a word.
func (h Head) state() string {
	if h.Final {
		return "final"
	}
	return "open"
}

// String names the head: its event, hash and whether it is final.
func (h Head) String() string {
	s := fmt.Sprintf("event %d sha256:%s", h.Seq, h.Hash)
	switch {
	case h.Version == 1:
	case h.Final:
		s += " final"
	default:
		s += " open"
	}
	return s
}

// Sign returns h signed with key.
func Sign(key ed25519.PrivateKey, h Head) Head {
	h.Version = HeadVersion
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
	// Ended says the journal shows the run ended (its status is an end
	// state): its head must be final and cover its last event.
	Ended bool
	// Anchored, when set, is the newest head of the run in the anchor file
	// ([AnchorFile]): Head must be it, or a later one whose chain passes
	// through it.
	Anchored *Head
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
	// and was checked; Final whether it was sealed after the run ended;
	// HeadVersion the version it is signed as (1: it does not say whether
	// the run had ended).
	Sealed      int64
	Signed      bool
	Final       bool
	HeadVersion int
	// Anchored is the seq of the anchored head the chain was checked
	// against; 0 when there was none.
	Anchored int64
	// Problem is the first thing wrong, nil when nothing is.
	Problem *Problem
}

// ErrNoChain is a run none of whose events are chained.
var ErrNoChain = errors.New("no event of the run is chained: it was journaled before links were kept")

// A Verifier checks the rows of one run, given in seq order to Add, against
// their links and a Check; Finish reports the first problem: an edited
// event, one deleted or moved before it, a link removed, events deleted at
// the end or appended after the run ended, a head that does not match, is
// not signed by the key, is older than the run's end or than the anchored
// one.
type Verifier struct {
	c        Check
	rep      Report
	prev     Hash
	lastSeq  int64
	chained  bool
	keptSeen bool
	headLink *Hash
	// afterHead is the first event after the head's, 0 if none.
	afterHead int64
	// anchorLink is the link at the anchored head's seq.
	anchorLink *Hash
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
	if h := v.c.Head; h != nil && row.Seq > h.Seq && v.afterHead == 0 {
		v.afterHead = row.Seq
	}
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
	if v.c.Anchored != nil && row.Seq == v.c.Anchored.Seq {
		v.anchorLink = &want
	}
	return nil
}

// Finish reports what the rows added showed. A run none of whose events
// is chained is ErrNoChain, unless a key or an anchored head was given:
// then it cannot be told from a run whose links and head were stripped,
// and is a problem.
func (v *Verifier) Finish() (Report, error) {
	rep, c := v.rep, v.c
	rep.Last = v.prev
	if rep.Problem != nil {
		return rep, nil
	}
	if !v.chained {
		switch a := c.Anchored; {
		case rep.Events == 0 && c.Head != nil:
			rep.Problem = &Problem{0, fmt.Sprintf("the head covers %d events, but the run has none: they were deleted", c.Head.Seq)}
		case a != nil:
			rep.Problem = &Problem{0, fmt.Sprintf("the anchor holds a head of the run (%s), but the journal has no linked event of it: the events or their links were deleted", a)}
		case rep.Events == 0:
		case c.Key != nil:
			rep.Problem = &Problem{0, "no event is linked and there is no signed head: the links were stripped, or the run predates the chain; it cannot be verified"}
		default:
			return rep, ErrNoChain
		}
		return rep, nil
	}
	rep.Problem = v.checkHead()
	if rep.Problem == nil && c.Head != nil {
		h := c.Head
		rep.Sealed, rep.Signed, rep.Final, rep.HeadVersion = h.Seq, c.Key != nil, h.Final, h.Version
		if rep.HeadVersion == 0 {
			rep.HeadVersion = HeadVersion
		}
	}
	if rep.Problem == nil && c.Kept != nil && !v.keptSeen {
		rep.Problem = &Problem{0, "the chain does not pass through the head you kept: events up to it were changed or deleted"}
	}
	if rep.Problem == nil {
		rep.Problem = v.checkAnchor()
		if rep.Problem == nil && c.Anchored != nil {
			rep.Anchored = c.Anchored.Seq
		}
	}
	return rep, nil
}

// checkHead checks the stored head against the chain, the key and the
// run's end.
func (v *Verifier) checkHead() *Problem {
	c, h := v.c, v.c.Head
	switch {
	case h == nil && c.Key != nil:
		return &Problem{0, "the run has no signed head: it was removed, or the run was never sealed"}
	case h == nil && c.Ended:
		return &Problem{0, "the run has ended but has no head: it was removed"}
	case h == nil:
		return nil
	case h.Seq > v.lastSeq:
		return &Problem{v.lastSeq + 1, fmt.Sprintf("missing: the head covers events up to %d, the journal ends at %d", h.Seq, v.lastSeq)}
	case v.headLink == nil:
		return &Problem{h.Seq, "missing: the head names it"}
	case *v.headLink != h.Hash:
		return &Problem{0, fmt.Sprintf("the head does not match the chain at event %d: the head or the events were rewritten", h.Seq)}
	case c.Key != nil && (h.Sig == nil || !ed25519.Verify(c.Key, h.Message(), h.Sig)):
		return &Problem{0, "the head's signature does not verify with the key given: it was rewritten, or signed by another key"}
	case h.Final && v.afterHead > 0:
		return &Problem{v.afterHead, fmt.Sprintf("journaled after the run's final head (event %d): the run had ended, so it was appended since", h.Seq)}
	case c.Ended && v.afterHead > 0:
		return &Problem{v.afterHead, fmt.Sprintf("journaled after the run's last head (event %d), though the run has ended: it was appended since, or an older head was put back", h.Seq)}
	case c.Ended && h.Version != 1 && !h.Final:
		return &Problem{0, fmt.Sprintf("the run has ended, but its head (%s) was sealed while it was running: events after it were deleted and an older head put back", h)}
	}
	return nil
}

// checkAnchor checks the stored head against the anchored one: the same,
// or a later one whose chain passes through it.
func (v *Verifier) checkAnchor() *Problem {
	c, a, h := v.c, v.c.Anchored, v.c.Head
	switch {
	case a == nil:
		return nil
	case c.Key != nil && a.Sig != nil && !ed25519.Verify(c.Key, a.Message(), a.Sig):
		return &Problem{0, fmt.Sprintf("the anchored head (%s) is not signed by the key given: the anchor file was edited", a)}
	case h == nil:
		return &Problem{0, fmt.Sprintf("the journal has no head, but the anchor holds one (%s): it was removed", a)}
	case h.Seq < a.Seq && v.lastSeq < a.Seq:
		return &Problem{v.lastSeq + 1, fmt.Sprintf("missing: the anchored head (%s) covers events up to %d, the journal ends at %d, and the stored head (%s) is older than the anchored one: the events were deleted and an older head put back", a, a.Seq, v.lastSeq, h)}
	case h.Seq < a.Seq:
		return &Problem{0, fmt.Sprintf("the stored head (%s) is older than the anchored one (%s): an older head was put back", h, a)}
	case h.Seq == a.Seq && (h.Hash != a.Hash || h.Final != a.Final):
		return &Problem{0, fmt.Sprintf("the stored head (%s) differs from the anchored one (%s): one of them was rewritten", h, a)}
	case v.anchorLink == nil:
		return &Problem{a.Seq, fmt.Sprintf("missing: the anchored head (%s) names it", a)}
	case *v.anchorLink != a.Hash:
		return &Problem{0, fmt.Sprintf("the chain does not pass through the anchored head (%s): events up to it were changed, and the stored head with them", a)}
	}
	return nil
}
