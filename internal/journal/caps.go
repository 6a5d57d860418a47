package journal

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"time"
)

// A SpendCap bounds what the runs admitted since Since may spend together:
// a run is created (or resumed) only if the money the others have spent,
// or may still spend, and this run's budget fit under Limit. The check and
// the write are one transaction that holds the journal's write lock
// (SQLite's, or an advisory lock on PostgreSQL), so that processes sharing
// the journal cannot start runs past the cap between them.
//
// A run is admitted when it is created and again each time it resumes:
// then it counts, from that day on, for all it may still spend, so that
// neither cancelling a run (which frees what it had not spent) and
// resuming it, nor resuming yesterday's run today, gets past today's cap.
type SpendCap struct {
	Since time.Time
	// Principal, when set, limits the cap to the runs of that principal
	// (an API token's own daily cap); empty: every run.
	Principal string
	// LimitNanos is the cap, BudgetNanos the new run's budget (a run
	// without one cannot start under a cap).
	LimitNanos, BudgetNanos int64
	// Final tells an ended run's status, whose cost is all it will spend,
	// from one that may still spend up to its budget.
	Final func(status string) bool
}

// ErrOverCap is a run a SpendCap refused.
var ErrOverCap = errors.New("over the spend cap")

// capLock is the advisory lock key that serialises capped run starts on
// PostgreSQL.
const capLock = 0x68697666

// CreateRunCapped is CreateRun under caps: it fails with an error wrapping
// ErrOverCap, saying what is committed, when the run would not fit under
// one of them.
func (s *Store) CreateRunCapped(ctx context.Context, r Run, caps ...SpendCap) error {
	if r.ID == "" {
		return errors.New("journal: create run: empty id")
	}
	if r.Created.IsZero() {
		r.Created = time.Now()
	}
	if r.Updated.IsZero() {
		r.Updated = r.Created
	}
	if r.Admitted.IsZero() {
		r.Admitted = r.Created
	}
	if err := s.enqueueSync(ctx, &op{kind: opCreateRun, runID: r.ID, run: &r, spendCaps: caps}); err != nil {
		return fmt.Errorf("create run %s: %w", r.ID, err)
	}
	return nil
}

// ReadmitRun admits the run id again under caps, now, as it resumes: it
// counts for the larger of what it has spent and its budget (each cap's
// BudgetNanos), beside what the runs admitted since each cap's Since
// have spent or may still spend, itself excepted. When it fits, the run's
// status becomes status and its admission time now, in the same
// transaction; when it does not, nothing changes and the error wraps
// ErrOverCap.
func (s *Store) ReadmitRun(ctx context.Context, id, status string, caps ...SpendCap) error {
	now := time.Now()
	r := &Run{ID: id, Status: status, Updated: now, Admitted: now}
	if err := s.enqueueSync(ctx, &op{kind: opReadmitRun, runID: id, run: r, spendCaps: caps}); err != nil {
		return fmt.Errorf("resume run %s: %w", id, err)
	}
	return nil
}

// capLockTx serialises capped admissions on PostgreSQL (SQLite's write
// transaction already does).
func (s *Store) capLockTx(ctx context.Context, tx *sql.Tx) error {
	if s.dialect == DialectPostgres {
		_, err := tx.ExecContext(ctx, `SELECT pg_advisory_xact_lock($1)`, int64(capLock))
		return err
	}
	return nil
}

// committedTx sums what the runs admitted since c.Since (of c.Principal,
// when set), but the run except, have spent or may still spend.
func (s *Store) committedTx(ctx context.Context, tx *sql.Tx, c *SpendCap, except string) (int64, error) {
	rows, err := tx.QueryContext(ctx, `SELECT id, status, cost_nanos, spec FROM hive_runs
		WHERE admitted_ns >= $1 AND ($2 = '' OR principal = $2)`, c.Since.UnixNano(), c.Principal)
	if err != nil {
		return 0, err
	}
	defer rows.Close()
	var sum int64
	for rows.Next() {
		var id, status string
		var cost int64
		var spec []byte
		if err := rows.Scan(&id, &status, &cost, &spec); err != nil {
			return 0, err
		}
		if id == except {
			continue
		}
		n := cost
		if c.Final == nil || !c.Final(status) {
			var b struct {
				Budget int64 `json:"budget_nanos"`
			}
			json.Unmarshal(spec, &b)
			n = max(cost, b.Budget)
		}
		// Each part and the sum are held at the cap: a run's budget of
		// nearly 2^63 nanos must not wrap the sum around to negative.
		sum = min(sum+min(max(n, 0), c.LimitNanos+1), c.LimitNanos+1)
	}
	return sum, rows.Err()
}

// admitTx checks o's caps for the run o.runID, which may spend need (its
// budget, or more if it has spent more), the run itself left out of the
// sums.
func (s *Store) admitTx(ctx context.Context, tx *sql.Tx, o *op, need func(c *SpendCap) int64) (soft, err error) {
	if err := s.capLockTx(ctx, tx); err != nil {
		return nil, err
	}
	for i := range o.spendCaps {
		c := &o.spendCaps[i]
		n := need(c)
		if c.BudgetNanos <= 0 {
			return fmt.Errorf("%w: a run needs a dollar budget under a spend cap", ErrOverCap), nil
		}
		if n > c.LimitNanos {
			return &CapError{Budget: n, Limit: c.LimitNanos, Principal: c.Principal}, nil
		}
		sum, err := s.committedTx(ctx, tx, c, o.runID)
		if err != nil {
			return nil, err
		}
		if sum+n > c.LimitNanos {
			return &CapError{Committed: sum, Budget: n, Limit: c.LimitNanos, Principal: c.Principal}, nil
		}
	}
	return nil, nil
}

// createRunCappedTx checks o's caps and creates its run.
func (s *Store) createRunCappedTx(ctx context.Context, tx *sql.Tx, o *op) (soft, err error) {
	soft, err = s.admitTx(ctx, tx, o, func(c *SpendCap) int64 { return c.BudgetNanos })
	if soft != nil || err != nil {
		return soft, err
	}
	return createRunTx(ctx, tx, o.run)
}

// readmitRunTx checks o's caps for the run o.runID as it resumes, and
// marks it admitted now, with its new status.
func (s *Store) readmitRunTx(ctx context.Context, tx *sql.Tx, o *op) (soft, err error) {
	var cost int64
	switch err := tx.QueryRowContext(ctx, `SELECT cost_nanos FROM hive_runs WHERE id = $1`, o.runID).Scan(&cost); {
	case errors.Is(err, sql.ErrNoRows):
		return ErrNotFound, nil
	case err != nil:
		return nil, err
	}
	soft, err = s.admitTx(ctx, tx, o, func(c *SpendCap) int64 { return max(c.BudgetNanos, cost) })
	if soft != nil || err != nil {
		return soft, err
	}
	res, err := tx.ExecContext(ctx, `UPDATE hive_runs SET status = $2, error = '', updated_ns = $3, admitted_ns = $4 WHERE id = $1`,
		o.runID, o.run.Status, o.run.Updated.UnixNano(), o.run.Admitted.UnixNano())
	if err != nil {
		return nil, err
	}
	return affected(res, ErrNotFound)
}

// CapError is the detail of a run a SpendCap refused.
type CapError struct {
	Committed, Budget, Limit int64
	Principal                string // the cap's, if it is one principal's
}

func (e *CapError) Error() string {
	whose := "runs"
	if e.Principal != "" {
		whose = e.Principal + "'s runs"
	}
	return fmt.Sprintf("%v: %s admitted in the period have spent or may still spend $%.2f of $%.2f, and this run's budget is $%.2f",
		ErrOverCap, whose, float64(e.Committed)/1e9, float64(e.Limit)/1e9, float64(e.Budget)/1e9)
}

func (e *CapError) Unwrap() error { return ErrOverCap }
