// Package pgtest gives a test a PostgreSQL schema of its own, on the
// server that HIVE_TEST_POSTGRES names (default: the local one CI runs
// against), dropped when the test ends.
package pgtest

import (
	"context"
	"database/sql"
	"fmt"
	"os"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	_ "github.com/jackc/pgx/v5/stdlib" // registers "pgx"
)

// DefaultURL is the server tests use when HIVE_TEST_POSTGRES is unset.
const DefaultURL = "postgres://postgres@127.0.0.1:5432/test?sslmode=disable"

var schemas atomic.Int64

// Schema creates a fresh schema and returns a URL whose search_path is
// that schema, and the schema's name. It skips the test when the server
// cannot be reached.
func Schema(t testing.TB) (url, schema string) {
	t.Helper()
	base := os.Getenv("HIVE_TEST_POSTGRES")
	if base == "" {
		base = DefaultURL
	}
	db, err := sql.Open("pgx", base)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := db.PingContext(ctx); err != nil {
		db.Close()
		t.Skipf("PostgreSQL not reachable at %s (set HIVE_TEST_POSTGRES): %v", redact(base), err)
	}
	schema = fmt.Sprintf("hive_test_%d_%d_%d", os.Getpid(), time.Now().UnixNano(), schemas.Add(1))
	if _, err := db.ExecContext(ctx, `CREATE SCHEMA `+schema); err != nil {
		db.Close()
		t.Fatal(err)
	}
	t.Cleanup(func() {
		defer db.Close()
		if _, err := db.Exec(`DROP SCHEMA ` + schema + ` CASCADE`); err != nil {
			t.Errorf("drop schema %s: %v", schema, err)
		}
	})
	sep := "?"
	if strings.Contains(base, "?") {
		sep = "&"
	}
	return base + sep + "search_path=" + schema, schema
}

// redact hides a password in a URL for messages.
func redact(u string) string {
	if i, j := strings.Index(u, "://"), strings.LastIndex(u, "@"); i >= 0 && j > i {
		if k := strings.Index(u[i+3:j], ":"); k >= 0 {
			return u[:i+3+k] + ":***" + u[j:]
		}
	}
	return u
}
