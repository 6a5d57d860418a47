package journal

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"
)

// testSpendCap: two stores on one journal (two processes, as far as the
// database can tell) race to start 30 runs of $1 under a $10 cap, with a
// finished run of $0.50 and a running one that may spend $2 already
// there: exactly 7 more start, and each refusal says what is committed.
func testSpendCap(t *testing.T, url string) {
	ctx := context.Background()
	a := openClosed(t, url)
	b := openClosed(t, url)
	since := time.Now().Add(-time.Minute)
	final := func(st string) bool { return st == "done" }
	const dollar = int64(1e9)
	if err := a.CreateRun(ctx, Run{ID: "old-done", Task: "x", Status: "done", CostNanos: dollar / 2}); err != nil {
		t.Fatal(err)
	}
	if err := a.CreateRun(ctx, Run{ID: "old-running", Task: "x", Status: "running", CostNanos: dollar / 4, Spec: []byte(`{"budget_nanos":2000000000}`)}); err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	var mu sync.Mutex
	started, refused := 0, 0
	for i := range 30 {
		s := a
		if i%2 == 1 {
			s = b
		}
		wg.Go(func() {
			err := s.CreateRunCapped(ctx, Run{ID: fmt.Sprintf("r%02d", i), Task: "x", Status: "running", Spec: []byte(`{"budget_nanos":1000000000}`)},
				SpendCap{Since: since, LimitNanos: 10 * dollar, BudgetNanos: dollar, Final: final})
			mu.Lock()
			defer mu.Unlock()
			var ce *CapError
			switch {
			case err == nil:
				started++
			case errors.As(err, &ce) && errors.Is(err, ErrOverCap):
				refused++
				if ce.Committed < 9*dollar || ce.Limit != 10*dollar {
					t.Errorf("a refusal says %+v", ce)
				}
			default:
				t.Errorf("create: %v", err)
			}
		})
	}
	wg.Wait()
	if started != 7 || refused != 23 {
		t.Fatalf("%d started, %d refused; want 7 and 23 ($0.50 spent + $2 held + 7 × $1 ≤ $10)", started, refused)
	}
	err := a.CreateRunCapped(ctx, Run{ID: "nobudget", Task: "x", Status: "running"}, SpendCap{Since: since, LimitNanos: 100 * dollar, Final: final})
	if !errors.Is(err, ErrOverCap) {
		t.Fatalf("a run without a budget under a cap: %v", err)
	}
}

// A budget near 2^63 nanos neither wraps the sum around nor lets later
// runs in: the huge run is refused, and so is one after a huge running
// run written past the cap.
func TestSpendCapOverflow(t *testing.T) {
	ctx := context.Background()
	s := openClosed(t, t.TempDir()+"/hive.db")
	since := time.Now().Add(-time.Minute)
	final := func(st string) bool { return st == "done" }
	const dollar = int64(1e9)
	huge := int64(1<<63 - 2)
	err := s.CreateRunCapped(ctx, Run{ID: "huge", Task: "x", Status: "running"}, SpendCap{Since: since, LimitNanos: 10 * dollar, BudgetNanos: huge, Final: final})
	if !errors.Is(err, ErrOverCap) {
		t.Fatalf("a huge budget: %v", err)
	}
	if err := s.CreateRun(ctx, Run{ID: "old", Task: "x", Status: "running", Spec: []byte(fmt.Sprintf(`{"budget_nanos":%d}`, huge))}); err != nil {
		t.Fatal(err)
	}
	for i := range 3 {
		err := s.CreateRunCapped(ctx, Run{ID: fmt.Sprint("r", i), Task: "x", Status: "running"}, SpendCap{Since: since, LimitNanos: 10 * dollar, BudgetNanos: dollar, Final: final})
		if !errors.Is(err, ErrOverCap) {
			t.Fatalf("a run after a huge one: %v", err)
		}
	}
}
