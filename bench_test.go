package limit

import (
	"context"
	"testing"
)

func nop(context.Context) (int64, error) { return 0, nil }

// BenchmarkBaseline is the cost of calling the function itself, for
// comparison with the limiter's overhead below.
func BenchmarkBaseline(b *testing.B) {
	ctx := b.Context()
	for b.Loop() {
		nop(ctx)
	}
}

// BenchmarkDo measures Do on an idle limiter: the fast path, one caller.
func BenchmarkDo(b *testing.B) {
	l := New("m", Config{}, nil)
	ctx := b.Context()
	for b.Loop() {
		if err := l.Do(ctx, Worker, 100, nop); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkDoBuckets adds the RPM and TPM buckets, with limits too high to
// bind.
func BenchmarkDoBuckets(b *testing.B) {
	l := New("m", Config{RPM: 1 << 30, TPM: 1 << 30}, nil)
	ctx := b.Context()
	for b.Loop() {
		if err := l.Do(ctx, Worker, 100, nop); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkDoParallel has 64 callers share a limiter whose limit, 16, makes
// them queue: admission, wake-ups and releases under contention.
func BenchmarkDoParallel(b *testing.B) {
	for _, bc := range []struct {
		name string
		max  int
	}{{"uncontended", 1024}, {"queued", 16}} {
		b.Run(bc.name, func(b *testing.B) {
			l := New("m", Config{MaxConcurrency: bc.max, InitialConcurrency: bc.max}, nil)
			ctx := b.Context()
			b.SetParallelism(64 / max(1, b.N/b.N*2)) // 64 callers on 2 procs: see below
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					if err := l.Do(ctx, Priority(0), 100, nop); err != nil {
						b.Error(err)
						return
					}
				}
			})
		})
	}
}
