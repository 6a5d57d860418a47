package journal

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"time"
)

// A SpendCap bounds what the runs started since Since may spend together:
// a run is created only if the money the others have spent, or may still
// spend, and this run's budget fit under Limit. The check and the insert
// are one transaction that holds the journal's write lock (SQLite's, or an
// advisory lock on PostgreSQL), so that processes sharing the journal
// cannot start runs past the cap between them.
type SpendCap struct {
	Since time.Time
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

// CreateRunCapped is CreateRun under c: it fails with an error wrapping
// ErrOverCap, saying what is committed, when the run would not fit.
func (s *Store) CreateRunCapped(ctx context.Context, r Run, c SpendCap) error {
	if r.ID == "" {
		return errors.New("journal: create run: empty id")
	}
	if r.Created.IsZero() {
		r.Created = time.Now()
	}
	if r.Updated.IsZero() {
		r.Updated = r.Created
	}
	if err := s.enqueueSync(ctx, &op{kind: opCreateRun, runID: r.ID, run: &r, spendCap: &c}); err != nil {
		return fmt.Errorf("create run %s: %w", r.ID, err)
	}
	return nil
}

// committedTx sums what the runs created since c.Since have spent or may
// still spend.
func (s *Store) committedTx(ctx context.Context, tx *sql.Tx, c *SpendCap) (int64, error) {
	if s.dialect == DialectPostgres {
		if _, err := tx.ExecContext(ctx, `SELECT pg_advisory_xact_lock($1)`, int64(capLock)); err != nil {
			return 0, err
		}
	}
	rows, err := tx.QueryContext(ctx, `SELECT status, cost_nanos, spec FROM hive_runs WHERE created_ns >= $1`, c.Since.UnixNano())
	if err != nil {
		return 0, err
	}
	defer rows.Close()
	var sum int64
	for rows.Next() {
		var status string
		var cost int64
		var spec []byte
		if err := rows.Scan(&status, &cost, &spec); err != nil {
			return 0, err
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

// createRunCappedTx checks o's cap and creates its run.
func (s *Store) createRunCappedTx(ctx context.Context, tx *sql.Tx, o *op) (soft, err error) {
	c := o.spendCap
	if c.BudgetNanos <= 0 {
		return fmt.Errorf("%w: a run needs a dollar budget under a spend cap", ErrOverCap), nil
	}
	if c.BudgetNanos > c.LimitNanos {
		return &CapError{Budget: c.BudgetNanos, Limit: c.LimitNanos}, nil
	}
	sum, err := s.committedTx(ctx, tx, c)
	if err != nil {
		return nil, err
	}
	if sum+c.BudgetNanos > c.LimitNanos {
		return &CapError{Committed: sum, Budget: c.BudgetNanos, Limit: c.LimitNanos}, nil
	}
	return createRunTx(ctx, tx, o.run)
}

// CapError is the detail of a run a SpendCap refused.
type CapError struct{ Committed, Budget, Limit int64 }

func (e *CapError) Error() string {
	return fmt.Sprintf("%v: runs started in the period have spent or may still spend $%.2f of $%.2f, and this run's budget is $%.2f",
		ErrOverCap, float64(e.Committed)/1e9, float64(e.Limit)/1e9, float64(e.Budget)/1e9)
}

func (e *CapError) Unwrap() error { return ErrOverCap }
