// Package journal is Hive's own store: runs, the nodes of their trees, their
// event streams, artifacts and memoized steps, and the liveness records of
// the processes running them ([Executor]), on SQLite (the default, one
// file next to the binary's work) or PostgreSQL (many processes sharing one
// database).
//
// The durable executor (DBOS) keeps its own tables; this package keeps the
// ones Hive queries across runs and shows live. It lives beside DBOS rather
// than inside it: on SQLite in a sibling file ([Store.DBOSURL]), so that the
// two never contend for one writer lock; on PostgreSQL in the same database,
// where Hive's tables carry a hive_ prefix and DBOS uses its own schema
// ("dbos"), or the schema the URL's search_path names ([Store.DBOSSchema]),
// so that journals in different schemas of one database keep their
// workflows apart too.
//
// The swarm engine stores its own types here as JSON blobs, so the package
// knows nothing of nodes or events beyond their keys.
//
// # Writes
//
// Every write goes through one writer goroutine owned by the [Store], in the
// order it was queued, and the writer commits whatever is queued as one
// transaction (group commit, up to 2048 writes or 8 MiB per transaction):
// while one batch commits the next one gathers, so thousands of events a
// second cost a few transactions. [Store.PutNode] and
// [Store.AppendEvent] return as soon as the write is queued; the synchronous
// writes ([Store.CreateRun], [Store.UpdateRun], [Store.PutArtifact],
// [Store.PutStep]) and [Store.Flush] wait until their batch is committed.
// Because there is one queue, a synchronous write also commits every write
// queued before it: a run marked finished never shows stale nodes.
//
// The queue is bounded (8192 writes). When it is full — the database is
// slower than the producers — PutNode and AppendEvent block until the
// writer catches up rather than let memory grow without bound. The writer
// takes some 100k events/s on SQLite, far above what a swarm's model calls
// produce, so this is a safety net, not a throttle.
//
// "Committed" on SQLite means in the write-ahead log with synchronous=NORMAL:
// it survives the process being killed at any point, though a power loss
// may take back the last transactions. On PostgreSQL it means the server's
// own commit guarantee.
//
// Reads see committed data only; call [Store.Flush] first to read back
// asynchronous writes. An asynchronous write that fails is logged, and the
// first such failure is returned by the next Flush or Close.
package journal

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"

	_ "github.com/jackc/pgx/v5/stdlib" // registers "pgx"
	_ "modernc.org/sqlite"             // registers "sqlite"

	"github.com/hive-swarm/hive/internal/secret"
)

// Sentinel errors callers branch on.
var (
	ErrNotFound  = errors.New("journal: not found")
	ErrExists    = errors.New("journal: already exists")
	ErrAmbiguous = errors.New("journal: ambiguous id prefix")
	ErrClosed    = errors.New("journal: store closed")
)

// Dialects.
const (
	DialectSQLite   = "sqlite"
	DialectPostgres = "postgres"
)

// Tuning of the writer; see the package comment.
const (
	queueSize     = 8192
	maxBatch      = 2048
	maxBatchBytes = 8 << 20
)

// A Store is Hive's journal. It is safe for concurrent use. Open starts its
// writer goroutine; Close stops it.
type Store struct {
	log        *slog.Logger
	redactor   atomic.Pointer[secret.Redactor] // see Redact
	dialect    string
	dbosURL    string
	dbosSchema string
	wdb        *sql.DB // writes: used only by the writer goroutine (and Open)
	rdb        *sql.DB // reads; the same handle as wdb on PostgreSQL

	// mu guards closed and sending on queue: senders hold it for reading,
	// Close takes it for writing before it closes queue.
	mu     sync.RWMutex
	closed bool
	queue  chan *op

	done chan struct{} // closed when the writer goroutine returns
	ins  inserts       // the writer's statements; used only by the writer goroutine

	errMu    sync.Mutex
	asyncErr error // first failed asynchronous write since the last Flush; guarded by errMu

	commits atomic.Int64 // transactions committed by the writer (tests, benchmarks)

	audit  atomic.Pointer[AuditOptions] // see SetAudit
	chains map[string]*chainState       // the audit chains; used only by the writer goroutine
}

// Open opens the store at url, creating it and bringing its tables up to
// date when needed. url is a file path ("hive.db", "./runs/x.db"),
// "sqlite:///abs/path.db", "sqlite:rel.db", or a "postgres://…" /
// "postgresql://…" URL. A nil log discards.
//
// A new SQLite file is created with mode 0600, its directory with 0700: it
// holds prompts and answers.
func Open(ctx context.Context, url string, log *slog.Logger) (*Store, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	s := &Store{log: log, queue: make(chan *op, queueSize), done: make(chan struct{})}
	var err error
	if isPostgres(url) {
		err = s.openPostgres(ctx, url)
	} else {
		err = s.openSQLite(ctx, url)
	}
	if err != nil {
		return nil, fmt.Errorf("open journal: %w", err)
	}
	if err := migrate(ctx, s.wdb, s.dialect); err != nil {
		s.closeDBs()
		return nil, fmt.Errorf("open journal: %w", err)
	}
	if s.dialect == DialectSQLite {
		if err := rebuildSteps(ctx, s.wdb); err != nil {
			s.closeDBs()
			return nil, fmt.Errorf("open journal: %w", err)
		}
	}
	if err := s.ins.prepare(ctx, s.wdb, s.dialect); err != nil {
		s.closeDBs()
		return nil, fmt.Errorf("open journal: %w", err)
	}
	go s.writer()
	return s, nil
}

func isPostgres(u string) bool {
	return strings.HasPrefix(u, "postgres://") || strings.HasPrefix(u, "postgresql://")
}

func (s *Store) openPostgres(ctx context.Context, u string) error {
	db, err := sql.Open("pgx", u)
	if err != nil {
		return err
	}
	db.SetMaxOpenConns(8)
	db.SetMaxIdleConns(4)
	if err := db.PingContext(ctx); err != nil {
		db.Close()
		return err
	}
	s.dialect, s.dbosURL, s.wdb, s.rdb = DialectPostgres, u, db, db
	s.dbosSchema = searchSchema(u)
	return nil
}

// searchSchema returns the first schema of a PostgreSQL URL's search_path
// parameter as the server resolves it (folded to lower case unless quoted),
// or "" if it names none.
func searchSchema(u string) string {
	pu, err := url.Parse(u)
	if err != nil {
		return ""
	}
	first, _, _ := strings.Cut(pu.Query().Get("search_path"), ",")
	first = strings.TrimSpace(first)
	if q, ok := strings.CutPrefix(first, `"`); ok {
		first, _ = strings.CutSuffix(q, `"`)
	} else {
		first = strings.ToLower(first)
	}
	if first == "$user" {
		return ""
	}
	return first
}

// sqlitePath returns the absolute file path that u names.
func sqlitePath(u string) (string, error) {
	p := u
	if strings.HasPrefix(u, "sqlite:") || strings.HasPrefix(u, "sqlite3:") {
		pu, err := url.Parse(u)
		if err != nil {
			return "", err
		}
		if pu.Host != "" {
			return "", fmt.Errorf("sqlite URL %q has a host", u)
		}
		if pu.RawQuery != "" || pu.Fragment != "" {
			return "", fmt.Errorf("sqlite URL %q: query parameters are not supported", u)
		}
		p = pu.Opaque
		if p == "" {
			p = pu.Path
		}
	} else if strings.Contains(u, "://") {
		return "", fmt.Errorf("unsupported database URL scheme in %q (want a file path, sqlite: or postgres://)", u)
	}
	switch {
	case p == "":
		return "", errors.New("empty database path")
	case strings.HasPrefix(p, ":memory:") || strings.HasPrefix(p, "file:"):
		return "", fmt.Errorf("database path %q: in-memory and file: URI databases are not supported", p)
	case strings.ContainsRune(p, '?'):
		return "", fmt.Errorf("database path %q contains '?'", p)
	}
	return filepath.Abs(p)
}

// createPrivate creates path with mode 0600 if it does not exist. SQLite
// treats an empty file as an empty database, and gives its -wal and -shm
// files the mode of the database file.
func createPrivate(path string) error {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return err
	}
	return f.Close()
}

func (s *Store) openSQLite(ctx context.Context, u string) error {
	path, err := sqlitePath(u)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return err
	}
	dbosPath := path + "-dbos"
	// Both files hold prompts and answers: create them private before
	// SQLite (or DBOS) would create them with the umask's mode.
	for _, p := range []string{path, dbosPath} {
		if err := createPrivate(p); err != nil {
			return err
		}
	}
	const pragmas = "_pragma=busy_timeout(10000)&_pragma=foreign_keys(1)&_pragma=synchronous(NORMAL)"
	// One write connection, BEGIN IMMEDIATE: the writer never meets
	// SQLITE_BUSY from a read-to-write upgrade. journal_mode is persistent,
	// set once here before the read pool opens.
	wdb, err := sql.Open("sqlite", path+"?"+pragmas+"&_pragma=journal_mode(WAL)&_txlock=immediate")
	if err != nil {
		return err
	}
	wdb.SetMaxOpenConns(1)
	wdb.SetMaxIdleConns(1)
	if err := wdb.PingContext(ctx); err != nil {
		wdb.Close()
		return err
	}
	rdb, err := sql.Open("sqlite", path+"?"+pragmas+"&_pragma=query_only(1)")
	if err != nil {
		wdb.Close()
		return err
	}
	rdb.SetMaxOpenConns(4)
	rdb.SetMaxIdleConns(4)
	s.dialect, s.wdb, s.rdb = DialectSQLite, wdb, rdb
	s.dbosURL = (&url.URL{Scheme: "sqlite", Path: dbosPath}).String()
	return nil
}

// DBOSURL is the DatabaseURL DBOS should use: for SQLite the sibling file
// path+"-dbos" as "sqlite:///abs/path.db-dbos"; for PostgreSQL the store's
// own URL (DBOS keeps its tables in its own schema, [Store.DBOSSchema]).
func (s *Store) DBOSURL() string { return s.dbosURL }

// DBOSSchema is the PostgreSQL schema DBOS should keep its tables in: the
// first schema of the store URL's search_path, where Hive's own tables
// are too, or "" for DBOS's default ("dbos") when the URL names none and
// on SQLite.
func (s *Store) DBOSSchema() string { return s.dbosSchema }

// Dialect is [DialectSQLite] or [DialectPostgres].
func (s *Store) Dialect() string { return s.dialect }

// Close commits every queued write, stops the writer and closes the
// database. It returns the first asynchronous write failure not yet
// reported by Flush, if any. Writes after Close are dropped (synchronous
// ones return [ErrClosed]).
func (s *Store) Close() error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return ErrClosed
	}
	s.closed = true
	close(s.queue)
	s.mu.Unlock()
	<-s.done
	err := s.takeAsyncErr()
	if cerr := s.closeDBs(); err == nil {
		err = cerr
	}
	return err
}

func (s *Store) closeDBs() error {
	err := s.wdb.Close()
	if s.rdb != s.wdb {
		if rerr := s.rdb.Close(); err == nil {
			err = rerr
		}
	}
	return err
}

func (s *Store) takeAsyncErr() error {
	s.errMu.Lock()
	defer s.errMu.Unlock()
	err := s.asyncErr
	s.asyncErr = nil
	return err
}

func (s *Store) noteAsyncErr(err error) {
	s.errMu.Lock()
	defer s.errMu.Unlock()
	if s.asyncErr == nil {
		s.asyncErr = err
	}
}
