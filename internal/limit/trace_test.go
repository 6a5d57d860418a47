package limit

import (
	"context"
	"testing"
	"testing/synctest"
	"time"

	"github.com/hive-swarm/hive/internal/llm"
)

// TestTrace checks that a traced call learns the time it waited, for a
// pause another call caused and for its own retry, its retries and the
// 429s it was answered; an untraced call on the same limiter changes
// nothing in the trace.
func TestTrace(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		l := New("m", Config{}, testLogger(t))
		// An untraced call that makes the limiter pause everyone for 3 s.
		if err := l.Do(t.Context(), Worker, 0, func(context.Context) (int64, error) {
			return 0, &llm.Error{Kind: llm.KindAuth, RetryAfter: 3 * time.Second}
		}); llm.KindOf(err) != llm.KindAuth {
			t.Fatalf("got %v, want the auth error", err)
		}
		var tr Trace
		ctx := WithTrace(t.Context(), &tr)
		n := 0
		if err := l.Do(ctx, Worker, 0, func(context.Context) (int64, error) {
			n++
			if n == 1 {
				return 0, rateLimited(2 * time.Second)
			}
			return 0, nil
		}); err != nil {
			t.Fatal(err)
		}
		if tr.Retries() != 1 {
			t.Errorf("retries %d, want 1", tr.Retries())
		}
		// The auth error of the untraced call is not the traced call's,
		// and not a 429 either.
		if tr.RateLimited() != 1 {
			t.Errorf("rate limited %d, want 1", tr.RateLimited())
		}
		// 3 s of the pause, then 2 s of retry-after (the 429 also pauses
		// the limiter for 2 s, which overlaps the retry's own wait).
		if got := tr.Waited(); got != 5*time.Second {
			t.Errorf("waited %v, want 5s", got)
		}
	})
}
