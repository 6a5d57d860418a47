package journal

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"
)

// An Approval is something a run waits for a person to allow: a task the
// policy's screen held, a report, a tool call. The run asks once (under a
// key of its own, so that a resumed run finds its request again) and
// waits; a person decides with hive approve, the API or the page. The
// first decision stands.
type Approval struct {
	RunID  string
	ID     string // the run's key for it: "task", "NODE/report-…", "NODE/tool-…"
	NodeID string
	Kind   string // task, report, tool
	What   string // what the person is asked to allow, in words
	Status string // pending, approved, denied, expired
	Note   string // the person's reason
	By     string // who decided
	// Created is when it was asked for, Deadline when a pending one
	// expires (zero: never), Decided when it was decided.
	Created, Deadline, Decided time.Time
}

// Approval statuses.
const (
	ApprovalPending  = "pending"
	ApprovalApproved = "approved"
	ApprovalDenied   = "denied"
	ApprovalExpired  = "expired"
)

// ErrDecided is a decision on an approval that was already decided.
var ErrDecided = errors.New("already decided")

// RequestApproval records a pending approval unless the run already asked
// under a.ID, and returns the approval as the journal holds it (the
// earlier request, decided or not, when there is one).
func (s *Store) RequestApproval(ctx context.Context, a Approval) (Approval, error) {
	if a.Created.IsZero() {
		a.Created = time.Now()
	}
	a.Status, a.Note, a.By = ApprovalPending, "", ""
	o := &op{kind: opApproval, runID: a.RunID, key: a.ID, approval: &a}
	if err := s.enqueueSync(ctx, o); err != nil {
		return Approval{}, fmt.Errorf("request approval %s/%s: %w", a.RunID, a.ID, err)
	}
	return s.Approval(ctx, a.RunID, a.ID)
}

// Decide records the decision on a pending approval: status is approved,
// denied or expired. It fails with ErrDecided when the approval is no
// longer pending, and ErrNotFound when there is none.
func (s *Store) Decide(ctx context.Context, runID, id, status, note, by string) error {
	switch status {
	case ApprovalApproved, ApprovalDenied, ApprovalExpired:
	default:
		return fmt.Errorf("decide %s/%s: status %q", runID, id, status)
	}
	a := &Approval{RunID: runID, ID: id, Status: status, Note: note, By: by, Decided: time.Now()}
	if err := s.enqueueSync(ctx, &op{kind: opDecide, runID: runID, key: id, approval: a}); err != nil {
		return fmt.Errorf("decide %s/%s: %w", runID, id, err)
	}
	return nil
}

// redactApproval replaces known secrets in what an approval stores.
func (s *Store) redactApproval(a *Approval) {
	r := s.redactor.Load()
	if r.Empty() {
		return
	}
	a.What, a.Note = r.String(a.What), r.String(a.Note)
}

func requestApprovalTx(ctx context.Context, tx *sql.Tx, a *Approval) error {
	var deadline int64
	if !a.Deadline.IsZero() {
		deadline = a.Deadline.UnixNano()
	}
	_, err := tx.ExecContext(ctx, `INSERT INTO hive_approvals
		(run_id, id, node_id, kind, what, status, note, decided_by, created_ns, deadline_ns, decided_ns)
		VALUES ($1, $2, $3, $4, $5, $6, '', '', $7, $8, 0)
		ON CONFLICT (run_id, id) DO NOTHING`,
		a.RunID, a.ID, a.NodeID, a.Kind, a.What, a.Status, a.Created.UnixNano(), deadline)
	return err
}

func decideTx(ctx context.Context, tx *sql.Tx, a *Approval) (soft, err error) {
	// A person's decision counts only before the deadline: after it the
	// request has expired, whether or not the run has noticed yet.
	res, err := tx.ExecContext(ctx, `UPDATE hive_approvals SET status = $3, note = $4, decided_by = $5, decided_ns = $6
		WHERE run_id = $1 AND id = $2 AND status = 'pending' AND ($3 = 'expired' OR deadline_ns = 0 OR deadline_ns > $6)`,
		a.RunID, a.ID, a.Status, a.Note, a.By, a.Decided.UnixNano())
	if err != nil {
		return nil, err
	}
	if n, err := res.RowsAffected(); err != nil || n == 1 {
		return nil, err
	}
	var status string
	switch err := tx.QueryRowContext(ctx, `SELECT status FROM hive_approvals WHERE run_id = $1 AND id = $2`, a.RunID, a.ID).Scan(&status); {
	case errors.Is(err, sql.ErrNoRows):
		return ErrNotFound, nil
	case err != nil:
		return nil, err
	}
	if status == ApprovalPending {
		// Past its deadline: it expires now, and the late decision is
		// refused as one that came after the request was decided.
		if _, err := tx.ExecContext(ctx, `UPDATE hive_approvals SET status = 'expired', note = 'no decision before the deadline', decided_by = 'hive', decided_ns = $3
			WHERE run_id = $1 AND id = $2 AND status = 'pending'`, a.RunID, a.ID, a.Decided.UnixNano()); err != nil {
			return nil, err
		}
		status = ApprovalExpired
	}
	return fmt.Errorf("%w (%s)", ErrDecided, status), nil
}

const approvalCols = `run_id, id, node_id, kind, what, status, note, decided_by, created_ns, deadline_ns, decided_ns`

func scanApproval(sc interface{ Scan(...any) error }) (Approval, error) {
	var a Approval
	var created, deadline, decided int64
	if err := sc.Scan(&a.RunID, &a.ID, &a.NodeID, &a.Kind, &a.What, &a.Status, &a.Note, &a.By, &created, &deadline, &decided); err != nil {
		return a, err
	}
	a.Created = time.Unix(0, created)
	if deadline != 0 {
		a.Deadline = time.Unix(0, deadline)
	}
	if decided != 0 {
		a.Decided = time.Unix(0, decided)
	}
	return a, nil
}

// Approval returns approval id of run runID, or ErrNotFound.
func (s *Store) Approval(ctx context.Context, runID, id string) (Approval, error) {
	a, err := scanApproval(s.rdb.QueryRowContext(ctx, `SELECT `+approvalCols+` FROM hive_approvals WHERE run_id = $1 AND id = $2`, runID, id))
	if errors.Is(err, sql.ErrNoRows) {
		return a, ErrNotFound
	}
	if err != nil {
		return a, fmt.Errorf("approval %s/%s: %w", runID, id, err)
	}
	return a, nil
}

// Approvals returns the approvals of run runID (of every run when runID is
// empty), the pending ones only unless all, oldest first.
func (s *Store) Approvals(ctx context.Context, runID string, all bool) ([]Approval, error) {
	q := `SELECT ` + approvalCols + ` FROM hive_approvals WHERE ($1 = '' OR run_id = $1)`
	if !all {
		q += ` AND status = 'pending'`
	}
	rows, err := s.rdb.QueryContext(ctx, q+` ORDER BY created_ns, run_id, id`, runID)
	if err != nil {
		return nil, fmt.Errorf("approvals: %w", err)
	}
	defer rows.Close()
	var out []Approval
	for rows.Next() {
		a, err := scanApproval(rows)
		if err != nil {
			return nil, fmt.Errorf("approvals: %w", err)
		}
		out = append(out, a)
	}
	return out, rows.Err()
}
