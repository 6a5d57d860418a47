package journal

import (
	"context"
	"errors"
	"fmt"
	"strings"
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

// testReadmit: a cancelled run counts for what it spent, so resuming it
// must admit it again for its whole budget; and yesterday's run resumed
// today counts today. Under a $2.50 cap with $1 runs: start a and b,
// cancel a having spent $0.25, start c: a's resumption, which may spend
// its whole budget again, is refused and leaves it cancelled until c ends
// cheaply; yesterday's run y then resumes only when b ends too.
func testReadmit(t *testing.T, url string) {
	ctx := context.Background()
	s := openClosed(t, url)
	const dollar = int64(1e9)
	day := time.Now().UTC().Truncate(24 * time.Hour)
	final := func(st string) bool { return st == "done" || st == "cancelled" }
	cp := SpendCap{Since: day, LimitNanos: 5 * dollar / 2, BudgetNanos: dollar, Final: final}
	spec := []byte(`{"budget_nanos":1000000000}`)
	for _, id := range []string{"a", "b"} {
		if err := s.CreateRunCapped(ctx, Run{ID: id, Task: "x", Status: "running", Spec: spec}, cp); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.UpdateRun(ctx, Run{ID: "a", Status: "cancelled", CostNanos: dollar / 4}); err != nil {
		t.Fatal(err)
	}
	for _, id := range []string{"c"} {
		if err := s.CreateRunCapped(ctx, Run{ID: id, Task: "x", Status: "running", Spec: spec}, cp); err != nil {
			t.Fatal(err)
		}
	}
	// $0.25 + $1 + $1 committed: another $1 run does not fit, nor does a
	// resumption of a ($1 + $1 + $1).
	if err := s.CreateRunCapped(ctx, Run{ID: "d", Task: "x", Status: "running", Spec: spec}, cp); !errors.Is(err, ErrOverCap) {
		t.Fatalf("d: %v", err)
	}
	err := s.ReadmitRun(ctx, "a", "running", cp)
	var ce *CapError
	if !errors.As(err, &ce) || ce.Committed != 2*dollar || ce.Budget != dollar {
		t.Fatalf("resuming a with the cap full: %v (%+v)", err, ce)
	}
	if r, _ := s.Run(ctx, "a"); r.Status != "cancelled" {
		t.Fatalf("a refused resumption left status %q", r.Status)
	}
	// c ends having spent $0.10: a fits again, counted at its budget.
	if err := s.UpdateRun(ctx, Run{ID: "c", Status: "done", CostNanos: dollar / 10}); err != nil {
		t.Fatal(err)
	}
	if err := s.ReadmitRun(ctx, "a", "running", cp); err != nil {
		t.Fatalf("resuming a: %v", err)
	}
	if r, _ := s.Run(ctx, "a"); r.Status != "running" || r.Admitted.Before(r.Created) {
		t.Fatalf("a after resumption: %q, admitted %v, created %v", r.Status, r.Admitted, r.Created)
	}
	// Yesterday's interrupted run y does not count today until it
	// resumes; then it counts for its budget: $1 (a) + $1 (b) + $0.10 (c)
	// + $1 (y) > $2.50.
	y := day.Add(-time.Hour)
	if err := s.CreateRun(ctx, Run{ID: "y", Task: "x", Status: "interrupted", Spec: spec, Created: y}); err != nil {
		t.Fatal(err)
	}
	if err := s.ReadmitRun(ctx, "y", "running", cp); !errors.Is(err, ErrOverCap) {
		t.Fatalf("resuming yesterday's run with today's cap full: %v", err)
	}
	if err := s.UpdateRun(ctx, Run{ID: "b", Status: "done", CostNanos: dollar / 10}); err != nil {
		t.Fatal(err)
	}
	if err := s.ReadmitRun(ctx, "y", "running", cp); err != nil {
		t.Fatalf("resuming yesterday's run: %v", err)
	}
	if err := s.ReadmitRun(ctx, "nosuch", "running", cp); !errors.Is(err, ErrNotFound) {
		t.Fatalf("resuming no run: %v", err)
	}
}

// testPrincipalCap: a principal's cap counts only its runs, beside the
// cap of all runs.
func testPrincipalCap(t *testing.T, url string) {
	ctx := context.Background()
	s := openClosed(t, url)
	const dollar = int64(1e9)
	since := time.Now().Add(-time.Minute)
	spec := []byte(`{"budget_nanos":1000000000}`)
	caps := func(who string, limit int64) []SpendCap {
		return []SpendCap{{Since: since, LimitNanos: 10 * dollar, BudgetNanos: dollar},
			{Since: since, Principal: who, LimitNanos: limit, BudgetNanos: dollar}}
	}
	for i := range 2 {
		if err := s.CreateRunCapped(ctx, Run{ID: fmt.Sprint("ci", i), Task: "x", Status: "running", Spec: spec, Principal: "ci"}, caps("ci", 2*dollar)...); err != nil {
			t.Fatal(err)
		}
	}
	err := s.CreateRunCapped(ctx, Run{ID: "ci2", Task: "x", Status: "running", Spec: spec, Principal: "ci"}, caps("ci", 2*dollar)...)
	var ce *CapError
	if !errors.As(err, &ce) || ce.Principal != "ci" || ce.Committed != 2*dollar {
		t.Fatalf("ci's third run: %v", err)
	}
	if !strings.Contains(err.Error(), "ci's runs") {
		t.Fatalf("the refusal does not name the principal: %v", err)
	}
	// Another token's runs do not count against ci's cap, but do against
	// the cap of all.
	for i := range 8 {
		if err := s.CreateRunCapped(ctx, Run{ID: fmt.Sprint("ops", i), Task: "x", Status: "running", Spec: spec, Principal: "ops"}, caps("ops", 100*dollar)...); err != nil {
			t.Fatalf("ops run %d: %v", i, err)
		}
	}
	err = s.CreateRunCapped(ctx, Run{ID: "ops8", Task: "x", Status: "running", Spec: spec, Principal: "ops"}, caps("ops", 100*dollar)...)
	if !errors.As(err, &ce) || ce.Principal != "" {
		t.Fatalf("the tenth run under a $10 cap of all: %v", err)
	}
	if r, err := s.Run(ctx, "ci1"); err != nil || r.Principal != "ci" {
		t.Fatalf("ci1's principal: %q, %v", r.Principal, err)
	}
}
