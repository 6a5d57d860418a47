package journal

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"time"
)

// A Run is one job given to Hive: its row in the journal. Spec and Usage
// are the engine's JSON, stored as given.
type Run struct {
	ID        string
	Task      string
	Status    string
	Answer    string
	Error     string
	Spec      json.RawMessage
	CostNanos int64
	Usage     json.RawMessage
	Created   time.Time
	Updated   time.Time
	// Principal is who started the run: the name of the API token, empty
	// for the command line. Spend caps may be per principal.
	Principal string
	// Admitted is when the run was last admitted under a spend cap: its
	// creation, or the last time it was resumed. Zero means Created.
	Admitted time.Time
}

// MinPrefix is the shortest id prefix [Store.Run] resolves.
const MinPrefix = 4

// CreateRun records a new run. Zero Created means now; zero Updated means
// Created. It fails with [ErrExists] if the id is taken.
func (s *Store) CreateRun(ctx context.Context, r Run) error {
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
	if err := s.enqueueSync(ctx, &op{kind: opCreateRun, runID: r.ID, run: &r}); err != nil {
		return fmt.Errorf("create run %s: %w", r.ID, err)
	}
	return nil
}

// UpdateRun writes r's status, answer, error, cost and usage to the run
// r.ID, and now as its updated time (r.Updated is ignored: a run read
// back and written again must not keep its old time). It fails with
// [ErrNotFound] if there is no such run. Writes queued before it are
// committed with it.
func (s *Store) UpdateRun(ctx context.Context, r Run) error {
	r.Updated = time.Now()
	if err := s.enqueueSync(ctx, &op{kind: opUpdateRun, runID: r.ID, run: &r}); err != nil {
		return fmt.Errorf("update run %s: %w", r.ID, err)
	}
	return nil
}

func createRunTx(ctx context.Context, tx *sql.Tx, r *Run) (soft, err error) {
	res, err := tx.ExecContext(ctx, `INSERT INTO hive_runs
		(id, task, status, answer, error, spec, cost_nanos, usage, created_ns, updated_ns, principal, admitted_ns)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)
		ON CONFLICT (id) DO NOTHING`,
		r.ID, r.Task, r.Status, r.Answer, r.Error, nullBlob(r.Spec), r.CostNanos, nullBlob(r.Usage),
		r.Created.UnixNano(), r.Updated.UnixNano(), r.Principal, r.Admitted.UnixNano())
	if err != nil {
		return nil, err
	}
	return affected(res, ErrExists)
}

func updateRunTx(ctx context.Context, tx *sql.Tx, r *Run) (soft, err error) {
	res, err := tx.ExecContext(ctx, `UPDATE hive_runs
		SET status = $2, answer = $3, error = $4, cost_nanos = $5, usage = $6, updated_ns = $7
		WHERE id = $1`,
		r.ID, r.Status, r.Answer, r.Error, r.CostNanos, nullBlob(r.Usage), r.Updated.UnixNano())
	if err != nil {
		return nil, err
	}
	return affected(res, ErrNotFound)
}

// affected returns none as the soft error when res touched no row.
func affected(res sql.Result, none error) (soft, err error) {
	n, err := res.RowsAffected()
	if err != nil {
		return nil, err
	}
	if n == 0 {
		return none, nil
	}
	return nil, nil
}

// nullBlob stores an empty JSON value as NULL.
func nullBlob(b json.RawMessage) any {
	if len(b) == 0 {
		return nil
	}
	return []byte(b)
}

const runColumns = `id, task, status, answer, error, spec, cost_nanos, usage, created_ns, updated_ns, principal, admitted_ns`

type rowScanner interface{ Scan(dest ...any) error }

func scanRun(sc rowScanner) (Run, error) {
	var (
		r              Run
		spec, usage    []byte
		created, updat int64
		admitted       int64
	)
	if err := sc.Scan(&r.ID, &r.Task, &r.Status, &r.Answer, &r.Error, &spec, &r.CostNanos, &usage, &created, &updat, &r.Principal, &admitted); err != nil {
		return Run{}, err
	}
	if len(spec) > 0 {
		r.Spec = spec
	}
	if len(usage) > 0 {
		r.Usage = usage
	}
	r.Created, r.Updated, r.Admitted = time.Unix(0, created), time.Unix(0, updat), time.Unix(0, admitted)
	return r, nil
}

// Run returns the run with the given id or, failing that, the one run whose
// id starts with it when it has at least 4 characters (like git). It
// returns [ErrNotFound] when there is none and [ErrAmbiguous] when the
// prefix matches several.
func (s *Store) Run(ctx context.Context, id string) (Run, error) {
	r, err := scanRun(s.rdb.QueryRowContext(ctx, `SELECT `+runColumns+` FROM hive_runs WHERE id = $1`, id))
	if err == nil {
		return r, nil
	}
	if !errors.Is(err, sql.ErrNoRows) {
		return Run{}, fmt.Errorf("run %s: %w", id, err)
	}
	if len(id) < MinPrefix {
		return Run{}, fmt.Errorf("run %s: %w", id, ErrNotFound)
	}
	// substr, not LIKE: exact and case-sensitive on both dialects, with no
	// wildcard to escape. The runs table is small; a scan is fine.
	rows, err := s.rdb.QueryContext(ctx, `SELECT `+runColumns+` FROM hive_runs
		WHERE substr(id, 1, length(CAST($1 AS TEXT))) = CAST($1 AS TEXT) ORDER BY id LIMIT 2`, id)
	if err != nil {
		return Run{}, fmt.Errorf("run %s: %w", id, err)
	}
	defer rows.Close()
	var found []Run
	for rows.Next() {
		r, err := scanRun(rows)
		if err != nil {
			return Run{}, fmt.Errorf("run %s: %w", id, err)
		}
		found = append(found, r)
	}
	if err := rows.Err(); err != nil {
		return Run{}, fmt.Errorf("run %s: %w", id, err)
	}
	switch len(found) {
	case 0:
		return Run{}, fmt.Errorf("run %s: %w", id, ErrNotFound)
	case 1:
		return found[0], nil
	default:
		return Run{}, fmt.Errorf("run %s: %w (%s, %s, …)", id, ErrAmbiguous, found[0].ID, found[1].ID)
	}
}

// Runs returns up to limit runs (all when limit <= 0), newest first.
func (s *Store) Runs(ctx context.Context, limit int) ([]Run, error) {
	q := `SELECT ` + runColumns + ` FROM hive_runs ORDER BY created_ns DESC, id DESC`
	if limit > 0 {
		q += ` LIMIT ` + strconv.Itoa(limit)
	}
	rows, err := s.rdb.QueryContext(ctx, q)
	if err != nil {
		return nil, fmt.Errorf("runs: %w", err)
	}
	defer rows.Close()
	var runs []Run
	for rows.Next() {
		r, err := scanRun(rows)
		if err != nil {
			return nil, fmt.Errorf("runs: %w", err)
		}
		runs = append(runs, r)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("runs: %w", err)
	}
	return runs, nil
}
