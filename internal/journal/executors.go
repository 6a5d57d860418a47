package journal

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"
)

// An Executor is the liveness record of one engine process: the durable
// executor's (DBOS's) executor id the process runs workflows under, where
// the process is, and when it last said it was alive.
//
// DBOS recovers the unfinished workflows of an executor id wholesale; it
// knows nothing of whether the process that holds them still runs. Several
// Hive processes share one journal (hive serve and a hive run in another
// terminal, or workers on many machines sharing PostgreSQL), so each takes
// its own executor id, records itself here while it lives, and recovers
// another's workflows only once [Executor.Dead] says that process is gone.
type Executor struct {
	ID   string
	Host string // os.Hostname
	PID  int
	// PIDStart tells a process from a later one that reuses its pid: the
	// start time field of /proc/PID/stat on Linux, "" where unknown.
	PIDStart string
	Started  time.Time
	Beat     time.Time // written every [BeatInterval] while the process lives
}

// Liveness timing. A process beats every BeatInterval; one on another host
// whose last beat is older than BeatTimeout is dead. Processes on the same
// host are judged by their pid at once, not by their beat.
const (
	BeatInterval = 3 * time.Second
	BeatTimeout  = 15 * time.Second
)

// ThisProcess returns the liveness record of the calling process under
// executor id id, started and beating now.
func ThisProcess(id string) Executor {
	host, _ := os.Hostname()
	pid := os.Getpid()
	start, _, _ := procStat(pid)
	now := time.Now()
	return Executor{ID: id, Host: host, PID: pid, PIDStart: start, Started: now, Beat: now}
}

// Dead reports whether ex's process is gone, as seen from a process on
// host at now. On the same host the pid decides: dead when no process
// has it, when the process is a zombie, or when it is a later process that
// reused the pid. Elsewhere, or where the process table cannot be read, a
// beat older than timeout does.
func (ex Executor) Dead(host string, now time.Time, timeout time.Duration) bool {
	if ex.Host == host && host != "" {
		if alive, known := processAlive(ex.PID, ex.PIDStart); known {
			return !alive
		}
	}
	return now.Sub(ex.Beat) > timeout
}

// processAlive reads /proc/PID/stat. known is false where there is no
// /proc (not Linux).
func processAlive(pid int, wantStart string) (alive, known bool) {
	start, state, err := procStat(pid)
	switch {
	case err == nil:
		// Z: a zombie, exited but not reaped; X: being reaped.
		if state == "Z" || state == "X" {
			return false, true
		}
		return wantStart == "" || start == wantStart, true
	case errors.Is(err, os.ErrNotExist):
		if _, _, err := procStat(os.Getpid()); err != nil {
			return false, false // no /proc here
		}
		return false, true
	}
	return false, false
}

// procStat returns the start time (field 22) and state (field 3) of
// /proc/PID/stat.
func procStat(pid int) (start, state string, err error) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return "", "", err
	}
	// "pid (comm) state ppid …": comm may hold spaces and parentheses.
	i := strings.LastIndexByte(string(b), ')')
	if i < 0 {
		return "", "", fmt.Errorf("/proc/%d/stat: unexpected format", pid)
	}
	f := strings.Fields(string(b[i+1:]))
	if len(f) < 20 {
		return "", "", fmt.Errorf("/proc/%d/stat: unexpected format", pid)
	}
	return f[19], f[0], nil
}

// PutExecutor records ex, replacing the record of the same id: the first
// beat of a process, and each one after (a record another process forgot
// while this one lived comes back whole).
func (s *Store) PutExecutor(ctx context.Context, ex Executor) error {
	if err := s.enqueueSync(ctx, &op{kind: opExecutor, exec: &ex}); err != nil {
		return fmt.Errorf("record executor %s: %w", ex.ID, err)
	}
	return nil
}

// ForgetExecutor deletes ex's record unless it beat since ex was read, so
// that forgetting a process judged dead cannot erase a live one's fresh beat.
func (s *Store) ForgetExecutor(ctx context.Context, ex Executor) error {
	if err := s.enqueueSync(ctx, &op{kind: opForgetExecutor, exec: &ex}); err != nil {
		return fmt.Errorf("forget executor %s: %w", ex.ID, err)
	}
	return nil
}

func putExecutorTx(ctx context.Context, tx *sql.Tx, ex *Executor) error {
	_, err := tx.ExecContext(ctx, `INSERT INTO hive_executors (id, host, pid, pid_start, started_ns, beat_ns)
		VALUES ($1, $2, $3, $4, $5, $6)
		ON CONFLICT (id) DO UPDATE SET host = excluded.host, pid = excluded.pid, pid_start = excluded.pid_start,
			started_ns = excluded.started_ns, beat_ns = excluded.beat_ns`,
		ex.ID, ex.Host, ex.PID, ex.PIDStart, ex.Started.UnixNano(), ex.Beat.UnixNano())
	return err
}

const executorColumns = `id, host, pid, pid_start, started_ns, beat_ns`

func scanExecutor(sc rowScanner) (Executor, error) {
	var (
		ex            Executor
		started, beat int64
	)
	if err := sc.Scan(&ex.ID, &ex.Host, &ex.PID, &ex.PIDStart, &started, &beat); err != nil {
		return Executor{}, err
	}
	ex.Started, ex.Beat = time.Unix(0, started), time.Unix(0, beat)
	return ex, nil
}

// Executor returns the record of executor id, or [ErrNotFound].
func (s *Store) Executor(ctx context.Context, id string) (Executor, error) {
	ex, err := scanExecutor(s.rdb.QueryRowContext(ctx, `SELECT `+executorColumns+` FROM hive_executors WHERE id = $1`, id))
	if errors.Is(err, sql.ErrNoRows) {
		return Executor{}, fmt.Errorf("executor %s: %w", id, ErrNotFound)
	}
	if err != nil {
		return Executor{}, fmt.Errorf("executor %s: %w", id, err)
	}
	return ex, nil
}

// Executors returns every executor record.
func (s *Store) Executors(ctx context.Context) ([]Executor, error) {
	rows, err := s.rdb.QueryContext(ctx, `SELECT `+executorColumns+` FROM hive_executors ORDER BY id`)
	if err != nil {
		return nil, fmt.Errorf("executors: %w", err)
	}
	defer rows.Close()
	var out []Executor
	for rows.Next() {
		ex, err := scanExecutor(rows)
		if err != nil {
			return nil, fmt.Errorf("executors: %w", err)
		}
		out = append(out, ex)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("executors: %w", err)
	}
	return out, nil
}
