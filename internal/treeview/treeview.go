// Package treeview draws a run's tree of nodes as text: one line per node,
// indented under its parent, with its status, name, model, tokens, cost and
// last verdict, under a header with the run's totals.
//
// A [Tree] is a model of a run's nodes keyed by id. It is filled from the
// journal ([FromNodes]) or kept current from the run's events ([Tree.Apply]):
// every node event carries the node's whole state after the change, so the
// model only ever replaces a node by its newer snapshot.
//
// A swarm may have thousands of nodes, far more than a terminal shows, so
// [Tree.Render] collapses when given a line budget: finished siblings fold
// into one summary line per parent ("… 180 done, 3 cancelled") while
// running, repairing and failed nodes stay visible; if that is still too
// long, failed ones fold too, and as a last resort the list is cut. The full
// tree is always one "hive show" away.
//
// [Live] redraws a tree in place on a terminal (ANSI cursor movement) at a
// bounded rate; on anything else callers render once at the end.
package treeview

import (
	"fmt"
	"io"
	"strings"
	"unicode/utf8"

	"github.com/hive-swarm/hive/internal/price"
	"github.com/hive-swarm/hive/internal/swarm"
)

// Options shape one rendering.
type Options struct {
	// Color wraps statuses in ANSI colours (for terminals only).
	Color bool
	// MaxLines bounds the lines drawn, header included; 0 draws every node.
	MaxLines int
	// Width cuts each line to this many columns; 0 does not cut.
	Width int
	// Budget is the run's dollar budget, shown against the spend; 0: none.
	Budget price.Amount
	// Hint ends each summary line of folded nodes, e.g. "expand with hive
	// show r123"; empty: "expand with hive show".
	Hint string
}

// A Tree is the state of one run's nodes, in the order they were created.
// It is not safe for concurrent use.
type Tree struct {
	RunID string
	// Status is the run's status, as the last run event told (empty until
	// one did).
	Status swarm.Status
	// Spent is the run's spend as the last event told; [Tree.Totals] uses
	// the larger of it and the sum of the nodes' costs.
	Spent price.Amount

	index map[string]int // node id → position in nodes
	nodes []swarm.Node
}

// New returns an empty tree for runID.
func New(runID string) *Tree { return &Tree{RunID: runID, index: map[string]int{}} }

// FromNodes returns a tree of nodes (in creation order, as
// [swarm.LoadNodes] returns them).
func FromNodes(runID string, nodes []swarm.Node) *Tree {
	t := New(runID)
	for i := range nodes {
		t.Put(nodes[i])
	}
	return t
}

// Put adds n, or replaces the node with its id.
func (t *Tree) Put(n swarm.Node) {
	if i, ok := t.index[n.ID]; ok {
		t.nodes[i] = n
		return
	}
	t.index[n.ID] = len(t.nodes)
	t.nodes = append(t.nodes, n)
}

// Apply updates the tree from one event of its run and reports whether
// anything shown changed.
func (t *Tree) Apply(ev swarm.Event) bool {
	changed := false
	if ev.CostNanos != 0 && price.Amount(ev.CostNanos) != t.Spent {
		t.Spent = price.Amount(ev.CostNanos)
		changed = true
	}
	switch ev.Type {
	case swarm.EventRunStarted, swarm.EventRunResumed, swarm.EventRunFinished:
		if ev.Status != "" && ev.Status != t.Status {
			t.Status = ev.Status
			changed = true
		}
	}
	if ev.Node != nil {
		t.Put(*ev.Node)
		changed = true
	}
	return changed
}

// Len returns the number of nodes.
func (t *Tree) Len() int { return len(t.nodes) }

// Nodes returns the nodes in creation order. The slice is the tree's own.
func (t *Tree) Nodes() []swarm.Node { return t.nodes }

// Totals sum a tree's nodes.
type Totals struct {
	Nodes    int                  `json:"nodes"`
	ByStatus map[swarm.Status]int `json:"by_status"`
	Cost     price.Amount         `json:"cost_nanos"`
	Input    int64                `json:"input_tokens"`
	Output   int64                `json:"output_tokens"`
	Calls    int                  `json:"calls"`
	// CacheRead and CacheWrite are the input tokens read from and
	// written to providers' prompt caches (counted in Input too), and
	// CacheSaved what that saved ([swarm.Node].CacheSaved).
	CacheRead  int64        `json:"cache_read_tokens"`
	CacheWrite int64        `json:"cache_write_tokens"`
	CacheSaved price.Amount `json:"cache_saved_nanos"`
	// Hedges are the calls sent twice, HedgeWins those whose second copy
	// answered first, and HedgeCost what the copies not taken cost
	// (counted in Cost); Retries and WaitMillis what rate limits did.
	Hedges     int          `json:"hedges"`
	HedgeWins  int          `json:"hedge_wins"`
	HedgeCost  price.Amount `json:"hedge_cost_nanos"`
	Retries    int          `json:"retries"`
	WaitMillis int64        `json:"wait_ms"`
	// BatchCalls are the calls sent through a batch API.
	BatchCalls int `json:"batch_calls"`
}

// CacheHitRate is the share of input tokens read from a prompt cache.
func (t Totals) CacheHitRate() float64 {
	if t.Input == 0 {
		return 0
	}
	return float64(t.CacheRead) / float64(t.Input)
}

// Totals sums the nodes. Cost is the larger of the nodes' sum and
// [Tree.Spent] (an event may tell of spend before the node that made it).
func (t *Tree) Totals() Totals {
	tot := Totals{Nodes: len(t.nodes), ByStatus: map[swarm.Status]int{}}
	for i := range t.nodes {
		n := &t.nodes[i]
		tot.ByStatus[n.Status]++
		tot.Cost += n.Cost
		tot.Input += n.Usage.InputTokens + n.Usage.CacheReadTokens + n.Usage.CacheWriteTokens
		tot.Output += n.Usage.OutputTokens
		tot.Calls += n.Calls
		tot.CacheRead += n.Usage.CacheReadTokens
		tot.CacheWrite += n.Usage.CacheWriteTokens
		tot.CacheSaved += n.CacheSaved
		tot.Hedges += n.Hedges
		tot.HedgeWins += n.HedgeWins
		tot.HedgeCost += n.HedgeCost
		tot.Retries += n.Retries
		tot.WaitMillis += n.WaitMillis
		tot.BatchCalls += n.BatchCalls
	}
	tot.Cost = max(tot.Cost, t.Spent)
	return tot
}

// statusOrder is the order statuses are counted in, live work first.
var statusOrder = []swarm.Status{
	swarm.StatusRunning, swarm.StatusVerifying, swarm.StatusRepairing, swarm.StatusPending,
	swarm.StatusDone, swarm.StatusEscalated, swarm.StatusFailed, swarm.StatusCancelled,
}

// countText renders counts by status: "3 running, 8 done, 1 failed".
func countText(by map[swarm.Status]int) string {
	var parts []string
	seen := 0
	for _, s := range statusOrder {
		if c := by[s]; c > 0 {
			parts = append(parts, fmt.Sprintf("%d %s", c, s))
			seen++
		}
	}
	if seen < len(by) { // a status this package does not know
		for s, c := range by {
			if !known(s) && c > 0 {
				parts = append(parts, fmt.Sprintf("%d %s", c, s))
			}
		}
	}
	return strings.Join(parts, ", ")
}

func known(s swarm.Status) bool {
	for _, k := range statusOrder {
		if k == s {
			return true
		}
	}
	return false
}

// item is one line of a rendering: a node, or a summary of folded ones.
type item struct {
	depth   int
	node    int // index into nodes; -1 for a summary
	summary map[swarm.Status]int
}

// Fold levels, tried in turn until the tree fits.
const (
	foldNone     = iota // every node
	foldFinished        // fold done, cancelled and escalated subtrees
	foldFailed          // fold every subtree with no live work
)

// layout is a tree's structure, computed once per rendering.
type layout struct {
	t        *Tree
	roots    []int
	children [][]int // per node, in display order
	quiet    []bool  // subtree holds only done/cancelled/escalated nodes
	idle     []bool  // subtree holds only final statuses
}

func newLayout(t *Tree) *layout {
	n := len(t.nodes)
	l := &layout{t: t, children: make([][]int, n), quiet: make([]bool, n), idle: make([]bool, n)}
	// Escalations ("3^1") are shown right after the attempt they retry.
	var esc map[int][]int
	for i := range t.nodes {
		nd := &t.nodes[i]
		if base, _, ok := strings.Cut(nd.ID, "^"); ok {
			if b, ok := t.index[base]; ok && t.nodes[b].Parent == nd.Parent {
				if esc == nil {
					esc = map[int][]int{}
				}
				esc[b] = append(esc[b], i)
				continue
			}
		}
		p, ok := t.index[nd.Parent]
		if nd.Parent == "" || !ok || p == i {
			l.roots = append(l.roots, i)
		} else {
			l.children[p] = append(l.children[p], i)
		}
	}
	if esc != nil {
		expand := func(list []int) []int {
			out := make([]int, 0, len(list))
			for _, c := range list {
				out = append(out, c)
				out = append(out, esc[c]...)
			}
			return out
		}
		l.roots = expand(l.roots)
		for i := range l.children {
			if len(l.children[i]) > 0 {
				l.children[i] = expand(l.children[i])
			}
		}
	}
	// Post-order: children are computed before their parent. Creation
	// order puts parents first, but a malformed journal might not, so walk.
	var walk func(i int, depth int)
	walk = func(i int, depth int) {
		s := t.nodes[i].Status
		q := s == swarm.StatusDone || s == swarm.StatusCancelled || s == swarm.StatusEscalated
		d := s.Final()
		if depth < 1000 { // a cycle cannot recur forever
			for _, c := range l.children[i] {
				walk(c, depth+1)
				q = q && l.quiet[c]
				d = d && l.idle[c]
			}
		}
		l.quiet[i], l.idle[i] = q, d
	}
	for _, r := range l.roots {
		walk(r, 0)
	}
	return l
}

// items lists the lines at a fold level.
func (l *layout) items(level int, out []item) []item {
	var emit func(i, depth int)
	emit = func(i, depth int) {
		out = append(out, item{depth: depth, node: i})
		if depth >= 1000 {
			return
		}
		kids := l.children[i]
		folds := 0
		if level > foldNone {
			for _, c := range kids {
				if l.foldable(c, level) {
					folds++
				}
			}
		}
		if folds < 2 { // one summary line saves nothing over one node
			for _, c := range kids {
				emit(c, depth+1)
			}
			return
		}
		sum := map[swarm.Status]int{}
		for _, c := range kids {
			if l.foldable(c, level) {
				l.count(c, sum, 0)
				continue
			}
			emit(c, depth+1)
		}
		out = append(out, item{depth: depth + 1, node: -1, summary: sum})
	}
	for _, r := range l.roots {
		emit(r, 0)
	}
	return out
}

func (l *layout) foldable(i, level int) bool {
	switch level {
	case foldFinished:
		return l.quiet[i]
	case foldFailed:
		return l.idle[i]
	}
	return false
}

// count adds the statuses of i's subtree to sum.
func (l *layout) count(i int, sum map[swarm.Status]int, depth int) {
	sum[l.t.nodes[i].Status]++
	if depth >= 1000 {
		return
	}
	for _, c := range l.children[i] {
		l.count(c, sum, depth+1)
	}
}

// Render writes the header and the tree to w and returns the number of
// lines written.
func (t *Tree) Render(w io.Writer, o Options) (int, error) {
	var b strings.Builder
	n := t.render(&b, o)
	_, err := io.WriteString(w, b.String())
	return n, err
}

// String renders the whole tree without colour.
func (t *Tree) String() string {
	var b strings.Builder
	t.render(&b, Options{})
	return b.String()
}

func (t *Tree) render(b *strings.Builder, o Options) int {
	l := newLayout(t)
	items := l.items(foldNone, make([]item, 0, len(t.nodes)+1))
	if o.MaxLines > 0 {
		for level := foldFinished; len(items)+1 > o.MaxLines && level <= foldFailed; level++ {
			items = l.items(level, items[:0])
		}
	}
	b.Grow(96 * (len(items) + 2))
	lines := 1
	t.header(b, o)
	cut := 0
	if o.MaxLines > 0 && len(items)+1 > o.MaxLines {
		keep := max(o.MaxLines-2, 0)
		cut = len(items) - keep
		items = items[:keep]
	}
	hint := o.Hint
	if hint == "" {
		hint = "expand with hive show"
	}
	for _, it := range items {
		if it.node < 0 {
			line := strings.Repeat("  ", it.depth) + "… " + countText(it.summary) + " (" + hint + ")"
			writeLine(b, line, "", 0, o)
		} else {
			t.nodeLine(b, &t.nodes[it.node], it.depth, o)
		}
		lines++
	}
	if cut > 0 && o.MaxLines > 1 {
		writeLine(b, fmt.Sprintf("… %d more lines (%s)", cut, hint), "", 0, o)
		lines++
	}
	return lines
}

func (t *Tree) header(b *strings.Builder, o Options) {
	tot := t.Totals()
	var h strings.Builder
	h.WriteString("run ")
	if t.RunID != "" {
		h.WriteString(t.RunID)
		h.WriteByte(' ')
	}
	if t.Status != "" {
		h.WriteString(string(t.Status))
		h.WriteByte(' ')
	}
	fmt.Fprintf(&h, "· %d nodes", tot.Nodes)
	if c := countText(tot.ByStatus); c != "" {
		h.WriteString(": " + c)
	}
	h.WriteString(" · " + tot.Cost.String())
	if o.Budget > 0 {
		h.WriteString(" of " + o.Budget.String())
	}
	fmt.Fprintf(&h, " · %s in / %s out tokens", tokens(tot.Input), tokens(tot.Output))
	if tot.CacheRead+tot.CacheWrite > 0 {
		fmt.Fprintf(&h, " · cache %.0f%% read, saved %s", 100*tot.CacheHitRate(), tot.CacheSaved)
	}
	if tot.Hedges > 0 {
		fmt.Fprintf(&h, " · %d hedged (%d won), %s extra", tot.Hedges, tot.HedgeWins, tot.HedgeCost)
	}
	if tot.Retries > 0 {
		fmt.Fprintf(&h, " · %d retried", tot.Retries)
	}
	if tot.BatchCalls > 0 {
		fmt.Fprintf(&h, " · %d by batch", tot.BatchCalls)
	}
	writeLine(b, h.String(), "", 0, o)
}

// nodeLine writes one node's line:
//
//	3 done      t-3 · cheap · 1.2k/340 tok · $0.000123 · pass (tests)
func (t *Tree) nodeLine(b *strings.Builder, n *swarm.Node, depth int, o Options) {
	var s strings.Builder
	for range depth {
		s.WriteString("  ")
	}
	s.WriteString(n.ID)
	s.WriteByte(' ')
	at := s.Len()
	status := string(n.Status)
	s.WriteString(status)
	for k := len(status); k < 9; k++ {
		s.WriteByte(' ')
	}
	s.WriteByte(' ')
	name := n.Name
	if name == "" {
		name = string(n.Role)
	}
	s.WriteString(name)
	if n.Model != "" {
		s.WriteString(" · " + n.Model)
	}
	in := n.Usage.InputTokens + n.Usage.CacheReadTokens + n.Usage.CacheWriteTokens
	s.WriteString(" · " + tokens(in) + "/" + tokens(n.Usage.OutputTokens) + " tok · " + n.Cost.String())
	if n.Attempt > 0 {
		fmt.Fprintf(&s, " · repair %d", n.Attempt)
	}
	if v := n.Verdict; v != nil {
		s.WriteString(" · " + v.Outcome)
		if v.Verifier != "" {
			s.WriteString(" (" + v.Verifier + ")")
		}
	}
	if n.Error != "" && (n.Status == swarm.StatusFailed || n.Status == swarm.StatusEscalated) {
		s.WriteString(" · " + oneLine(n.Error))
	}
	writeLine(b, s.String(), status, at, o)
}

// ANSI colours of statuses.
var colors = map[string]string{
	string(swarm.StatusRunning):   "\x1b[33m",
	string(swarm.StatusDone):      "\x1b[32m",
	string(swarm.StatusFailed):    "\x1b[31m",
	string(swarm.StatusCancelled): "\x1b[90m",
	string(swarm.StatusVerifying): "\x1b[36m",
	string(swarm.StatusRepairing): "\x1b[36m",
	string(swarm.StatusEscalated): "\x1b[35m",
}

const reset = "\x1b[0m"

// writeLine writes line cut to o.Width, with the word at byte offset at
// coloured when o.Color is set.
func writeLine(b *strings.Builder, line, word string, at int, o Options) {
	if o.Width > 0 && utf8.RuneCountInString(line) > o.Width {
		line = cut(line, o.Width)
	}
	c := colors[word]
	if o.Color && c != "" && at+len(word) <= len(line) && line[at:at+len(word)] == word {
		b.WriteString(line[:at])
		b.WriteString(c)
		b.WriteString(word)
		b.WriteString(reset)
		b.WriteString(line[at+len(word):])
	} else {
		b.WriteString(line)
	}
	b.WriteByte('\n')
}

// cut shortens s to width runes, the last one an ellipsis.
func cut(s string, width int) string {
	if width <= 1 {
		return "…"
	}
	n := 0
	for i := range s {
		if n == width-1 {
			return s[:i] + "…"
		}
		n++
	}
	return s
}

// tokens formats a token count compactly: 950, 1.2k, 34k, 1.5M.
func tokens(n int64) string {
	switch {
	case n < 1000:
		return fmt.Sprint(n)
	case n < 10_000:
		return fmt.Sprintf("%.1fk", float64(n)/1e3)
	case n < 1_000_000:
		return fmt.Sprintf("%dk", (n+500)/1000)
	default:
		return fmt.Sprintf("%.1fM", float64(n)/1e6)
	}
}

func oneLine(s string) string {
	s = strings.Join(strings.Fields(s), " ")
	if utf8.RuneCountInString(s) > 80 {
		s = cut(s, 80)
	}
	return s
}
