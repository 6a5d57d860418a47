package swarm

// This file is the engine's side of sharing a journal between processes:
// each engine runs under an executor id of its own, keeps a liveness
// record fresh in the journal, and recovers the runs of processes that
// are gone — never those of a live one.

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/dbos-inc/dbos-transact-golang/dbos"

	"github.com/hive-swarm/hive/internal/journal"
)

// legacyExecutorID is the one executor id every Hive process used before
// each took its own. It has no liveness record, so it counts as dead: its
// unfinished runs are recovered like those of any dead process.
const legacyExecutorID = "hive"

// register records this process as the holder of its executor id.
func (e *Engine) register(ctx context.Context) error {
	prev, err := e.store.Executor(ctx, e.self.ID)
	switch {
	case errors.Is(err, journal.ErrNotFound):
	case err != nil:
		return fmt.Errorf("read the executor records: %w", err)
	case !e.dead(prev, time.Now()):
		return fmt.Errorf("executor id %s is held by a live Hive process (pid %d on %s): give each process its own DBOS__VMID, or unset it", prev.ID, prev.PID, prev.Host)
	}
	if err := e.store.PutExecutor(ctx, e.self); err != nil {
		return fmt.Errorf("register the executor: %w", err)
	}
	return nil
}

// beat keeps this process's liveness record fresh until ctx ends.
func (e *Engine) beat(ctx context.Context) {
	defer close(e.beatDone)
	t := time.NewTicker(journal.BeatInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case now := <-t.C:
			ex := e.self
			ex.Beat = now
			if err := e.store.PutExecutor(ctx, ex); err != nil {
				if ctx.Err() == nil {
					e.log.Warn("executor beat", "executor", ex.ID, "err", err)
				}
				continue
			}
			e.lastBeat = now
		}
	}
}

// dead reports whether the process of ex is gone (see [journal.Executor.Dead]).
func (e *Engine) dead(ex journal.Executor, now time.Time) bool {
	return ex.Dead(e.self.Host, now, journal.BeatTimeout)
}

// holder returns the liveness record of executor id, and whether its
// process is gone: a record the journal lacks (the legacy id, a process
// that closed or was forgotten) is of a dead process.
func (e *Engine) holder(ctx context.Context, id string) (journal.Executor, bool, error) {
	ex, err := e.store.Executor(ctx, id)
	switch {
	case errors.Is(err, journal.ErrNotFound):
		return journal.Executor{ID: id}, true, nil
	case err != nil:
		return ex, false, err
	}
	return ex, e.dead(ex, time.Now()), nil
}

// recoverer is the method of DBOS's context that re-enqueues the pending
// workflows of given executor ids (DBOS's Conductor uses it).
type recoverer interface {
	RecoverPendingWorkflows(executorIDs []string) ([]dbos.WorkflowHandle[any], error)
}

// recoverDead recovers the unfinished runs of every dead executor and
// forgets the records of dead processes. It returns the recovered runs.
//
// Two processes may recover the same dead executor at once: DBOS puts its
// pending workflows back on a queue with one UPDATE … WHERE status =
// 'PENDING', and a queue runner claims each with one UPDATE … WHERE status
// = 'ENQUEUED', so whichever process commits second matches no row and
// each run is claimed, and executed, by one process only.
func (e *Engine) recoverDead(ctx context.Context) ([]string, error) {
	pending, err := dbos.ListWorkflows(e.dctx, dbos.WithFilterStatus(dbos.WorkflowStatusPending),
		dbos.WithFilterLoadInput(false), dbos.WithFilterLoadOutput(false))
	if err != nil {
		return nil, err
	}
	records, err := e.store.Executors(ctx)
	if err != nil {
		return nil, err
	}
	now := time.Now()
	known := map[string]journal.Executor{}
	var forget []journal.Executor
	for _, ex := range records {
		known[ex.ID] = ex
		if ex.ID != e.self.ID && e.dead(ex, now) {
			forget = append(forget, ex)
		}
	}
	var deadIDs []string
	seen := map[string]bool{e.self.ID: true}
	for _, w := range pending {
		id := w.ExecutorID
		if seen[id] {
			continue
		}
		seen[id] = true
		if ex, ok := known[id]; !ok || e.dead(ex, now) {
			deadIDs = append(deadIDs, id)
		}
	}
	recovered, err := e.recoverExecutors(deadIDs)
	if err != nil {
		return nil, err
	}
	for _, ex := range forget {
		if err := e.store.ForgetExecutor(ctx, ex); err != nil {
			e.log.Warn("forget a dead executor", "executor", ex.ID, "err", err)
		}
	}
	return recovered, nil
}

// recoverExecutors puts the pending workflows of executor ids back on
// DBOS's queue, for this or another live process to claim.
func (e *Engine) recoverExecutors(ids []string) ([]string, error) {
	if len(ids) == 0 {
		return nil, nil
	}
	r, ok := e.dctx.(recoverer)
	if !ok {
		return nil, errors.New("this DBOS version cannot recover other executors' workflows")
	}
	hs, err := r.RecoverPendingWorkflows(ids)
	if err != nil {
		return nil, err
	}
	out := make([]string, len(hs))
	for i, h := range hs {
		out[i] = h.GetWorkflowID()
	}
	if len(out) > 0 {
		e.log.Info("recovered the runs of stopped processes", "runs", len(out), "executors", ids)
	}
	return out, nil
}

// Recovered returns the runs of dead processes that New put back to run
// (in this process, or in another live one that claimed them first).
func (e *Engine) Recovered() []string { return e.recovered }

// claimWait bounds how long Resume waits for a recovered run to be
// claimed off DBOS's queue (its queue runner polls every second).
const claimWait = 10 * time.Second

// takeOver makes sure an unfinished run runs in this process: it recovers
// the run of a dead process and waits until a queue runner claims it. A
// run that a live process holds, or claims first, is an error.
func (e *Engine) takeOver(ctx context.Context, id string, st dbos.WorkflowStatus) error {
	deadline := time.Now().Add(claimWait)
	for {
		switch {
		case st.Status == dbos.WorkflowStatusPending && st.ExecutorID == e.self.ID:
			return nil
		case st.Status == dbos.WorkflowStatusPending:
			ex, dead, err := e.holder(ctx, st.ExecutorID)
			if err != nil {
				return fmt.Errorf("resume run %s: %w", id, err)
			}
			if !dead {
				return fmt.Errorf("run %s is running in another Hive process (pid %d on %s); cancel it there or wait", id, ex.PID, ex.Host)
			}
			if v := dbos.GetApplicationVersion(e.dctx); st.ApplicationVersion != v {
				// DBOS recovers only the workflows of its own version.
				return fmt.Errorf("run %s was left unfinished by a Hive of another version (%s, this one is %s); resume it with that version", id, st.ApplicationVersion, v)
			}
			if _, err := e.recoverExecutors([]string{st.ExecutorID}); err != nil {
				return fmt.Errorf("resume run %s: %w", id, err)
			}
			if ex.PID != 0 {
				if err := e.store.ForgetExecutor(ctx, ex); err != nil {
					e.log.Warn("forget a dead executor", "executor", ex.ID, "err", err)
				}
			}
		case st.Status != dbos.WorkflowStatusEnqueued:
			return nil // it ended meanwhile: Wait reads how
		}
		if time.Now().After(deadline) {
			return nil // still queued: it runs when a process claims it
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
		h, err := dbos.RetrieveWorkflow[Result](e.dctx, id)
		if err != nil {
			return fmt.Errorf("resume run %s: %w", id, err)
		}
		if st, err = h.GetStatus(); err != nil {
			return fmt.Errorf("resume run %s: %w", id, err)
		}
	}
}
