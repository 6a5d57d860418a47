package journal

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
)

// PutNode records the state of node nodeID of run runID, replacing the
// previous one. It is asynchronous: it queues the write (blocking only while
// the queue is full). It keeps data until the write is done, without a
// copy: the caller must not change data afterwards.
func (s *Store) PutNode(runID, nodeID string, data []byte) {
	s.enqueueAsync(&op{kind: opNode, runID: runID, key: nodeID, data: data})
}

// Nodes returns the committed nodes of run runID, in the order of their
// first PutNode.
func (s *Store) Nodes(ctx context.Context, runID string) ([]json.RawMessage, error) {
	rows, err := s.rdb.QueryContext(ctx, `SELECT data FROM hive_nodes WHERE run_id = $1 ORDER BY ord`, runID)
	if err != nil {
		return nil, fmt.Errorf("nodes of %s: %w", runID, err)
	}
	defer rows.Close()
	var nodes []json.RawMessage
	for rows.Next() {
		var b []byte
		if err := rows.Scan(&b); err != nil {
			return nil, fmt.Errorf("nodes of %s: %w", runID, err)
		}
		nodes = append(nodes, b)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("nodes of %s: %w", runID, err)
	}
	return nodes, nil
}

// An Event is one entry of a run's event stream.
type Event struct {
	Seq  int64
	Data json.RawMessage
}

// AppendEvent records event seq of run runID. It is asynchronous like
// [Store.PutNode], and like it keeps data. (runID, seq) is unique: a seq
// already recorded (or queued) is ignored, the first write wins.
func (s *Store) AppendEvent(runID string, seq int64, data []byte) {
	s.enqueueAsync(&op{kind: opEvent, runID: runID, seq: seq, data: data})
}

// Events returns up to limit (all when limit <= 0) committed events of run
// runID with seq > afterSeq, in ascending seq order.
func (s *Store) Events(ctx context.Context, runID string, afterSeq int64, limit int) ([]Event, error) {
	q := `SELECT seq, data FROM hive_events WHERE run_id = $1 AND seq > $2 ORDER BY seq`
	if limit > 0 {
		q += ` LIMIT ` + strconv.Itoa(limit)
	}
	rows, err := s.rdb.QueryContext(ctx, q, runID, afterSeq)
	if err != nil {
		return nil, fmt.Errorf("events of %s: %w", runID, err)
	}
	defer rows.Close()
	var evs []Event
	for rows.Next() {
		var e Event
		var b []byte
		if err := rows.Scan(&e.Seq, &b); err != nil {
			return nil, fmt.Errorf("events of %s: %w", runID, err)
		}
		e.Data = b
		evs = append(evs, e)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("events of %s: %w", runID, err)
	}
	return evs, nil
}

// LastSeq returns the highest committed event seq of run runID, 0 if none.
func (s *Store) LastSeq(ctx context.Context, runID string) (int64, error) {
	var seq int64
	err := s.rdb.QueryRowContext(ctx, `SELECT COALESCE(MAX(seq), 0) FROM hive_events WHERE run_id = $1`, runID).Scan(&seq)
	if err != nil {
		return 0, fmt.Errorf("last seq of %s: %w", runID, err)
	}
	return seq, nil
}

// PutArtifact records artifact id of run runID, made by node nodeID,
// replacing one with the same id. It returns once committed.
func (s *Store) PutArtifact(ctx context.Context, runID, id, nodeID, name string, content []byte) error {
	o := &op{kind: opArtifact, runID: runID, key: id, nodeID: nodeID, name: name, data: bytes.Clone(content)}
	if err := s.enqueueSync(ctx, o); err != nil {
		return fmt.Errorf("put artifact %s/%s: %w", runID, id, err)
	}
	return nil
}

// Artifact returns artifact id of run runID, or [ErrNotFound].
func (s *Store) Artifact(ctx context.Context, runID, id string) (name, nodeID string, content []byte, err error) {
	err = s.rdb.QueryRowContext(ctx, `SELECT name, node_id, content FROM hive_artifacts WHERE run_id = $1 AND id = $2`,
		runID, id).Scan(&name, &nodeID, &content)
	if errors.Is(err, sql.ErrNoRows) {
		err = ErrNotFound
	}
	if err != nil {
		return "", "", nil, fmt.Errorf("artifact %s/%s: %w", runID, id, err)
	}
	if content == nil {
		content = []byte{}
	}
	return name, nodeID, content, nil
}

// Step returns the memoized result recorded under key for run runID, and
// whether there is one.
func (s *Store) Step(ctx context.Context, runID, key string) ([]byte, bool, error) {
	var data []byte
	err := s.rdb.QueryRowContext(ctx, `SELECT data FROM hive_steps WHERE run_id = $1 AND key = $2`, runID, key).Scan(&data)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, false, nil
	}
	if err != nil {
		return nil, false, fmt.Errorf("step %s/%s: %w", runID, key, err)
	}
	if data == nil {
		data = []byte{}
	}
	return data, true, nil
}

// PutStepAsync memoizes data under key like PutStep, without waiting for
// the commit: for results that are also recoverable another way (a task
// whose calls are each journaled), where a lost write costs time, not
// money. Like [Store.PutNode], it keeps data.
func (s *Store) PutStepAsync(runID, key string, data []byte) {
	s.enqueueAsync(&op{kind: opStep, runID: runID, key: key, data: data})
}

// PutStep memoizes data under key for run runID (replacing an earlier
// result), so that a resumed run does not repeat the step. The write is
// durable when PutStep returns nil: it shares a group commit with other
// writes and waits for it.
func (s *Store) PutStep(ctx context.Context, runID, key string, data []byte) error {
	if err := s.enqueueSync(ctx, &op{kind: opStep, runID: runID, key: key, data: bytes.Clone(data)}); err != nil {
		return fmt.Errorf("put step %s/%s: %w", runID, key, err)
	}
	return nil
}

// Steps returns every memoized result of run runID by key: what a resumed
// run reads once instead of asking for each step.
func (s *Store) Steps(ctx context.Context, runID string) (map[string][]byte, error) {
	rows, err := s.rdb.QueryContext(ctx, `SELECT key, data FROM hive_steps WHERE run_id = $1`, runID)
	if err != nil {
		return nil, fmt.Errorf("steps of %s: %w", runID, err)
	}
	defer rows.Close()
	out := map[string][]byte{}
	for rows.Next() {
		var key string
		var data []byte
		if err := rows.Scan(&key, &data); err != nil {
			return nil, fmt.Errorf("steps of %s: %w", runID, err)
		}
		if data == nil {
			data = []byte{}
		}
		out[key] = data
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("steps of %s: %w", runID, err)
	}
	return out, nil
}
