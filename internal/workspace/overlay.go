package workspace

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"path"
	"slices"
	"strings"
	"sync"
)

// Overlay is one worker's changes to a [Workspace], kept in memory: a
// copy-on-write layer whose reads see its own writes and DIR for the
// rest. It never writes DIR. It is safe for concurrent use.
//
// Changes are confined as reads are (no path outside the workspace, none
// through a link that leaves it) and more: no hidden path (.git,
// gitignored, secret) may be written or deleted, only text files change
// (no NUL byte), a file is at most [Options.MaxFileSize] and all the files
// an overlay writes at most [Options.MaxOverlayBytes]. A symbolic link is
// written through (its target changes), never replaced.
type Overlay struct {
	w *Workspace

	change sync.Mutex // held by Write, Edit and Delete from check to change, so they apply one at a time

	mu      sync.Mutex
	changes map[string]*change // guarded by mu: by real path; a *change is never modified, only replaced
	total   int64              // guarded by mu: bytes of the files written
}

// change is the state of one file in an overlay.
type change struct {
	data    []byte
	mode    fs.FileMode // permission bits of the file written
	deleted bool        // the file of DIR is deleted
}

// NewOverlay returns an empty overlay over w.
func (w *Workspace) NewOverlay() *Overlay {
	return &Overlay{w: w, changes: map[string]*change{}}
}

// List is [Workspace.List] of the tree with o's changes.
func (o *Overlay) List(ctx context.Context, dir string, opts ListOptions) (ListResult, error) {
	return o.w.list(ctx, dir, opts, o)
}

// Read is [Workspace.Read] of the tree with o's changes.
func (o *Overlay) Read(ctx context.Context, path string, startLine, endLine int) (ReadResult, error) {
	return o.w.read(ctx, path, startLine, endLine, o)
}

// Grep is [Workspace.Grep] of the tree with o's changes.
func (o *Overlay) Grep(ctx context.Context, pattern string, opts GrepOptions) (GrepResult, error) {
	return o.w.grep(ctx, pattern, opts, o)
}

// Write sets the contents of the file at path, creating it (and the
// directories above it) if need be.
func (o *Overlay) Write(path, content string) error {
	const op = "write"
	o.change.Lock()
	defer o.change.Unlock()
	real, cur, exists, err := o.target(op, path)
	if err != nil {
		return err
	}
	if exists {
		if _, err := o.w.text(op, path, cur, o.w.opts.MaxFileSize); err != nil {
			return err
		}
	}
	return o.set(op, path, real, cur, exists, content)
}

// Edit replaces oldString with newString in the file at path, the
// semantics of Claude Code's edit tool: oldString must occur exactly once
// unless replaceAll, and then every occurrence is replaced. An empty
// oldString creates a file that does not exist (or fills an empty one)
// with newString. It returns how many occurrences were replaced.
func (o *Overlay) Edit(path, oldString, newString string, replaceAll bool) (int, error) {
	const op = "edit"
	o.change.Lock()
	defer o.change.Unlock()
	real, cur, exists, err := o.target(op, path)
	if err != nil {
		return 0, err
	}
	if oldString == newString {
		return 0, pathErr(op, path, errors.New("old_string and new_string are the same"), "nothing would change")
	}
	var data string
	if exists {
		b, err := o.w.text(op, path, cur, o.w.opts.MaxFileSize)
		if err != nil {
			return 0, err
		}
		data = string(b)
	}
	switch {
	case oldString == "" && data != "":
		return 0, pathErr(op, path, errors.New("old_string is empty and the file is not"), "give the text to replace, or Write the whole file")
	case oldString == "":
		return 1, o.set(op, path, real, cur, exists, newString)
	case !exists:
		return 0, notFound(op, path)
	}
	n := strings.Count(data, oldString)
	switch {
	case n == 0:
		hint := "Read the file again and copy the text exactly, with its whitespace and indentation"
		if strings.Contains(data, "\r\n") && strings.Contains(oldString, "\n") && !strings.Contains(oldString, "\r\n") {
			hint += " (its lines end in \\r\\n)"
		}
		return 0, pathErr(op, path, errors.New("old_string not found"), "%s", hint)
	case n > 1 && !replaceAll:
		return 0, pathErr(op, path, fmt.Errorf("old_string occurs %d times (at lines %s)", n, occurrences(data, oldString)),
			"give more of the surrounding text so that it occurs once, or set replace_all to replace every one")
	}
	if !replaceAll {
		n = 1
	}
	return n, o.set(op, path, real, cur, exists, strings.Replace(data, oldString, newString, n))
}

// occurrences lists the line numbers where s occurs in data, the first
// ten.
func occurrences(data, s string) string {
	var lines []string
	off := 0
	for len(lines) < 10 {
		i := strings.Index(data[off:], s)
		if i < 0 {
			break
		}
		lines = append(lines, fmt.Sprint(1+strings.Count(data[:off+i], "\n")))
		off += i + len(s)
	}
	if strings.Count(data, s) > len(lines) {
		lines = append(lines, "...")
	}
	return strings.Join(lines, ", ")
}

// Delete deletes the file at path. A directory is not deleted whole: its
// files are, one by one.
func (o *Overlay) Delete(path string) error {
	const op = "delete"
	o.change.Lock()
	defer o.change.Unlock()
	real, cur, exists, err := o.target(op, path)
	if err != nil {
		return err
	}
	if !exists {
		return notFound(op, path)
	}
	if c, _ := clean(op, path); c != real {
		if fi, err := o.w.root.Lstat(c); err == nil && fi.Mode()&fs.ModeSymlink != 0 {
			return pathErr(op, path, ErrNotRegular, "it is a symbolic link (to %s); the workspace changes files, not links", real)
		}
	}
	if _, err := o.w.text(op, path, cur, o.w.opts.MaxFileSize); err != nil {
		return err
	}
	o.mu.Lock()
	defer o.mu.Unlock()
	if old, ok := o.changes[real]; ok {
		o.total -= int64(len(old.data))
	}
	if _, err := o.w.root.Lstat(real); err == nil {
		o.changes[real] = &change{deleted: true}
	} else {
		delete(o.changes, real) // a file only this overlay made
	}
	return nil
}

// target checks the path a change names and returns its real path, what
// is there now (when exists) and whether it exists.
func (o *Overlay) target(op, p string) (real string, cur node, exists bool, err error) {
	c, err := cleanWrite(op, p)
	if err != nil {
		return "", node{}, false, err
	}
	real, _, err = o.w.resolve(op, c)
	if err != nil {
		return "", node{}, false, err
	}
	if real != c {
		if _, err := cleanWrite(op, real); err != nil {
			return "", node{}, false, err
		}
	}
	for _, q := range []string{c, real} {
		switch o.w.why(q, false) {
		case hiddenGit:
			return "", node{}, false, pathErr(op, p, ErrHidden, "nothing under .git can be changed")
		case hiddenSecret:
			return "", node{}, false, pathErr(op, p, ErrHidden, "secret files (.env, keys, credentials and the configured hidden paths) cannot be changed")
		case hiddenIgnored:
			return "", node{}, false, pathErr(op, p, ErrHidden, "the .gitignore files ignore it, and ignored paths cannot be changed; choose another path")
		}
	}
	cur, err = o.w.stat(op, p, o)
	switch {
	case errors.Is(err, ErrNotFound):
		// A new file: no file may stand where a directory is needed.
		for q := path.Dir(real); q != "."; q = path.Dir(q) {
			if n, err := o.w.stat(op, q, o); err == nil && !n.isDir() {
				return "", node{}, false, pathErr(op, p, ErrNotRegular, "%s is a file, not a directory", q)
			}
		}
		return real, node{}, false, nil
	case err != nil:
		return "", node{}, false, err
	}
	if err := regular(op, p, cur.mode); err != nil {
		return "", node{}, false, err
	}
	return real, cur, true, nil
}

// text reads the regular file n whole and checks that it is text.
func (w *Workspace) text(op, p string, n node, max int64) ([]byte, error) {
	b, err := w.readAll(op, p, n, max)
	if err != nil {
		return nil, err
	}
	if isBinary(b) {
		return nil, pathErr(op, p, ErrBinary, "it has a NUL byte in its first 8 KiB; the workspace changes text files only")
	}
	return b, nil
}

// set records content as the file at the real path real.
func (o *Overlay) set(op, p, real string, cur node, exists bool, content string) error {
	switch {
	case int64(len(content)) > o.w.opts.MaxFileSize:
		return pathErr(op, p, ErrTooLarge, "the content is %s; a file may be at most %s", size(int64(len(content))), size(o.w.opts.MaxFileSize))
	case strings.IndexByte(content, 0) >= 0:
		return pathErr(op, p, ErrBinary, "the content has a NUL byte; the workspace writes text files only")
	}
	mode := fs.FileMode(0o644)
	if exists {
		mode = cur.mode.Perm()
	}
	o.mu.Lock()
	defer o.mu.Unlock()
	total := o.total + int64(len(content))
	if old, ok := o.changes[real]; ok {
		total -= int64(len(old.data))
	}
	if total > o.w.opts.MaxOverlayBytes {
		return pathErr(op, p, ErrTooLarge, "the files written would total %s, more than the %s allowed", size(total), size(o.w.opts.MaxOverlayBytes))
	}
	o.total = total
	o.changes[real] = &change{data: []byte(content), mode: mode}
	return nil
}

// lookup says what o holds at the real path p: a file it wrote or
// deleted (ch), a directory it made by writing files under it (dir), or,
// with ch nil and dir false, nothing, because a file it wrote stands
// where a directory above p would be. ok is false when o has nothing to
// say of p. A nil o has nothing to say.
func (o *Overlay) lookup(p string) (ch *change, dir, ok bool) {
	if o == nil {
		return nil, false, false
	}
	o.mu.Lock()
	defer o.mu.Unlock()
	if ch, ok := o.changes[p]; ok {
		return ch, false, true
	}
	for q := path.Dir(p); q != "." && q != "/"; q = path.Dir(q) {
		if ch, ok := o.changes[q]; ok && !ch.deleted {
			return nil, false, true
		}
	}
	prefix := p + "/"
	if p == "." {
		prefix = ""
	}
	for q, ch := range o.changes {
		if !ch.deleted && strings.HasPrefix(q, prefix) {
			return nil, true, true
		}
	}
	return nil, false, false
}

// children returns what o changes among the entries of the directory dir
// (a real path), by name: nil for a file it deleted, the entry of a file
// it wrote or a directory it made.
func (o *Overlay) children(dir string) map[string]*Entry {
	if o == nil {
		return nil
	}
	o.mu.Lock()
	defer o.mu.Unlock()
	prefix := dir + "/"
	if dir == "." {
		prefix = ""
	}
	out := map[string]*Entry{}
	for q, ch := range o.changes {
		r, ok := strings.CutPrefix(q, prefix)
		if !ok {
			continue
		}
		name, _, deeper := strings.Cut(r, "/")
		switch {
		case deeper && !ch.deleted:
			out[name] = &Entry{Path: path.Join(dir, name), Type: TypeDir}
		case !deeper && ch.deleted:
			if _, ok := out[name]; !ok {
				out[name] = nil
			}
		case !deeper:
			out[name] = &Entry{Path: q, Type: TypeFile, Size: int64(len(ch.data))}
		}
	}
	return out
}

// snapshot returns o's changes, by real path, and the paths in order.
func (o *Overlay) snapshot() (map[string]*change, []string) {
	o.mu.Lock()
	defer o.mu.Unlock()
	m := make(map[string]*change, len(o.changes))
	for p, ch := range o.changes {
		m[p] = ch
	}
	paths := make([]string, 0, len(m))
	for p := range m {
		paths = append(paths, p)
	}
	slices.Sort(paths)
	return m, paths
}

// Change is what an overlay holds of one file: the contents it wrote, or
// that it deleted the file. A caller that must rebuild an overlay later
// without doing its edits again (a resumed run, where DIR may have changed
// meanwhile) keeps the Change each edit left ([Overlay.Changed]) and puts
// it back with [Overlay.Restore].
type Change struct {
	// Path is the file's real path: relative to the root, slash-separated,
	// with the symbolic links on the way resolved.
	Path    string      `json:"path"`
	Content string      `json:"content,omitempty"`
	Mode    fs.FileMode `json:"mode,omitempty"`
	Deleted bool        `json:"deleted,omitempty"`
}

// Changed returns o's change of the file at path (as a write, edit or
// delete named it), and false when o has not changed it.
func (o *Overlay) Changed(path string) (Change, bool) {
	c, err := clean("changed", path)
	if err != nil {
		return Change{}, false
	}
	real, _, err := o.w.resolve("changed", c)
	if err != nil {
		return Change{}, false
	}
	o.mu.Lock()
	defer o.mu.Unlock()
	ch, ok := o.changes[real]
	if !ok {
		return Change{}, false
	}
	return Change{Path: real, Content: string(ch.data), Mode: ch.mode, Deleted: ch.deleted}, true
}

// Restore puts back into o a change that [Overlay.Changed] returned,
// without reading DIR. Its path is checked as a write's is (inside the
// tree, not hidden), and the overlay's bounds on size hold.
func (o *Overlay) Restore(c Change) error {
	const op = "restore"
	p, err := cleanWrite(op, c.Path)
	if err != nil {
		return err
	}
	switch o.w.why(p, false) {
	case hiddenGit, hiddenSecret, hiddenIgnored:
		return pathErr(op, c.Path, ErrHidden, "hidden paths cannot be changed")
	}
	o.change.Lock()
	defer o.change.Unlock()
	if c.Deleted {
		o.mu.Lock()
		defer o.mu.Unlock()
		if old, ok := o.changes[p]; ok {
			o.total -= int64(len(old.data))
		}
		o.changes[p] = &change{deleted: true}
		return nil
	}
	mode := c.Mode.Perm()
	if mode == 0 {
		mode = 0o644
	}
	return o.set(op, c.Path, p, node{mode: mode}, true, c.Content)
}
