package workspace

import (
	"cmp"
	"fmt"
	"maps"
	"slices"
	"strings"
)

// Conflict is a file that two patches both change where their changes
// cannot be merged: the same or adjacent lines, or one deletes or creates
// the file the other changes.
type Conflict struct {
	Path string `json:"path"`
	// A and B name the two patches; A came first, and the merged patch
	// keeps its changes to the file and none of B's.
	A string `json:"a"`
	B string `json:"b"`
	// ALines and BLines are the first and last lines (1-based) of the
	// file as it was that each patch changes; {N+1, N} when a patch only
	// adds lines after line N. Zero for a conflict of the whole file.
	ALines [2]int `json:"a_lines"`
	BLines [2]int `json:"b_lines"`
	// Why says what the conflict is, in words.
	Why string `json:"why"`
}

func (c Conflict) String() string {
	s := fmt.Sprintf("%s: patches %q and %q conflict: %s", c.Path, c.A, c.B, c.Why)
	if c.ALines != [2]int{} || c.BLines != [2]int{} {
		s += fmt.Sprintf(" (%s of %q, %s of %q)", lineRange(c.ALines), c.A, lineRange(c.BLines), c.B)
	}
	return s
}

func lineRange(r [2]int) string {
	switch {
	case r[1] < r[0]:
		return fmt.Sprintf("lines added after line %d", r[1])
	case r[0] == r[1]:
		return fmt.Sprintf("line %d", r[0])
	}
	return fmt.Sprintf("lines %d-%d", r[0], r[1])
}

// Merge combines patches made against the same tree into one, in order.
// Patches that change different files merge; so do patches that change
// different lines of a file, with at least one unchanged line between
// their changes (each hunk is placed by its lines in the file as it was,
// and the hunks after it move by the lines it adds or removes). The same
// change made by two patches is kept once. Anything else is a
// [Conflict], and the merged patch keeps the earlier patches' changes to
// that file and none of the later one's. The merged patch is named after
// the patches, joined with "+".
func Merge(patches ...Patch) (Patch, []Conflict) {
	var out Patch
	var names []string
	var conflicts []Conflict
	merging := map[string]*fileMerge{}
	var order []string
	for _, p := range patches {
		names = append(names, p.Name)
		for _, f := range p.files {
			m, ok := merging[f.path]
			if !ok {
				merging[f.path] = &fileMerge{first: f, firstBy: p.Name}
				order = append(order, f.path)
				continue
			}
			if c := m.add(f, p.Name); c != nil {
				conflicts = append(conflicts, *c)
			}
		}
	}
	slices.Sort(order)
	for _, path := range order {
		out.files = append(out.files, merging[path].result())
	}
	out.Name = strings.Join(names, "+")
	return out, conflicts
}

// fileMerge is the merge of the patches to one file.
type fileMerge struct {
	first   filePatch // the first patch's changes
	firstBy string
	known   map[int]string // lines of the file as it was (0-based) that the merged patches show
	blocks  []block        // the merged changes, in order and apart; nil until a second patch merges
}

// block is a change to a file: the lines [start, end) of the file as it
// was (0-based) replaced by add, by the patch named by.
type block struct {
	start, end int
	add        []string
	by         string
}

func (b block) lines() [2]int { return [2]int{b.start + 1, b.end} }

// add merges g, of the patch named by, or says why it cannot.
func (m *fileMerge) add(g filePatch, by string) *Conflict {
	f := m.first
	if f.String() == g.String() {
		return nil // the same changes
	}
	whole := func(why string) *Conflict {
		return &Conflict{Path: f.path, A: m.firstBy, B: by, Why: why}
	}
	switch {
	case f.op == opDelete || g.op == opDelete:
		return whole("one deletes the file and the other changes it")
	case f.op == opCreate || g.op == opCreate:
		return whole("both create the file, with different contents")
	}
	known, blocks := m.known, m.blocks
	if blocks == nil {
		known = map[int]string{}
		var err error
		if blocks, err = blocksOf(f, m.firstBy, known); err != nil {
			return whole(err.Error())
		}
	}
	known = maps.Clone(known)
	more, err := blocksOf(g, by, known)
	if err != nil {
		return whole(err.Error())
	}
	all := slices.Concat(blocks, more)
	slices.SortStableFunc(all, func(a, b block) int {
		return cmp.Or(cmp.Compare(a.start, b.start), cmp.Compare(a.end, b.end))
	})
	var kept []block
	for _, b := range all {
		if n := len(kept); n > 0 {
			prev := kept[n-1]
			if prev.start == b.start && prev.end == b.end && slices.Equal(prev.add, b.add) {
				continue // the same change twice
			}
			if b.start <= prev.end {
				a, bb := prev, b
				if a.by == by {
					a, bb = bb, a
				}
				return &Conflict{Path: f.path, A: a.by, B: bb.by, ALines: a.lines(), BLines: bb.lines(),
					Why: "they change the same or adjacent lines"}
			}
		}
		kept = append(kept, b)
	}
	if _, err := render(known, kept); err != nil {
		return whole(err.Error())
	}
	m.known, m.blocks = known, kept
	return nil
}

// result returns the merged changes to the file.
func (m *fileMerge) result() filePatch {
	f := m.first
	if m.blocks != nil {
		f.hunks, _ = render(m.known, m.blocks) // add rendered them without error
	}
	return f
}

// blocksOf returns the changes f makes, as blocks of the patch named by,
// and adds the lines of the file as it was that f shows to known. It
// fails when f shows a line that known holds otherwise: the patches were
// made against different versions of the file.
func blocksOf(f filePatch, by string, known map[int]string) ([]block, error) {
	var blocks []block
	for _, h := range f.hunks {
		i := start(h)
		var cur *block
		flush := func() {
			if cur != nil {
				cur.end = i
				blocks = append(blocks, *cur)
				cur = nil
			}
		}
		for _, l := range h.lines {
			if l[0] != '+' {
				if t, ok := known[i]; ok && t != l[1:] {
					return nil, fmt.Errorf("they were made against different versions of the file (line %d)", i+1)
				}
				known[i] = l[1:]
			}
			switch l[0] {
			case ' ':
				flush()
				i++
			case '-':
				if cur == nil {
					cur = &block{start: i, by: by}
				}
				i++
			case '+':
				if cur == nil {
					cur = &block{start: i, by: by}
				}
				cur.add = append(cur.add, l[1:])
			}
		}
		flush()
	}
	return blocks, nil
}

// render turns blocks (in order, apart) and the lines of the file as it
// was that the patches show into hunks with up to 3 lines of context; two
// changes at most 6 lines apart share a hunk.
func render(known map[int]string, blocks []block) ([]hunk, error) {
	var hunks []hunk
	var cur *hunk
	pos := 0   // the next old line cur would take
	delta := 0 // new lines minus old lines before pos
	emit := func(from, to int, prefix string) error {
		for i := from; i < to; i++ {
			t, ok := known[i]
			if !ok {
				return fmt.Errorf("line %d of the file is in neither patch's context, so their changes near it cannot be placed", i+1)
			}
			cur.lines = append(cur.lines, prefix+t)
		}
		return nil
	}
	finish := func() {
		n := 0
		for n < contextLines {
			if _, ok := known[pos+n]; !ok {
				break
			}
			n++
		}
		_ = emit(pos, pos+n, " ") // the lines are known
		for _, l := range cur.lines {
			if l[0] != '+' {
				cur.oldLines++
			}
			if l[0] != '-' {
				cur.newLines++
			}
		}
		if cur.oldLines == 0 {
			cur.oldStart--
		}
		if cur.newLines == 0 {
			cur.newStart--
		}
		hunks = append(hunks, *cur)
	}
	for _, b := range blocks {
		if cur != nil && b.start-pos <= 2*contextLines {
			if err := emit(pos, b.start, " "); err != nil {
				return nil, err
			}
		} else {
			if cur != nil {
				finish()
			}
			lead := 0
			for lead < contextLines && b.start-lead-1 >= 0 {
				if _, ok := known[b.start-lead-1]; !ok {
					break
				}
				lead++
			}
			from := b.start - lead
			cur = &hunk{oldStart: from + 1, newStart: from + 1 + delta}
			_ = emit(from, b.start, " ") // the lines are known
		}
		if err := emit(b.start, b.end, "-"); err != nil {
			return nil, err
		}
		for _, t := range b.add {
			cur.lines = append(cur.lines, "+"+t)
		}
		delta += len(b.add) - (b.end - b.start)
		pos = b.end
	}
	if cur != nil {
		finish()
	}
	return hunks, nil
}
