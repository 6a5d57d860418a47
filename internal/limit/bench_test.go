package limit

import (
	"context"
	"runtime"
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
	for _, bc := range []struct {
		name string
		cfg  Config
	}{
		{"concurrency", Config{}},
		{"buckets", Config{RPM: 1 << 30, TPM: 1 << 40}}, // too high to bind
	} {
		b.Run(bc.name, func(b *testing.B) {
			l := New("m", bc.cfg, nil)
			ctx := b.Context()
			for b.Loop() {
				if err := l.Do(ctx, Worker, 100, nop); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkDoParallel has 64 callers share one limiter: with a limit far
// above them (every call takes the fast path, contending only on the
// lock), and with a limit of 8 that makes them queue (wake-ups and
// hand-offs). The baseline runs the same 64 callers without a limiter.
func BenchmarkDoParallel(b *testing.B) {
	callers := func(b *testing.B) { b.SetParallelism((64 + runtime.GOMAXPROCS(0) - 1) / runtime.GOMAXPROCS(0)) }
	b.Run("baseline", func(b *testing.B) {
		ctx := b.Context()
		callers(b)
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				nop(ctx)
			}
		})
	})
	for _, bc := range []struct {
		name  string
		limit int
	}{{"limit1024", 1024}, {"limit8", 8}} {
		b.Run(bc.name, func(b *testing.B) {
			l := New("m", Config{MaxConcurrency: bc.limit, InitialConcurrency: bc.limit}, nil)
			ctx := b.Context()
			callers(b)
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					if err := l.Do(ctx, Worker, 100, nop); err != nil {
						b.Error(err)
						return
					}
				}
			})
		})
	}
}
