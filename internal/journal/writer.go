package journal

import (
	"cmp"
	"context"
	"database/sql"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/hive-swarm/hive/internal/secret"
)

type opKind uint8

const (
	opNode opKind = iota
	opEvent
	opStep
	opCreateRun
	opUpdateRun
	opArtifact
	opFlush
	opExecutor       // upsert an executor's liveness record
	opForgetExecutor // delete it, if its beat is still the one seen
	opApproval       // request an approval, unless the run already did
	opDecide         // decide a pending approval
	opReadmitRun     // admit a resuming run under its spend caps
)

func (k opKind) String() string {
	return [...]string{"node", "event", "step", "create run", "update run", "artifact", "flush", "executor", "forget executor", "approval", "decide", "readmit run"}[k]
}

// An op is one queued write.
type op struct {
	kind   opKind
	runID  string
	key    string // node id, step key, artifact id
	seq    int64
	data   []byte
	run    *Run      // opCreateRun, opUpdateRun, opReadmitRun
	nodeID string    // opArtifact
	name   string    // opArtifact
	exec   *Executor // opExecutor, opForgetExecutor
	// approval is opApproval's request, opDecide's decision.
	approval *Approval
	// spendCaps, on an opCreateRun or opReadmitRun, must hold for the
	// run to be created or resumed.
	spendCaps []SpendCap
	// done receives the op's outcome once its batch is committed; nil for
	// asynchronous writes. Buffered (1): the writer never blocks on it.
	done chan error
}

func (o *op) size() int { return len(o.data) + 64 }

// enqueueAsync queues o without waiting for it; it blocks while the queue is
// full. After Close the write is dropped and logged.
func (s *Store) enqueueAsync(o *op) {
	s.redactOp(o)
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.closed {
		s.log.Warn("journal write after close dropped", "kind", o.kind.String(), "run", o.runID)
		return
	}
	s.queue <- o
}

// enqueueSync queues o and waits until its batch is committed.
func (s *Store) enqueueSync(ctx context.Context, o *op) error {
	s.redactOp(o)
	o.done = make(chan error, 1)
	if err := s.send(ctx, o); err != nil {
		return err
	}
	select {
	case err := <-o.done:
		return err
	case <-ctx.Done():
		return ctx.Err() // the write may still commit
	}
}

// Redact makes every later write replace the secrets r knows (a second
// line of defence: nothing a run journals should hold one). Call it before
// the store is shared.
func (s *Store) Redact(r *secret.Redactor) { s.redactor.Store(r) }

// redactOp replaces known secrets in what o writes.
func (s *Store) redactOp(o *op) {
	r := s.redactor.Load()
	if r.Empty() {
		return
	}
	o.data = r.Bytes(o.data)
	if o.approval != nil {
		a := *o.approval
		s.redactApproval(&a)
		o.approval = &a
	}
	if o.run != nil {
		run := *o.run
		run.Task, run.Answer, run.Error = r.String(run.Task), r.String(run.Answer), r.String(run.Error)
		run.Spec = r.Bytes(run.Spec)
		o.run = &run
	}
}

func (s *Store) send(ctx context.Context, o *op) error {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.closed {
		return ErrClosed
	}
	select {
	case s.queue <- o:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Flush waits until every write queued before the call is committed. It
// returns the first asynchronous write that failed since the last Flush.
func (s *Store) Flush(ctx context.Context) error {
	if err := s.enqueueSync(ctx, &op{kind: opFlush}); err != nil {
		return err
	}
	return s.takeAsyncErr()
}

// writer is the one goroutine that writes. It takes what is queued, up to
// maxBatch ops or maxBatchBytes, commits it as one transaction, and repeats
// until Close closes the queue and it is drained.
func (s *Store) writer() {
	defer close(s.done)
	defer s.ins.close()
	batch := make([]*op, 0, maxBatch)
	for {
		o, ok := <-s.queue
		if !ok {
			return
		}
		batch = append(batch[:0], o)
		bytes := o.size()
	gather:
		for len(batch) < maxBatch && bytes < maxBatchBytes {
			select {
			case o, ok := <-s.queue:
				if !ok {
					break gather // commit this batch; the next receive returns
				}
				batch = append(batch, o)
				bytes += o.size()
			default:
				break gather
			}
		}
		s.commit(batch)
		clear(batch) // drop references to written data
	}
}

// commit writes batch in one transaction. If the transaction fails, it
// writes each op in its own transaction, so that one bad write fails alone.
// Then it reports each outcome.
func (s *Store) commit(batch []*op) {
	ctx := context.Background()
	errs, err := s.apply(ctx, batch)
	if err != nil && len(batch) > 1 {
		s.log.Warn("journal batch failed; writing one by one", "ops", len(batch), "err", err)
		for i := range batch {
			one, err := s.apply(ctx, batch[i:i+1])
			if err == nil {
				err = one[0]
			}
			errs[i] = err
		}
	} else if err != nil {
		errs[0] = err
	}
	for i, o := range batch {
		err := errs[i]
		if o.done != nil {
			o.done <- err
			continue
		}
		if err != nil {
			err = fmt.Errorf("journal %s %s: %w", o.kind, o.runID, err)
			s.log.Error("journal write failed", "kind", o.kind.String(), "run", o.runID, "err", err)
			s.noteAsyncErr(err)
		}
	}
}

// apply runs batch in one transaction. A failed statement fails the whole
// transaction (err); an op that finds its row missing or present (a soft
// failure that leaves the transaction usable) gets its error in errs.
//
// Runs and artifacts are written in queue order; then nodes, events and
// steps as multi-row statements. They are different tables, so the order
// between the two groups is invisible once the transaction commits.
func (s *Store) apply(ctx context.Context, batch []*op) (errs []error, err error) {
	errs = make([]error, len(batch))
	tx, err := s.wdb.BeginTx(ctx, nil)
	if err != nil {
		return errs, err
	}
	defer func() {
		if err != nil {
			tx.Rollback()
		}
	}()

	var (
		nodes, events, steps []any
		nodeAt               = map[[2]string]int{} // (run, node) -> index of its data in nodes
		stepAt               = map[[2]string]int{}
		chain                = newLinker(s, tx)
		evOps                []*op
	)
	for i, o := range batch {
		switch o.kind {
		case opCreateRun:
			if o.spendCaps != nil {
				errs[i], err = s.createRunCappedTx(ctx, tx, o)
			} else {
				errs[i], err = createRunTx(ctx, tx, o.run)
			}
		case opUpdateRun:
			errs[i], err = updateRunTx(ctx, tx, o.run)
			chain.update(o.runID)
		case opReadmitRun:
			errs[i], err = s.readmitRunTx(ctx, tx, o)
			chain.update(o.runID)
		case opArtifact:
			_, err = tx.ExecContext(ctx, `INSERT INTO hive_artifacts (run_id, id, node_id, name, content, created_ns)
				VALUES ($1, $2, $3, $4, $5, $6)
				ON CONFLICT (run_id, id) DO UPDATE SET node_id = excluded.node_id, name = excluded.name, content = excluded.content`,
				o.runID, o.key, o.nodeID, o.name, nonNil(o.data), time.Now().UnixNano())
		case opNode:
			// A node put twice in one batch keeps the position of its
			// first put (its insertion order) and the data of its last.
			k := [2]string{o.runID, o.key}
			if j, ok := nodeAt[k]; ok {
				nodes[j] = nonNil(o.data)
				continue
			}
			nodeAt[k] = len(nodes) + 2
			nodes = append(nodes, o.runID, o.key, nonNil(o.data))
		case opEvent:
			evOps = append(evOps, o)
		case opStep:
			k := [2]string{o.runID, o.key}
			if j, ok := stepAt[k]; ok {
				steps[j] = nonNil(o.data)
				continue
			}
			stepAt[k] = len(steps) + 2
			steps = append(steps, o.runID, o.key, nonNil(o.data))
		case opExecutor:
			err = putExecutorTx(ctx, tx, o.exec)
		case opForgetExecutor:
			_, err = tx.ExecContext(ctx, `DELETE FROM hive_executors WHERE id = $1 AND beat_ns = $2`, o.exec.ID, o.exec.Beat.UnixNano())
		case opApproval:
			err = requestApprovalTx(ctx, tx, o.approval)
		case opDecide:
			errs[i], err = decideTx(ctx, tx, o.approval)
		case opFlush:
			chain.seal = true
		}
		if err != nil {
			return errs, err
		}
	}
	// Events are linked in seq order (the engine sends them so; a batch
	// may hold them in any). One that comes after a later one of its run
	// has no link: it is kept, outside the chain, unless the run already
	// has its seq, which is the usual case (a duplicate).
	slices.SortStableFunc(evOps, func(a, b *op) int { return cmp.Compare(a.seq, b.seq) })
	for _, o := range evOps {
		link, _, lerr := chain.link(ctx, o.runID, o.seq, o.data)
		if lerr != nil {
			return errs, lerr
		}
		events = append(events, o.runID, o.seq, nonNil(o.data), link)
	}
	for t, rows := range [numTables][]any{nodesTable: nodes, eventsTable: events, stepsTable: steps} {
		if err = s.ins.insert(ctx, tx, table(t), rows); err != nil {
			return errs, err
		}
	}
	if err = chain.sealAll(ctx); err != nil {
		return errs, err
	}
	if err = tx.Commit(); err != nil {
		return errs, err
	}
	chain.keep()
	chain.anchor()
	s.commits.Add(1)
	return errs, nil
}

// A table is one of the tables of (run_id, key, data) rows that the
// writer fills with multi-row upserts.
type table int

const (
	nodesTable table = iota
	eventsTable
	stepsTable
	numTables
)

// upserts are each table's INSERT, around its rows.
var upserts = [numTables]struct {
	head, tail string
	cols       int
}{
	nodesTable: {`INSERT INTO hive_nodes (run_id, node_id, data) VALUES `,
		` ON CONFLICT (run_id, node_id) DO UPDATE SET data = excluded.data`, 3},
	eventsTable: {`INSERT INTO hive_events (run_id, seq, data, link) VALUES `,
		` ON CONFLICT (run_id, seq) DO NOTHING`, 4},
	stepsTable: {`INSERT INTO hive_steps (run_id, key, data) VALUES `,
		` ON CONFLICT (run_id, key) DO UPDATE SET data = excluded.data`, 3},
}

// rowChunks are the row counts of the multi-row INSERTs the writer sends
// to SQLite, largest first: a fixed few, each prepared once (see
// [inserts]). On PostgreSQL, where each statement is a round trip and the
// driver caches statements by their text, a statement holds the whole
// batch, up to the largest count. That count keeps both well under their
// bind-parameter limits (32766 and 65535).
var rowChunks = [...]int{256, 64, 16, 4, 1}

// inserts are the writer's multi-row INSERTs on SQLite, prepared when the
// store opens and kept: parsing an INSERT of hundreds of rows in every
// batch was about a fifth of the journal's CPU. Used only by the writer
// goroutine (and Open, before it starts).
type inserts struct {
	numbered bool                                 // PostgreSQL's $N parameters
	stmts    [numTables][len(rowChunks)]*sql.Stmt // SQLite
}

// prepare makes the statements; on SQLite it prepares them on db, which
// must have a connection free.
func (in *inserts) prepare(ctx context.Context, db *sql.DB, dialect string) error {
	in.numbered = dialect == DialectPostgres
	if dialect != DialectSQLite {
		return nil
	}
	for t := range numTables {
		for i, n := range rowChunks {
			st, err := db.PrepareContext(ctx, insertSQL(upserts[t].head, upserts[t].cols, n, upserts[t].tail, false))
			if err != nil {
				in.close()
				return err
			}
			in.stmts[t][i] = st
		}
	}
	return nil
}

// close closes the prepared statements.
func (in *inserts) close() {
	for t := range in.stmts {
		for _, st := range in.stmts[t] {
			if st != nil {
				st.Close()
			}
		}
	}
}

// insert upserts args, t's columns a row, into t in tx.
func (in *inserts) insert(ctx context.Context, tx *sql.Tx, t table, args []any) error {
	w := upserts[t].cols
	for len(args) > 0 {
		rows := len(args) / w
		i := len(rowChunks) - 1
		for j, c := range rowChunks {
			if c <= rows {
				i = j
				break
			}
		}
		n := rowChunks[i]
		var err error
		if st := in.stmts[t][i]; st != nil {
			_, err = tx.StmtContext(ctx, st).ExecContext(ctx, args[:w*n]...)
		} else {
			n = min(rows, rowChunks[0])
			_, err = tx.ExecContext(ctx, insertSQL(upserts[t].head, w, n, upserts[t].tail, in.numbered), args[:w*n]...)
		}
		if err != nil {
			return err
		}
		args = args[w*n:]
	}
	return nil
}

// insertSQL returns head + n rows of ncols parameters + tail. SQLite gets
// anonymous "?" parameters: it resolves each "$N" by a linear search of
// the names seen so far, quadratic in a statement of hundreds of
// parameters.
func insertSQL(head string, ncols, n int, tail string, numbered bool) string {
	var b strings.Builder
	b.WriteString(head)
	for r := range n {
		if r > 0 {
			b.WriteString(", ")
		}
		b.WriteByte('(')
		for c := range ncols {
			if c > 0 {
				b.WriteString(", ")
			}
			if numbered {
				b.WriteByte('$')
				b.WriteString(strconv.Itoa(r*ncols + c + 1))
			} else {
				b.WriteByte('?')
			}
		}
		b.WriteByte(')')
	}
	b.WriteString(tail)
	return b.String()
}

// nonNil makes a nil blob an empty one, for NOT NULL columns.
func nonNil(b []byte) []byte {
	if b == nil {
		return []byte{}
	}
	return b
}
