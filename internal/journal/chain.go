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

// chainState is where a run's chain stands: its last event and link, and
// the seq its head covers.
type chainState struct {
	seq    int64
	link   audit.Hash
	sealed int64
}

// maxChains bounds the chains the writer keeps in memory; past it, sealed
// ones are dropped and read back from the database when their run writes
// again.
const maxChains = 4096

// SetAuditKey makes the writer sign every head it seals with key from now
// on. Call it before the store is shared.
func (s *Store) SetAuditKey(key ed25519.PrivateKey) { s.auditKey.Store(&key) }

// linker is one batch's view of the chains it touches: copies, kept only
// once the batch commits.
type linker struct {
	s    *Store
	tx   *sql.Tx
	work map[string]*chainState
	seal bool // the batch holds a Flush or a run update
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
	st := &chainState{}
	var link []byte
	err := l.tx.QueryRowContext(ctx, `SELECT seq, link FROM hive_events WHERE run_id = $1 ORDER BY seq DESC LIMIT 1`, runID).Scan(&st.seq, &link)
	switch {
	case errors.Is(err, sql.ErrNoRows):
	case err != nil:
		return nil, fmt.Errorf("audit chain of %s: %w", runID, err)
	case len(link) == len(st.link):
		copy(st.link[:], link)
	}
	// else: the run's events predate the chain; it starts anew here.
	err = l.tx.QueryRowContext(ctx, `SELECT seq FROM hive_audit_heads WHERE run_id = $1`, runID).Scan(&st.sealed)
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
	st.seq = seq
	return append([]byte(nil), st.link[:]...), true, nil
}

// sealAll writes the head of every run whose chain went past its head,
// in this batch or an earlier one.
func (l *linker) sealAll(ctx context.Context) error {
	for id, st := range l.s.chains {
		if _, ok := l.work[id]; !ok && st.seq > st.sealed {
			c := *st
			l.work[id] = &c
		}
	}
	var key ed25519.PrivateKey
	if k := l.s.auditKey.Load(); k != nil {
		key = *k
	}
	now := time.Now().UnixNano()
	for id, st := range l.work {
		if st.seq <= st.sealed {
			continue
		}
		h := audit.Head{RunID: id, Seq: st.seq, Hash: st.link}
		if key != nil {
			h = audit.Sign(key, h)
		}
		if _, err := l.tx.ExecContext(ctx, `INSERT INTO hive_audit_heads (run_id, seq, hash, sig, key_id, sealed_ns)
			VALUES ($1, $2, $3, $4, $5, $6)
			ON CONFLICT (run_id) DO UPDATE SET seq = excluded.seq, hash = excluded.hash, sig = excluded.sig,
				key_id = excluded.key_id, sealed_ns = excluded.sealed_ns`,
			id, h.Seq, h.Hash[:], h.Sig, h.KeyID, now); err != nil {
			return fmt.Errorf("seal the audit chain of %s: %w", id, err)
		}
		st.sealed = st.seq
	}
	return nil
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
	err := s.rdb.QueryRowContext(ctx, `SELECT seq, hash, sig, key_id FROM hive_audit_heads WHERE run_id = $1`, runID).Scan(&h.Seq, &hash, &h.Sig, &h.KeyID)
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
