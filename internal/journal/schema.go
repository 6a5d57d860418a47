package journal

import (
	"context"
	"database/sql"
	"fmt"
	"strings"
)

// A migration is one schema version, as statements per dialect. Versions
// are applied in order, once, and recorded in hive_schema; append new ones,
// never edit old ones.
type migration struct {
	sqlite   []string
	postgres []string
}

// Every table carries the hive_ prefix so that it cannot collide with DBOS's
// tables when both live in one PostgreSQL database. Times are Unix
// nanoseconds; blobs the engine writes are BLOB/BYTEA, so that a byte string
// that is not valid UTF-8 cannot fail a whole batch on PostgreSQL.
//
// There are no foreign keys from nodes, events and steps to runs: they are
// written asynchronously, and one that arrived before its run row must not
// fail the batch it shares with others.
var migrations = []migration{
	{
		sqlite: []string{
			`CREATE TABLE hive_runs (
				id TEXT PRIMARY KEY,
				task TEXT NOT NULL,
				status TEXT NOT NULL,
				answer TEXT NOT NULL,
				error TEXT NOT NULL,
				spec BLOB,
				cost_nanos INTEGER NOT NULL,
				usage BLOB,
				created_ns INTEGER NOT NULL,
				updated_ns INTEGER NOT NULL
			)`,
			`CREATE INDEX hive_runs_created ON hive_runs (created_ns)`,
			// ord is the rowid: assigned on first insert, kept by upserts.
			`CREATE TABLE hive_nodes (
				ord INTEGER PRIMARY KEY,
				run_id TEXT NOT NULL,
				node_id TEXT NOT NULL,
				data BLOB NOT NULL,
				UNIQUE (run_id, node_id)
			)`,
			`CREATE TABLE hive_events (
				run_id TEXT NOT NULL,
				seq INTEGER NOT NULL,
				data BLOB NOT NULL,
				PRIMARY KEY (run_id, seq)
			) WITHOUT ROWID`,
			`CREATE TABLE hive_artifacts (
				run_id TEXT NOT NULL,
				id TEXT NOT NULL,
				node_id TEXT NOT NULL,
				name TEXT NOT NULL,
				content BLOB NOT NULL,
				created_ns INTEGER NOT NULL,
				PRIMARY KEY (run_id, id)
			)`,
			// A rowid table, not WITHOUT ROWID: see rebuildSteps.
			`CREATE TABLE hive_steps (
				run_id TEXT NOT NULL,
				key TEXT NOT NULL,
				data BLOB NOT NULL,
				UNIQUE (run_id, key)
			)`,
		},
		postgres: []string{
			`CREATE TABLE hive_runs (
				id TEXT PRIMARY KEY,
				task TEXT NOT NULL,
				status TEXT NOT NULL,
				answer TEXT NOT NULL,
				error TEXT NOT NULL,
				spec BYTEA,
				cost_nanos BIGINT NOT NULL,
				usage BYTEA,
				created_ns BIGINT NOT NULL,
				updated_ns BIGINT NOT NULL
			)`,
			`CREATE INDEX hive_runs_created ON hive_runs (created_ns)`,
			`CREATE TABLE hive_nodes (
				ord BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
				run_id TEXT NOT NULL,
				node_id TEXT NOT NULL,
				data BYTEA NOT NULL,
				UNIQUE (run_id, node_id)
			)`,
			`CREATE TABLE hive_events (
				run_id TEXT NOT NULL,
				seq BIGINT NOT NULL,
				data BYTEA NOT NULL,
				PRIMARY KEY (run_id, seq)
			)`,
			`CREATE TABLE hive_artifacts (
				run_id TEXT NOT NULL,
				id TEXT NOT NULL,
				node_id TEXT NOT NULL,
				name TEXT NOT NULL,
				content BYTEA NOT NULL,
				created_ns BIGINT NOT NULL,
				PRIMARY KEY (run_id, id)
			)`,
			`CREATE TABLE hive_steps (
				run_id TEXT NOT NULL,
				key TEXT NOT NULL,
				data BYTEA NOT NULL,
				PRIMARY KEY (run_id, key)
			)`,
		},
	},
	{
		// One row per live engine process: the liveness record that tells
		// a process whether the runs another executor holds may be
		// recovered (see executors.go).
		sqlite: []string{
			`CREATE TABLE hive_executors (
				id TEXT PRIMARY KEY,
				host TEXT NOT NULL,
				pid INTEGER NOT NULL,
				pid_start TEXT NOT NULL,
				started_ns INTEGER NOT NULL,
				beat_ns INTEGER NOT NULL
			)`,
		},
		postgres: []string{
			`CREATE TABLE hive_executors (
				id TEXT PRIMARY KEY,
				host TEXT NOT NULL,
				pid BIGINT NOT NULL,
				pid_start TEXT NOT NULL,
				started_ns BIGINT NOT NULL,
				beat_ns BIGINT NOT NULL
			)`,
		},
	},
	{
		// The audit chain (package audit): each event's link, NULL for
		// events journaled before this version, and each run's head, the
		// last link when the run was sealed, signed when a key is
		// configured.
		sqlite: []string{
			`ALTER TABLE hive_events ADD COLUMN link BLOB`,
			`CREATE TABLE hive_audit_heads (
				run_id TEXT PRIMARY KEY,
				seq INTEGER NOT NULL,
				hash BLOB NOT NULL,
				sig BLOB,
				key_id TEXT NOT NULL,
				sealed_ns INTEGER NOT NULL
			)`,
		},
		postgres: []string{
			`ALTER TABLE hive_events ADD COLUMN link BYTEA`,
			`CREATE TABLE hive_audit_heads (
				run_id TEXT PRIMARY KEY,
				seq BIGINT NOT NULL,
				hash BYTEA NOT NULL,
				sig BYTEA,
				key_id TEXT NOT NULL,
				sealed_ns BIGINT NOT NULL
			)`,
		},
	},
	{
		// Approvals a run waits for (see approvals.go).
		sqlite: []string{
			`CREATE TABLE hive_approvals (
				run_id TEXT NOT NULL,
				id TEXT NOT NULL,
				node_id TEXT NOT NULL,
				kind TEXT NOT NULL,
				what TEXT NOT NULL,
				status TEXT NOT NULL,
				note TEXT NOT NULL,
				decided_by TEXT NOT NULL,
				created_ns INTEGER NOT NULL,
				deadline_ns INTEGER NOT NULL,
				decided_ns INTEGER NOT NULL,
				PRIMARY KEY (run_id, id)
			)`,
			`CREATE INDEX hive_approvals_pending ON hive_approvals (status, created_ns)`,
		},
		postgres: []string{
			`CREATE TABLE hive_approvals (
				run_id TEXT NOT NULL,
				id TEXT NOT NULL,
				node_id TEXT NOT NULL,
				kind TEXT NOT NULL,
				what TEXT NOT NULL,
				status TEXT NOT NULL,
				note TEXT NOT NULL,
				decided_by TEXT NOT NULL,
				created_ns BIGINT NOT NULL,
				deadline_ns BIGINT NOT NULL,
				decided_ns BIGINT NOT NULL,
				PRIMARY KEY (run_id, id)
			)`,
			`CREATE INDEX hive_approvals_pending ON hive_approvals (status, created_ns)`,
		},
	},
	{
		// Spend caps (caps.go): who started each run (the API token's
		// name; empty for the command line) and when it was last admitted
		// under a cap, which a resumed run moves to the day it resumes.
		sqlite: []string{
			`ALTER TABLE hive_runs ADD COLUMN principal TEXT NOT NULL DEFAULT ''`,
			`ALTER TABLE hive_runs ADD COLUMN admitted_ns INTEGER NOT NULL DEFAULT 0`,
			`UPDATE hive_runs SET admitted_ns = created_ns`,
			`CREATE INDEX hive_runs_admitted ON hive_runs (admitted_ns)`,
		},
		postgres: []string{
			`ALTER TABLE hive_runs ADD COLUMN principal TEXT NOT NULL DEFAULT ''`,
			`ALTER TABLE hive_runs ADD COLUMN admitted_ns BIGINT NOT NULL DEFAULT 0`,
			`UPDATE hive_runs SET admitted_ns = created_ns`,
			`CREATE INDEX hive_runs_admitted ON hive_runs (admitted_ns)`,
		},
	},
	{
		// Whether a head was sealed after its run ended (final), and the
		// version of the message its signature signs: 1 for the heads
		// sealed before, whose signature does not cover final.
		sqlite: []string{
			`ALTER TABLE hive_audit_heads ADD COLUMN final INTEGER NOT NULL DEFAULT 0`,
			`ALTER TABLE hive_audit_heads ADD COLUMN version INTEGER NOT NULL DEFAULT 1`,
		},
		postgres: []string{
			`ALTER TABLE hive_audit_heads ADD COLUMN final BOOLEAN NOT NULL DEFAULT false`,
			`ALTER TABLE hive_audit_heads ADD COLUMN version INTEGER NOT NULL DEFAULT 1`,
		},
	},
}

// pgMigrationLock is the advisory lock key that serializes migrations of
// processes opening one PostgreSQL database at once.
const pgMigrationLock = 0x68697665 // "hive"

// migrate brings the schema up to date in one transaction.
func migrate(ctx context.Context, db *sql.DB, dialect string) (err error) {
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer func() {
		if err != nil {
			tx.Rollback()
		}
	}()
	if dialect == DialectPostgres {
		if _, err := tx.ExecContext(ctx, `SELECT pg_advisory_xact_lock($1)`, int64(pgMigrationLock)); err != nil {
			return fmt.Errorf("migrate: %w", err)
		}
	}
	if _, err := tx.ExecContext(ctx, `CREATE TABLE IF NOT EXISTS hive_schema (version INTEGER NOT NULL)`); err != nil {
		return fmt.Errorf("migrate: %w", err)
	}
	var have int
	if err := tx.QueryRowContext(ctx, `SELECT COALESCE(MAX(version), 0) FROM hive_schema`).Scan(&have); err != nil {
		return fmt.Errorf("migrate: %w", err)
	}
	if have > len(migrations) {
		return fmt.Errorf("migrate: database schema version %d is newer than this build knows (%d)", have, len(migrations))
	}
	for v := have + 1; v <= len(migrations); v++ {
		stmts := migrations[v-1].sqlite
		if dialect == DialectPostgres {
			stmts = migrations[v-1].postgres
		}
		for _, q := range stmts {
			if _, err := tx.ExecContext(ctx, q); err != nil {
				return fmt.Errorf("migrate to version %d: %w", v, err)
			}
		}
		if _, err := tx.ExecContext(ctx, `INSERT INTO hive_schema (version) VALUES ($1)`, v); err != nil {
			return fmt.Errorf("migrate: %w", err)
		}
	}
	return tx.Commit()
}

// rebuildSteps turns a SQLite journal's steps table made by an earlier
// build (WITHOUT ROWID, keyed by run and key) into the rowid table with a
// unique index that [migrations] now create. Step keys ("17/call-0",
// "task/17") do not arrive in key order, and a WITHOUT ROWID table keeps
// whole rows in key order: each group commit rewrote leaf pages all over
// the table. A rowid table appends rows; only the small index entries land
// out of order. The columns and the uniqueness are the same, so this is no
// schema version: builds before it read and write the new table as they
// did the old, and a PostgreSQL journal, shared by many processes, is
// untouched.
func rebuildSteps(ctx context.Context, db *sql.DB) (err error) {
	var ddl string
	if err := db.QueryRowContext(ctx, `SELECT sql FROM sqlite_master WHERE type = 'table' AND name = 'hive_steps'`).Scan(&ddl); err != nil {
		return fmt.Errorf("rebuild steps: %w", err)
	}
	if !strings.Contains(strings.ToUpper(ddl), "WITHOUT ROWID") {
		return nil
	}
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("rebuild steps: %w", err)
	}
	defer func() {
		if err != nil {
			tx.Rollback()
		}
	}()
	for _, q := range []string{
		`CREATE TABLE hive_steps_new (
			run_id TEXT NOT NULL,
			key TEXT NOT NULL,
			data BLOB NOT NULL,
			UNIQUE (run_id, key)
		)`,
		`INSERT INTO hive_steps_new (run_id, key, data) SELECT run_id, key, data FROM hive_steps`,
		`DROP TABLE hive_steps`,
		`ALTER TABLE hive_steps_new RENAME TO hive_steps`,
	} {
		if _, err := tx.ExecContext(ctx, q); err != nil {
			return fmt.Errorf("rebuild steps: %w", err)
		}
	}
	return tx.Commit()
}
