package treeview

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/hive-swarm/hive/internal/llm"
	"github.com/hive-swarm/hive/internal/price"
	"github.com/hive-swarm/hive/internal/swarm"
	"github.com/hive-swarm/hive/internal/verify"
)

func node(id, parent string, s swarm.Status, cost price.Amount) swarm.Node {
	n := swarm.Node{ID: id, Parent: parent, Role: swarm.RoleWorker, Name: "t-" + id, Model: "cheap", Status: s, Cost: cost,
		Usage: llm.Usage{InputTokens: 1200, OutputTokens: 34}, Calls: 1}
	if parent == "" {
		n.Role, n.Name, n.Model = swarm.RoleLead, "", "lead"
	}
	return n
}

func smallTree() *Tree {
	lead := node("lead", "", swarm.StatusRunning, 3000)
	lead.Usage = llm.Usage{InputTokens: 45_000, OutputTokens: 2_100}
	one := node("1", "lead", swarm.StatusEscalated, 100)
	one.Error = "tests failed:\n  want 3"
	esc := node("1^1", "lead", swarm.StatusDone, 900)
	esc.Model = "strong"
	esc.Verdict = &verify.Verdict{Outcome: "pass", Verifier: "tests"}
	two := node("2", "lead", swarm.StatusRepairing, 50)
	two.Attempt = 1
	sub := node("2.1", "2", swarm.StatusFailed, 0)
	// Creation order puts the escalation after "2", as the engine does.
	return FromNodes("r1", []swarm.Node{lead, one, two, sub, esc})
}

func TestRenderGolden(t *testing.T) {
	tr := smallTree()
	tr.Status = swarm.StatusRunning
	var b bytes.Buffer
	n, err := tr.Render(&b, Options{Budget: price.Dollar})
	if err != nil {
		t.Fatal(err)
	}
	want := `run r1 running · 5 nodes: 1 running, 1 repairing, 1 done, 1 escalated, 1 failed · $0.000004 of $1.00 · 50k in / 2.2k out tokens
lead running   lead · lead · 45k/2.1k tok · $0.000003
  1 escalated t-1 · cheap · 1.2k/34 tok · $0.0000001 · tests failed: want 3
  1^1 done      t-1^1 · strong · 1.2k/34 tok · $0.000001 · pass (tests)
  2 repairing t-2 · cheap · 1.2k/34 tok · $0.00000005 · repair 1
    2.1 failed    t-2.1 · cheap · 1.2k/34 tok · $0
`
	if got := b.String(); got != want {
		t.Fatalf("render:\n%s\nwant:\n%s", got, want)
	}
	if n != 6 {
		t.Fatalf("Render returned %d lines, want 6", n)
	}
	if strings.Contains(b.String(), "\x1b[") {
		t.Fatal("ANSI escape without Color")
	}
	if tr.String() != strings.Replace(want, " of $1.00", "", 1) {
		t.Fatalf("String() differs from Render without budget:\n%s", tr.String())
	}
}

func TestRenderColor(t *testing.T) {
	var b bytes.Buffer
	smallTree().Render(&b, Options{Color: true})
	for _, want := range []string{
		"lead \x1b[33mrunning\x1b[0m   lead",
		"1^1 \x1b[32mdone\x1b[0m",
		"1 \x1b[35mescalated\x1b[0m",
		"2 \x1b[36mrepairing\x1b[0m",
		"2.1 \x1b[31mfailed\x1b[0m",
	} {
		if !strings.Contains(b.String(), want) {
			t.Errorf("coloured render lacks %q:\n%q", want, b.String())
		}
	}
}

func TestRenderWidth(t *testing.T) {
	var b bytes.Buffer
	smallTree().Render(&b, Options{Width: 30, Color: true})
	for _, line := range strings.Split(strings.TrimSuffix(b.String(), "\n"), "\n") {
		plain := stripANSI(line)
		if n := len([]rune(plain)); n > 30 {
			t.Errorf("line has %d columns, want ≤ 30: %q", n, plain)
		}
	}
}

func stripANSI(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == 0x1b {
			for i < len(s) && !(s[i] >= 'A' && s[i] <= 'Z' || s[i] >= 'a' && s[i] <= 'z') {
				i++
			}
			continue
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

func TestApplyEvents(t *testing.T) {
	tr := New("r9")
	lead := node("lead", "", swarm.StatusPending, 0)
	w := node("1", "lead", swarm.StatusRunning, 0)
	evs := []swarm.Event{
		{Seq: 1, Type: swarm.EventRunStarted, Status: swarm.StatusRunning},
		{Seq: 2, Type: swarm.EventNode, Node: &lead},
		{Seq: 3, Type: swarm.EventNode, Node: &w},
	}
	for _, ev := range evs {
		if !tr.Apply(ev) {
			t.Errorf("event %d changed nothing", ev.Seq)
		}
	}
	w2 := w
	w2.Status, w2.Cost = swarm.StatusDone, 700
	tr.Apply(swarm.Event{Seq: 4, Type: swarm.EventUsage, Node: &w2, CostNanos: 700})
	tr.Apply(swarm.Event{Seq: 5, Type: swarm.EventRunFinished, Status: swarm.StatusDone, CostNanos: 700})
	if tr.Len() != 2 || tr.Nodes()[1].Status != swarm.StatusDone {
		t.Fatalf("nodes after events: %+v", tr.Nodes())
	}
	if tr.Status != swarm.StatusDone || tr.Totals().Cost != 700 {
		t.Fatalf("run status %s cost %d, want done 700", tr.Status, tr.Totals().Cost)
	}
	if tr.Apply(swarm.Event{Seq: 6, Type: swarm.EventBudget, CostNanos: 700}) {
		t.Fatal("an event with no news reported a change")
	}
}

// bigTree is a lead with n-1 workers: most done, a few running, repairing
// and failed, spread through the list.
func bigTree(n int, failed int) *Tree {
	nodes := []swarm.Node{node("lead", "", swarm.StatusRunning, 0)}
	for i := 1; i < n; i++ {
		s := swarm.StatusDone
		switch {
		case i%400 == 7:
			s = swarm.StatusRunning
		case i%500 == 11:
			s = swarm.StatusRepairing
		case i%(n/max(failed, 1)) == 3 && failed > 0:
			s = swarm.StatusFailed
		case i%300 == 5:
			s = swarm.StatusCancelled
		}
		nodes = append(nodes, node(fmt.Sprint(i), "lead", s, 10))
	}
	return FromNodes("rbig", nodes)
}

func TestCollapseKeepsLiveWork(t *testing.T) {
	tr := bigTree(2000, 3)
	tot := tr.Totals()
	var b bytes.Buffer
	lines, _ := tr.Render(&b, Options{MaxLines: 30, Hint: "expand with hive show rbig"})
	out := b.String()
	if got := strings.Count(out, "\n"); got != lines || lines > 30 {
		t.Fatalf("%d lines (Render says %d), want ≤ 30:\n%s", got, lines, out)
	}
	for _, s := range []swarm.Status{swarm.StatusRunning, swarm.StatusRepairing, swarm.StatusFailed} {
		// Each live or failed node has its own line (plus one for the lead,
		// which is running).
		want := tot.ByStatus[s]
		if got := strings.Count(out, " "+string(s)+" "); got < want {
			t.Errorf("%d %s nodes, %d shown:\n%s", want, s, got, out)
		}
	}
	summary := fmt.Sprintf("  … %d done, %d cancelled (expand with hive show rbig)\n", tot.ByStatus[swarm.StatusDone], tot.ByStatus[swarm.StatusCancelled])
	if !strings.Contains(out, summary) {
		t.Fatalf("no summary line %q in:\n%s", summary, out)
	}
}

func TestCollapseFoldsFailedWhenNeeded(t *testing.T) {
	tr := bigTree(2000, 100)
	tot := tr.Totals()
	var b bytes.Buffer
	lines, _ := tr.Render(&b, Options{MaxLines: 30})
	out := b.String()
	if lines > 30 {
		t.Fatalf("%d lines, want ≤ 30", lines)
	}
	if !strings.Contains(out, fmt.Sprintf("%d failed", tot.ByStatus[swarm.StatusFailed])) {
		t.Fatalf("failed nodes not counted in a summary:\n%s", out)
	}
	if got, want := strings.Count(out, " running "), tot.ByStatus[swarm.StatusRunning]; got != want {
		t.Fatalf("%d running lines, want %d:\n%s", got, want, out)
	}
}

func TestCollapseCutsAsLastResort(t *testing.T) {
	nodes := []swarm.Node{node("lead", "", swarm.StatusRunning, 0)}
	for i := 1; i < 2000; i++ {
		nodes = append(nodes, node(fmt.Sprint(i), "lead", swarm.StatusRunning, 0))
	}
	var b bytes.Buffer
	lines, _ := FromNodes("r", nodes).Render(&b, Options{MaxLines: 30})
	if lines != 30 || !strings.Contains(b.String(), "… 1972 more lines") {
		t.Fatalf("%d lines:\n%s", lines, b.String())
	}
}

func TestNoCollapseWithoutLimit(t *testing.T) {
	tr := bigTree(2000, 3)
	var b bytes.Buffer
	lines, _ := tr.Render(&b, Options{})
	if lines != 2001 {
		t.Fatalf("%d lines, want 2001 (header + every node)", lines)
	}
}

func TestNestedCollapse(t *testing.T) {
	// A finished sub-tree folds as one unit; a sub-tree with live work
	// stays open and folds inside.
	nodes := []swarm.Node{node("lead", "", swarm.StatusRunning, 0)}
	for i := 1; i <= 3; i++ {
		nodes = append(nodes, node(fmt.Sprint(i), "lead", swarm.StatusDone, 0))
		for j := 1; j <= 20; j++ {
			s := swarm.StatusDone
			if i == 3 && j == 20 {
				s = swarm.StatusRunning
			}
			nodes = append(nodes, node(fmt.Sprintf("%d.%d", i, j), fmt.Sprint(i), s, 0))
		}
	}
	var b bytes.Buffer
	FromNodes("r", nodes).Render(&b, Options{MaxLines: 10})
	want := `lead running   lead · lead · 1.2k/34 tok · $0
  3 done      t-3 · cheap · 1.2k/34 tok · $0
    3.20 running   t-3.20 · cheap · 1.2k/34 tok · $0
    … 19 done (expand with hive show)
  … 42 done (expand with hive show)
`
	if _, body, _ := strings.Cut(b.String(), "\n"); body != want {
		t.Fatalf("got:\n%s\nwant:\n%s", body, want)
	}
}

func TestLiveRedrawsInPlace(t *testing.T) {
	tr := smallTree()
	var b bytes.Buffer
	l := NewLive(&b, tr)
	l.Size = func() (int, int) { return 100, 40 }
	if err := l.Draw(); err != nil {
		t.Fatal(err)
	}
	first := b.String()
	if strings.Contains(first, "\x1b[J") {
		t.Fatal("first draw erased something")
	}
	b.Reset()
	l.Draw()
	if !strings.HasPrefix(b.String(), "\x1b[6F\x1b[J") {
		t.Fatalf("second draw does not go back 6 lines: %q", b.String()[:20])
	}
	// A short terminal gets a collapsed tree that fits.
	tr = bigTree(2000, 3)
	b.Reset()
	l = NewLive(&b, tr)
	l.Size = func() (int, int) { return 60, 25 }
	l.Draw()
	if n := strings.Count(b.String(), "\n"); n > 24 {
		t.Fatalf("%d lines on a 25-line terminal", n)
	}
}

func TestLiveFollow(t *testing.T) {
	ch := make(chan swarm.Event, 100)
	lead := node("lead", "", swarm.StatusRunning, 0)
	ch <- swarm.Event{Seq: 1, Type: swarm.EventRunStarted, Status: swarm.StatusRunning}
	ch <- swarm.Event{Seq: 2, Type: swarm.EventNode, Node: &lead}
	for i := 1; i <= 50; i++ {
		n := node(fmt.Sprint(i), "lead", swarm.StatusDone, 10)
		ch <- swarm.Event{Seq: int64(2 + i), Type: swarm.EventNode, Node: &n, CostNanos: int64(10 * i)}
	}
	ch <- swarm.Event{Seq: 53, Type: swarm.EventRunFinished, Status: swarm.StatusDone, CostNanos: 500}
	close(ch)
	var b countingWriter
	l := NewLive(&b, New("r"))
	l.Size = func() (int, int) { return 100, 200 }
	seen := 0
	if err := l.Follow(context.Background(), ch, func(swarm.Event) { seen++ }); err != nil {
		t.Fatal(err)
	}
	if seen != 53 || l.Tree().Len() != 51 || l.Tree().Status != swarm.StatusDone {
		t.Fatalf("saw %d events, %d nodes, status %s", seen, l.Tree().Len(), l.Tree().Status)
	}
	// 53 events arrived at once: far fewer draws than events.
	if b.writes > 3 {
		t.Fatalf("%d draws for one burst of events", b.writes)
	}
	if !strings.Contains(b.last, "run r done · 51 nodes") {
		t.Fatalf("final draw: %q", b.last)
	}
}

func TestLiveFollowStopsWithContext(t *testing.T) {
	ch := make(chan swarm.Event)
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	l := NewLive(io.Discard, New("r"))
	l.Size = func() (int, int) { return 80, 24 }
	if err := l.Follow(ctx, ch, nil); err != context.DeadlineExceeded {
		t.Fatalf("Follow = %v, want deadline exceeded", err)
	}
}

type countingWriter struct {
	writes int
	last   string
}

func (w *countingWriter) Write(p []byte) (int, error) {
	w.writes++
	w.last = string(p)
	return len(p), nil
}

func TestTokens(t *testing.T) {
	for _, c := range []struct {
		n    int64
		want string
	}{{0, "0"}, {999, "999"}, {1200, "1.2k"}, {45_000, "45k"}, {1_500_000, "1.5M"}} {
		if got := tokens(c.n); got != c.want {
			t.Errorf("tokens(%d) = %q, want %q", c.n, got, c.want)
		}
	}
}

func BenchmarkRender(b *testing.B) {
	for _, c := range []struct {
		name  string
		nodes int
		lines int
	}{
		{"nodes=20/full", 20, 0}, // the baseline: a small swarm
		{"nodes=2000/full", 2000, 0},
		{"nodes=2000/collapsed", 2000, 40},
	} {
		b.Run(c.name, func(b *testing.B) {
			tr := bigTree(c.nodes, 3)
			o := Options{Color: true, MaxLines: c.lines, Width: 120}
			for b.Loop() {
				tr.Render(io.Discard, o)
			}
		})
	}
}

// BenchmarkLiveDraw is one redraw of a live view of 2,000 nodes on a
// 50-line terminal, as the live mode does up to 10 times a second.
func BenchmarkLiveDraw(b *testing.B) {
	l := NewLive(io.Discard, bigTree(2000, 3))
	l.Size = func() (int, int) { return 120, 50 }
	for b.Loop() {
		l.Draw()
	}
}

// The header tells what prompt caching saved, what hedging cost and how
// often rate limits sent calls again, from the nodes' own counts.
func TestHeaderEconomics(t *testing.T) {
	lead := node("lead", "", swarm.StatusDone, 3000)
	a := node("1", "lead", swarm.StatusDone, 1000)
	a.Usage = llm.Usage{InputTokens: 200, CacheReadTokens: 600, CacheWriteTokens: 200, OutputTokens: 10}
	a.CacheSaved = 500
	a.Hedges, a.HedgeWins, a.HedgeCost, a.Retries, a.WaitMillis, a.BatchCalls = 2, 1, 400, 3, 1500, 1
	b := node("2", "lead", swarm.StatusDone, 1000)
	b.Hedges, b.HedgeCost = 1, 100
	tr := FromNodes("r1", []swarm.Node{lead, a, b})
	tot := tr.Totals()
	if tot.Hedges != 3 || tot.HedgeWins != 1 || tot.HedgeCost != 500 || tot.Retries != 3 || tot.WaitMillis != 1500 {
		t.Fatalf("totals: %+v", tot)
	}
	first, _, _ := strings.Cut(tr.String(), "\n")
	for _, want := range []string{" · cache 18% read, saved $0.000001", " · 3 hedged (1 won), $0.000001 extra", " · 3 retried", " · 1 by batch"} {
		if !strings.Contains(first, want) {
			t.Errorf("header %q lacks %q", first, want)
		}
	}
}
