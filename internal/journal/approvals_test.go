package journal

import (
	"context"
	"errors"
	"testing"
	"time"
)

// testApprovals: a request is recorded once (asking again returns the
// first, decided or not), the first decision stands, and the pending list
// drops what was decided.
func testApprovals(t *testing.T, url string) {
	ctx := context.Background()
	s := openClosed(t, url)
	deadline := time.Now().Add(time.Hour).Truncate(time.Microsecond)
	a, err := s.RequestApproval(ctx, Approval{RunID: "r1", ID: "w1/tool-0-1", NodeID: "w1", Kind: "tool", What: "github.create_issue", Deadline: deadline})
	if err != nil {
		t.Fatal(err)
	}
	if a.Status != ApprovalPending || a.What != "github.create_issue" || !a.Deadline.Equal(deadline) {
		t.Fatalf("requested: %+v", a)
	}
	if _, err := s.RequestApproval(ctx, Approval{RunID: "r2", ID: "task", Kind: "task", What: "a task"}); err != nil {
		t.Fatal(err)
	}
	pending, err := s.Approvals(ctx, "", false)
	if err != nil || len(pending) != 2 {
		t.Fatalf("pending: %v %v", pending, err)
	}
	if err := s.Decide(ctx, "r1", "w1/tool-0-1", ApprovalApproved, "looks fine", "ada"); err != nil {
		t.Fatal(err)
	}
	if err := s.Decide(ctx, "r1", "w1/tool-0-1", ApprovalDenied, "changed my mind", "bob"); !errors.Is(err, ErrDecided) {
		t.Fatalf("a second decision: %v", err)
	}
	if err := s.Decide(ctx, "r1", "nothing", ApprovalDenied, "", "bob"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("deciding nothing: %v", err)
	}
	// A decision after the deadline is refused, and the request expires
	// then, even when the run waiting on it has not noticed yet.
	if _, err := s.RequestApproval(ctx, Approval{RunID: "r3", ID: "task", Kind: "task", What: "late", Deadline: time.Now().Add(-time.Second)}); err != nil {
		t.Fatal(err)
	}
	if err := s.Decide(ctx, "r3", "task", ApprovalApproved, "", "mallory"); !errors.Is(err, ErrDecided) {
		t.Fatalf("a decision after the deadline: %v", err)
	}
	if late, _ := s.Approval(ctx, "r3", "task"); late.Status != ApprovalExpired || late.By != "hive" {
		t.Fatalf("after a late decision: %+v", late)
	}
	// The run asks again after a restart: it gets the decision.
	again, err := s.RequestApproval(ctx, Approval{RunID: "r1", ID: "w1/tool-0-1", NodeID: "w1", Kind: "tool", What: "other words"})
	if err != nil || again.Status != ApprovalApproved || again.Note != "looks fine" || again.By != "ada" || again.What != "github.create_issue" || again.Decided.IsZero() {
		t.Fatalf("asked again: %+v %v", again, err)
	}
	if pending, _ := s.Approvals(ctx, "", false); len(pending) != 1 || pending[0].RunID != "r2" {
		t.Fatalf("pending after a decision: %+v", pending)
	}
	if all, _ := s.Approvals(ctx, "r1", true); len(all) != 1 {
		t.Fatalf("all of r1: %+v", all)
	}
}
