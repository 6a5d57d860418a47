package journal

import (
	"context"
	"crypto/ed25519"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/hive-swarm/hive/internal/audit"
)

// The writer links every event it journals into its run's audit chain
// (package audit) and keeps each run's head: the last link, sealed (and
// signed, with a key) whenever a batch holds a Flush or a run's update,
// which is how a run ends. Links are computed over the bytes as stored,
// after redaction.
//
// A head sealed while the run's status is an end state is final
// ([audit.Head.Final]). A batch that updates a run seals it again even
// with no new event when that changes whether its head is final (a
// cancelled run resumed), and a batch that appends to a run whose head is
// final seals it in the same transaction: an event the journal holds after
// a final head was never written by Hive.

// chainState is where a run's chain stands: its last event and link, and
// the seq its head covers and whether that head is final.
type chainState struct {
	seq    int64
	link   audit.Hash
	linked bool // link is event seq's: false for a run with no event, or whose last predates the chain
	sealed int64
	final  bool
}

// maxChains bounds the chains the writer keeps in memory; past it, sealed
// ones are dropped and read back from the database when their run writes
// again.
const maxChains = 4096

// AuditOptions say how the writer seals each run's audit head.
type AuditOptions struct {
	// Key, when set, signs every head.
	Key ed25519.PrivateKey
	// Ended tells a run status that is an end state: a head sealed while
	// the run's status is one is final. Nil: no head is final.
	Ended func(status string) bool
	// Anchor, when set, is given the heads each batch sealed once it
	// committed (an [audit.AnchorFile]). If it fails, the failure is
	// logged and the journal goes on: the heads are in the database.
	Anchor Anchor
}

// An Anchor keeps the heads the writer seals outside the database.
type Anchor interface {
	Append(heads []audit.Head) error
}

// SetAudit makes the writer seal heads as o says from now on. Call it
// before the store is shared.
func (s *Store) SetAudit(o AuditOptions) { s.audit.Store(&o) }

// linker is one batch's view of the chains it touches: copies, kept only
// once the batch commits.
type linker struct {
	s    *Store
	tx   *sql.Tx
	work map[string]*chainState
	seal bool // the batch holds a Flush or a run update
	// updated are the runs whose row the batch updates; reopened the runs
	// it appends to after a final head.
	updated, reopened map[string]bool
	// heads are the heads sealed, for the anchor.
	heads []audit.Head
}

func newLinker(s *Store, tx *sql.Tx) *linker {
	return &linker{s: s, tx: tx, work: map[string]*chainState{}, updated: map[string]bool{}, reopened: map[string]bool{}}
}

// update notes that the batch updates run runID's row.
func (l *linker) update(runID string) {
	l.seal = true
	l.updated[runID] = true
}

// get returns run's chain state, from the batch, the writer's memory or
// the database. want is the seq about to be linked: when the state in
// memory does not end just before it, another process may have written
// the run since, and the state is read again.
func (l *linker) get(ctx context.Context, runID string, want int64) (*chainState, error) {
	if st, ok := l.work[runID]; ok {
		return st, nil
	}
	if st, ok := l.s.chains[runID]; ok && st.seq == want-1 {
		c := *st
		l.work[runID] = &c
		return &c, nil
	}
	return l.read(ctx, runID)
}

// read reads run's chain state from the database into the batch.
func (l *linker) read(ctx context.Context, runID string) (*chainState, error) {
	st := &chainState{}
	var link []byte
	err := l.tx.QueryRowContext(ctx, `SELECT seq, link FROM hive_events WHERE run_id = $1 ORDER BY seq DESC LIMIT 1`, runID).Scan(&st.seq, &link)
	switch {
	case errors.Is(err, sql.ErrNoRows):
	case err != nil:
		return nil, fmt.Errorf("audit chain of %s: %w", runID, err)
	case len(link) == len(st.link):
		copy(st.link[:], link)
		st.linked = true
	}
	// else: the run's events predate the chain; it starts anew here.
	err = l.tx.QueryRowContext(ctx, `SELECT seq, final FROM hive_audit_heads WHERE run_id = $1`, runID).Scan(&st.sealed, &st.final)
	if err != nil && !errors.Is(err, sql.ErrNoRows) {
		return nil, fmt.Errorf("audit head of %s: %w", runID, err)
	}
	l.work[runID] = st
	return st, nil
}

// link returns the link of event seq of run runID, or false when the run
// already has that seq (the first write wins, as the INSERT's ON CONFLICT
// says).
func (l *linker) link(ctx context.Context, runID string, seq int64, data []byte) ([]byte, bool, error) {
	st, err := l.get(ctx, runID, seq)
	if err != nil {
		return nil, false, err
	}
	if seq <= st.seq {
		return nil, false, nil
	}
	st.link = audit.Link(st.link, runID, seq, data)
	st.seq, st.linked = seq, true
	if st.final {
		l.reopened[runID] = true
	}
	return append([]byte(nil), st.link[:]...), true, nil
}

// sealAll writes the head of every run whose chain went past its head, in
// this batch or an earlier one, or whose update changed whether its head
// is final, when the batch holds a Flush or an update; else only of the
// runs it appended to after a final head.
func (l *linker) sealAll(ctx context.Context) error {
	if !l.seal && len(l.reopened) == 0 {
		return nil
	}
	if l.seal {
		for id, st := range l.s.chains {
			if _, ok := l.work[id]; !ok && st.seq > st.sealed {
				c := *st
				l.work[id] = &c
			}
		}
		for id := range l.updated {
			if _, ok := l.work[id]; !ok {
				if _, err := l.read(ctx, id); err != nil {
					return err
				}
			}
		}
	}
	var o AuditOptions
	if p := l.s.audit.Load(); p != nil {
		o = *p
	}
	now := time.Now()
	for id, st := range l.work {
		if !st.linked || (!l.seal && !l.reopened[id]) || (st.seq <= st.sealed && !l.updated[id]) {
			continue
		}
		ended, err := l.ended(ctx, id, o.Ended)
		if err != nil {
			return err
		}
		if st.seq <= st.sealed && ended == st.final {
			continue
		}
		h := audit.Head{RunID: id, Seq: st.seq, Hash: st.link, Final: ended, Version: audit.HeadVersion, Sealed: now}
		if o.Key != nil {
			h = audit.Sign(o.Key, h)
		}
		// A head never moves back: a process sealing from a state it read
		// before another process went further leaves the later head.
		res, err := l.tx.ExecContext(ctx, `INSERT INTO hive_audit_heads (run_id, seq, hash, sig, key_id, sealed_ns, final, version)
			VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
			ON CONFLICT (run_id) DO UPDATE SET seq = excluded.seq, hash = excluded.hash, sig = excluded.sig,
				key_id = excluded.key_id, sealed_ns = excluded.sealed_ns, final = excluded.final, version = excluded.version
			WHERE excluded.seq >= hive_audit_heads.seq`,
			id, h.Seq, h.Hash[:], h.Sig, h.KeyID, now.UnixNano(), h.Final, h.Version)
		if err != nil {
			return fmt.Errorf("seal the audit chain of %s: %w", id, err)
		}
		st.sealed, st.final = st.seq, ended
		if n, err := res.RowsAffected(); err == nil && n > 0 {
			l.heads = append(l.heads, h)
		}
	}
	return nil
}

// ended reports whether run runID's status, as this batch leaves it, is an
// end state.
func (l *linker) ended(ctx context.Context, runID string, isEnd func(string) bool) (bool, error) {
	if isEnd == nil {
		return false, nil
	}
	var status string
	err := l.tx.QueryRowContext(ctx, `SELECT status FROM hive_runs WHERE id = $1`, runID).Scan(&status)
	switch {
	case errors.Is(err, sql.ErrNoRows):
		return false, nil
	case err != nil:
		return false, fmt.Errorf("status of %s: %w", runID, err)
	}
	return isEnd(status), nil
}

// anchor gives the heads the batch sealed to the anchor, once it
// committed. A failure is logged, not returned: the batch is committed,
// and the heads are in the database.
func (l *linker) anchor() {
	p := l.s.audit.Load()
	if p == nil || p.Anchor == nil || len(l.heads) == 0 {
		return
	}
	if err := p.Anchor.Append(l.heads); err != nil {
		runs := make([]string, len(l.heads))
		for i, h := range l.heads {
			runs[i] = h.RunID
		}
		l.s.log.Warn("audit heads sealed but not anchored: the runs go on, checked only against their older anchored heads", "runs", runs, "err", err)
	}
}

// keep makes the batch's chains the writer's, once it committed.
func (l *linker) keep() {
	if l.s.chains == nil {
		l.s.chains = map[string]*chainState{}
	}
	for id, st := range l.work {
		l.s.chains[id] = st
	}
	if len(l.s.chains) > maxChains {
		for id, st := range l.s.chains {
			if st.seq == st.sealed {
				delete(l.s.chains, id)
			}
		}
	}
}

// AuditHead returns the head of run runID's chain, nil when it has none.
func (s *Store) AuditHead(ctx context.Context, runID string) (*audit.Head, error) {
	h := &audit.Head{RunID: runID}
	var hash []byte
	var sealed int64
	err := s.rdb.QueryRowContext(ctx, `SELECT seq, hash, sig, key_id, final, version, sealed_ns FROM hive_audit_heads WHERE run_id = $1`, runID).
		Scan(&h.Seq, &hash, &h.Sig, &h.KeyID, &h.Final, &h.Version, &sealed)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("audit head of %s: %w", runID, err)
	}
	if len(hash) != len(h.Hash) {
		return nil, fmt.Errorf("audit head of %s: a hash of %d bytes, want %d", runID, len(hash), len(h.Hash))
	}
	copy(h.Hash[:], hash)
	h.Sealed = time.Unix(0, sealed)
	return h, nil
}

// AuditRows calls fn with each event of run runID and its link, in seq
// order, until fn returns an error.
func (s *Store) AuditRows(ctx context.Context, runID string, fn func(audit.Row) error) error {
	rows, err := s.rdb.QueryContext(ctx, `SELECT seq, data, link FROM hive_events WHERE run_id = $1 ORDER BY seq`, runID)
	if err != nil {
		return fmt.Errorf("events of %s: %w", runID, err)
	}
	defer rows.Close()
	for rows.Next() {
		var r audit.Row
		if err := rows.Scan(&r.Seq, &r.Data, &r.Link); err != nil {
			return fmt.Errorf("events of %s: %w", runID, err)
		}
		if err := fn(r); err != nil {
			return err
		}
	}
	return rows.Err()
}

// AuditRuns returns the id of every run the journal holds anything of: a
// run row, events or a head (so that a run whose events or row were
// deleted is still listed), in order.
func (s *Store) AuditRuns(ctx context.Context) ([]string, error) {
	rows, err := s.rdb.QueryContext(ctx, `SELECT id FROM hive_runs UNION SELECT DISTINCT run_id FROM hive_events
		UNION SELECT run_id FROM hive_audit_heads ORDER BY 1`)
	if err != nil {
		return nil, fmt.Errorf("audit runs: %w", err)
	}
	defer rows.Close()
	var ids []string
	for rows.Next() {
		var id string
		if err := rows.Scan(&id); err != nil {
			return nil, fmt.Errorf("audit runs: %w", err)
		}
		ids = append(ids, id)
	}
	return ids, rows.Err()
}
