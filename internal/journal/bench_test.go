package journal

import (
	"context"
	"fmt"
	"path/filepath"
	"testing"
	"time"
)

// benchEvent is the size of a typical journaled event (a node update).
var benchEvent = []byte(`{"type":"node","node":{"id":"w17","parent":"lead","model":"fast","status":"running","cost_nanos":123456},"cost_nanos":9876543}`)

// BenchmarkAppendEvent measures event throughput through the batched writer
// against the naive baseline of one transaction per event, on each dialect.
func BenchmarkAppendEvent(b *testing.B) {
	dialects := []struct {
		name string
		url  func(b *testing.B) string
	}{
		{"sqlite", func(b *testing.B) string { return filepath.Join(b.TempDir(), "bench.db") }},
		{"postgres", func(b *testing.B) string { return postgresURL(b) }},
	}
	for _, d := range dialects {
		b.Run(d.name, func(b *testing.B) {
			s := open(b, d.url(b))
			defer s.Close()
			ctx := context.Background()
			var round int

			b.Run("batched", func(b *testing.B) {
				round++
				run := fmt.Sprint("batched-", round)
				b.ReportAllocs()
				start := time.Now()
				for i := range b.N {
					s.AppendEvent(run, int64(i+1), benchEvent)
				}
				if err := s.Flush(ctx); err != nil {
					b.Fatal(err)
				}
				b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "events/s")
			})

			b.Run("naive", func(b *testing.B) {
				round++
				run := fmt.Sprint("naive-", round)
				b.ReportAllocs()
				start := time.Now()
				for i := range b.N {
					if err := naiveAppend(ctx, s, run, int64(i+1), benchEvent); err != nil {
						b.Fatal(err)
					}
				}
				b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "events/s")
			})
		})
	}
}

// naiveAppend inserts one event in a transaction of its own, on the same
// connection pool and settings the writer uses.
func naiveAppend(ctx context.Context, s *Store, runID string, seq int64, data []byte) error {
	tx, err := s.wdb.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	if _, err := tx.ExecContext(ctx, `INSERT INTO hive_events (run_id, seq, data) VALUES ($1, $2, $3)
		ON CONFLICT (run_id, seq) DO NOTHING`, runID, seq, data); err != nil {
		tx.Rollback()
		return err
	}
	return tx.Commit()
}
