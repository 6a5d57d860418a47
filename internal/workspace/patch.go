package workspace

import (
	"errors"
	"fmt"
	"io/fs"
	"strings"

	udiff "github.com/aymanbagabas/go-udiff"
	"github.com/sourcegraph/go-diff/diff"
)

// contextLines is the number of unchanged lines around each change in a
// diff, as in git.
const contextLines = 3

// Patch is a set of changes to text files, the kind [Overlay.Diff] writes
// and [ParsePatch] reads: files created, changed line by line, or
// deleted. Paths are relative to the workspace root.
type Patch struct {
	// Name says whose changes these are (a worker, a task); a [Conflict]
	// names the patches it is between.
	Name  string
	files []filePatch
}

// fileOp is what a patch does to a file.
type fileOp int

const (
	opModify fileOp = iota
	opCreate
	opDelete
)

// filePatch is a patch's changes to one file.
type filePatch struct {
	path  string
	op    fileOp
	mode  fs.FileMode // permission bits of a created or deleted file
	hunks []hunk
}

// hunk is a run of changed lines and their context, numbered as in a
// unified diff: a range of zero lines starts at the line before it.
type hunk struct {
	oldStart, oldLines int
	newStart, newLines int
	// lines are ' ', '-' or '+' followed by the line's text with its
	// newline; the last line of a file may have none.
	lines []string
}

// Paths returns the paths p changes, in order.
func (p Patch) Paths() []string {
	out := make([]string, len(p.files))
	for i, f := range p.files {
		out[i] = f.path
	}
	return out
}

// Stat counts the lines p adds and removes, over all its files.
func (p Patch) Stat() (added, removed int) {
	for _, f := range p.files {
		for _, h := range f.hunks {
			for _, l := range h.lines {
				switch l[0] {
				case '+':
					added++
				case '-':
					removed++
				}
			}
		}
	}
	return added, removed
}

// String returns p as a git-style unified diff ("diff --git a/x b/x",
// "---", "+++", hunks with 3 lines of context, "new file mode" and
// "deleted file mode" for created and deleted files), which git apply
// and [ParsePatch] read.
func (p Patch) String() string {
	var b strings.Builder
	for _, f := range p.files {
		f.write(&b)
	}
	return b.String()
}

func (f filePatch) String() string {
	var b strings.Builder
	f.write(&b)
	return b.String()
}

func (f filePatch) write(b *strings.Builder) {
	from, to := "a/"+f.path, "b/"+f.path
	fmt.Fprintf(b, "diff --git %s %s\n", from, to)
	switch f.op {
	case opCreate:
		fmt.Fprintf(b, "new file mode %s\n", gitMode(f.mode))
		from = "/dev/null"
	case opDelete:
		fmt.Fprintf(b, "deleted file mode %s\n", gitMode(f.mode))
		to = "/dev/null"
	}
	if len(f.hunks) == 0 {
		return
	}
	fmt.Fprintf(b, "--- %s\n+++ %s\n", from, to)
	for _, h := range f.hunks {
		fmt.Fprintf(b, "@@ -%s +%s @@\n", hunkRange(h.oldStart, h.oldLines), hunkRange(h.newStart, h.newLines))
		for _, l := range h.lines {
			b.WriteString(l)
			if !strings.HasSuffix(l, "\n") {
				b.WriteString("\n\\ No newline at end of file\n")
			}
		}
	}
}

func hunkRange(start, n int) string {
	if n == 1 {
		return fmt.Sprint(start)
	}
	return fmt.Sprintf("%d,%d", start, n)
}

// gitMode is git's mode of a regular file with permission bits m.
func gitMode(m fs.FileMode) string {
	if m&0o111 != 0 {
		return "100755"
	}
	return "100644"
}

// filePatchOf returns the patch that turns old into new at path p; exists
// say whether each side exists. ok is false when nothing changes.
func filePatchOf(p string, old, new []byte, oldExists, newExists bool, mode fs.FileMode) (fp filePatch, ok bool) {
	fp = filePatch{path: p, op: opModify, mode: mode.Perm()}
	switch {
	case !oldExists && !newExists:
		return fp, false
	case !oldExists:
		fp.op = opCreate
	case !newExists:
		fp.op = opDelete
	case string(old) == string(new):
		return fp, false
	}
	u, err := udiff.ToUnifiedDiff("a/"+p, "b/"+p, string(old), udiff.Lines(string(old), string(new)), contextLines)
	if err != nil {
		panic(fmt.Sprintf("workspace: udiff made inconsistent edits: %v", err)) // cannot happen: the edits are its own
	}
	for _, uh := range u.Hunks {
		h := hunk{oldStart: uh.FromLine, newStart: uh.ToLine}
		for _, l := range uh.Lines {
			switch l.Kind {
			case udiff.Delete:
				h.lines = append(h.lines, "-"+l.Content)
				h.oldLines++
			case udiff.Insert:
				h.lines = append(h.lines, "+"+l.Content)
				h.newLines++
			default:
				h.lines = append(h.lines, " "+l.Content)
				h.oldLines++
				h.newLines++
			}
		}
		if h.oldLines == 0 {
			h.oldStart--
		}
		if h.newLines == 0 {
			h.newStart--
		}
		fp.hunks = append(fp.hunks, h)
	}
	return fp, true
}

// ParsePatch reads a git-style unified diff, as [Overlay.Diff] writes it,
// and names it name. It takes text files created, deleted or changed, and
// refuses renames, copies, mode changes and binary patches. Paths are
// checked as far as they can be without the tree (clean, relative, inside
// it, none under .git); whatever a diff says, only [Workspace.Apply] acts
// on it, and Apply checks every path against DIR as an overlay's writes
// are checked.
func ParsePatch(name, text string) (Patch, error) {
	// KeepCR: a line of a CRLF file ends in \r, and what is applied must
	// be the bytes the worker wrote and the check ran on.
	fds, err := diff.ParseMultiFileDiffOptions([]byte(text), diff.ParseOptions{KeepCR: true})
	if err != nil {
		return Patch{}, fmt.Errorf("parse patch %s: %w", name, err)
	}
	p := Patch{Name: name}
	seen := map[string]bool{}
	for _, fd := range fds {
		f, err := parseFile(fd)
		if err != nil {
			return Patch{}, fmt.Errorf("parse patch %s: %w", name, err)
		}
		if seen[f.path] {
			return Patch{}, fmt.Errorf("parse patch %s: %s appears twice", name, f.path)
		}
		seen[f.path] = true
		p.files = append(p.files, f)
	}
	return p, nil
}

func parseFile(fd *diff.FileDiff) (filePatch, error) {
	f := filePatch{op: opModify, mode: 0o644}
	var gitPath string
	for _, x := range fd.Extended {
		switch {
		case strings.HasPrefix(x, "diff --git "):
			gitPath = gitHeaderPath(strings.TrimPrefix(x, "diff --git "))
		case strings.HasPrefix(x, "new file mode "):
			f.op = opCreate
			// A created file is never executable, whatever the patch
			// says: a patch is a model's data, and an executable it wrote
			// would be an action waiting on the host.
			f.mode = 0o644
		case strings.HasPrefix(x, "deleted file mode "):
			f.op = opDelete
			f.mode = modeOf(strings.TrimPrefix(x, "deleted file mode "))
		case strings.HasPrefix(x, "index "):
		case strings.HasPrefix(x, "Binary files "), strings.HasPrefix(x, "GIT binary patch"):
			return f, errors.New("binary patches are not supported")
		default:
			return f, fmt.Errorf("%q is not supported: patches create, change or delete text files, and do not rename, copy or change modes", x)
		}
	}
	from, to := fd.OrigName, fd.NewName
	switch {
	case from == "" && to == "" && gitPath != "":
		from, to = "a/"+gitPath, "b/"+gitPath
		if f.op == opCreate {
			from = "/dev/null"
		}
		if f.op == opDelete {
			to = "/dev/null"
		}
	case from == "" || to == "":
		return f, errors.New("a file's diff has no ---/+++ names, and its diff --git line names no path")
	}
	switch {
	case from == "/dev/null" && f.op != opDelete:
		f.op = opCreate
	case to == "/dev/null" && f.op != opCreate:
		f.op = opDelete
	}
	var name string
	switch f.op {
	case opCreate:
		name = to
	case opDelete:
		name = from
	default:
		if strings.TrimPrefix(from, "a/") != strings.TrimPrefix(to, "b/") {
			return f, fmt.Errorf("%s and %s differ: renames are not supported", from, to)
		}
		name = to
	}
	if (f.op == opCreate && from != "/dev/null") || (f.op == opDelete && to != "/dev/null") {
		return f, fmt.Errorf("%s: a created file's diff is from /dev/null, a deleted file's to /dev/null", name)
	}
	p, ok := strings.CutPrefix(name, "a/")
	if !ok {
		if p, ok = strings.CutPrefix(name, "b/"); !ok {
			return f, fmt.Errorf("%s: paths in a patch start with a/ or b/, as git writes them", name)
		}
	}
	c, err := cleanWrite("patch", p)
	if err != nil {
		return f, err
	}
	if c != p {
		return f, fmt.Errorf("%q is not a clean path (%q)", p, c)
	}
	for _, e := range split(c) {
		if isGitDir(e) {
			return f, pathErr("patch", p, ErrHidden, "nothing under .git can be changed")
		}
	}
	f.path = c
	for _, dh := range fd.Hunks {
		h, err := parseHunk(dh)
		if err != nil {
			return f, fmt.Errorf("%s: %w", c, err)
		}
		f.hunks = append(f.hunks, h)
	}
	return f, f.check()
}

// gitHeaderPath returns P from "a/P b/P", the rest of a diff --git line
// whose two paths are the same, or "".
func gitHeaderPath(s string) string {
	if len(s) < 5 || (len(s)-5)%2 != 0 {
		return ""
	}
	n := (len(s) - 5) / 2
	p := s[2 : 2+n]
	if s != "a/"+p+" b/"+p {
		return ""
	}
	return p
}

func modeOf(s string) fs.FileMode {
	if s == "100755" {
		return 0o755
	}
	return 0o644
}

// parseHunk turns a hunk of go-diff into a hunk: its body, lines with
// their prefixes, and the "\ No newline at end of file" marks go-diff
// folded into it (a line of the new side or of both without a newline
// ends the body without one; a line of the old side without one is
// marked by OrigNoNewlineAt).
func parseHunk(dh *diff.Hunk) (hunk, error) {
	h := hunk{oldStart: int(dh.OrigStartLine), oldLines: int(dh.OrigLines), newStart: int(dh.NewStartLine), newLines: int(dh.NewLines)}
	body := string(dh.Body)
	noNewlineAt := int(dh.OrigNoNewlineAt)
	off := 0
	for body != "" {
		line, rest, ok := strings.Cut(body, "\n")
		if ok {
			line += "\n"
		}
		off += len(line)
		body = rest
		if line == "" || !strings.ContainsRune(" -+", rune(line[0])) {
			return h, fmt.Errorf("hunk at line %d: %q is not a diff line", h.oldStart, strings.TrimSuffix(line, "\n"))
		}
		if noNewlineAt > 0 && off == noNewlineAt && line[0] == '-' {
			line = strings.TrimSuffix(line, "\n")
		}
		h.lines = append(h.lines, line)
	}
	var old, new int
	for _, l := range h.lines {
		switch l[0] {
		case ' ':
			old++
			new++
		case '-':
			old++
		case '+':
			new++
		}
	}
	if old != h.oldLines || new != h.newLines {
		return h, fmt.Errorf("hunk @@ -%d,%d +%d,%d @@ has %d old and %d new lines", h.oldStart, h.oldLines, h.newStart, h.newLines, old, new)
	}
	return h, nil
}

// check checks that f's hunks are in order, do not overlap, and fit what
// f does to the file.
func (f filePatch) check() error {
	last := 0 // the old line after which the next hunk may start
	for i, h := range f.hunks {
		if h.oldLines == 0 && h.newLines == 0 {
			return fmt.Errorf("%s: hunk %d is empty", f.path, i+1)
		}
		if start(h) < last {
			return fmt.Errorf("%s: hunk %d starts before the end of the hunk before it", f.path, i+1)
		}
		last = start(h) + h.oldLines
	}
	switch {
	case f.op == opCreate && (len(f.hunks) > 1 || len(f.hunks) == 1 && f.hunks[0].oldLines != 0):
		return fmt.Errorf("%s: a created file's diff has one hunk, from nothing", f.path)
	case f.op == opDelete && (len(f.hunks) > 1 || len(f.hunks) == 1 && f.hunks[0].newLines != 0):
		return fmt.Errorf("%s: a deleted file's diff has one hunk, to nothing", f.path)
	case f.op == opModify && len(f.hunks) == 0:
		return fmt.Errorf("%s: no hunks", f.path)
	}
	return nil
}

// start is the 0-based index of the first old line of h, or of the line
// its lines go before when it has no old lines.
func start(h hunk) int {
	if h.oldLines == 0 {
		return h.oldStart
	}
	return h.oldStart - 1
}

// splitLines splits text into lines, each with its newline; the last may
// have none.
func splitLines(text string) []string {
	var lines []string
	for text != "" {
		i := strings.IndexByte(text, '\n')
		if i < 0 {
			lines = append(lines, text)
			break
		}
		lines = append(lines, text[:i+1])
		text = text[i+1:]
	}
	return lines
}

// apply applies f to old, the file's contents (exists says whether there
// is a file), strictly: every context and deleted line must be where the
// hunk says. It returns the new contents, and false for a deleted file.
func (f filePatch) apply(old string, exists bool) (string, bool, error) {
	switch {
	case f.op == opCreate && exists:
		return "", false, fmt.Errorf("%s: the patch creates it, and it exists", f.path)
	case f.op != opCreate && !exists:
		return "", false, fmt.Errorf("%s: the patch changes it, and it does not exist", f.path)
	}
	lines := splitLines(old)
	var out []string
	pos := 0
	for _, h := range f.hunks {
		at := start(h)
		if at < pos || at > len(lines) {
			return "", false, fmt.Errorf("%s: the hunk at line %d is past the end of the file (%d lines)", f.path, at+1, len(lines))
		}
		out = append(out, lines[pos:at]...)
		pos = at
		for _, l := range h.lines {
			switch l[0] {
			case ' ', '-':
				if pos >= len(lines) || lines[pos] != l[1:] {
					found := "the end of the file"
					if pos < len(lines) {
						found = fmt.Sprintf("%q", lines[pos])
					}
					return "", false, fmt.Errorf("%s: line %d should be %q, and is %s", f.path, pos+1, l[1:], found)
				}
				if l[0] == ' ' {
					out = append(out, lines[pos])
				}
				pos++
			case '+':
				out = append(out, l[1:])
			}
		}
	}
	out = append(out, lines[pos:]...)
	for i, l := range out[:max(len(out)-1, 0)] {
		if !strings.HasSuffix(l, "\n") {
			return "", false, fmt.Errorf("%s: the patch leaves line %d without a newline, and lines after it", f.path, i+1)
		}
	}
	text := strings.Join(out, "")
	if f.op == opDelete {
		if text != "" {
			return "", false, fmt.Errorf("%s: the patch deletes it but leaves %d lines", f.path, len(out))
		}
		return "", false, nil
	}
	return text, true, nil
}
