package workspace

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"path"
	"slices"
	"strings"

	"github.com/bmatcuk/doublestar/v4"
)

// Entry is a visible file, directory or symbolic link.
type Entry struct {
	Path string `json:"path"` // relative to the workspace root, slash-separated
	Type string `json:"type"` // "file", "dir" or "symlink"
	Size int64  `json:"size,omitempty"`
	// Target is the path a symbolic link leads to, relative to the root.
	// Links that lead outside the workspace, to nothing, or to a hidden
	// path are not listed.
	Target string `json:"target,omitempty"`
}

// Types of an [Entry].
const (
	TypeFile    = "file"
	TypeDir     = "dir"
	TypeSymlink = "symlink"
)

// ListOptions are the arguments of a List besides the directory; a model
// may choose them.
type ListOptions struct {
	// Recursive lists the whole tree under the directory, not only its
	// entries. The walk does not follow symbolic links.
	Recursive bool `json:"recursive,omitempty"`
	// Glob keeps the entries whose path relative to the listed directory
	// it matches (doublestar syntax; a glob without a slash matches the
	// name at any depth, as in .gitignore).
	Glob string `json:"glob,omitempty"`
	// Max bounds the entries returned; zero or more than
	// [Options.MaxListEntries] means that.
	Max int `json:"max,omitempty"`
}

// ListResult is what a List found.
type ListResult struct {
	Entries []Entry `json:"entries"`
	// More counts the entries found past the bound and not returned.
	More int `json:"more,omitempty"`
}

// String renders r for a model: one path a line, directories with a
// trailing slash, and "truncated: N more" when entries were left out.
func (r ListResult) String() string {
	var b strings.Builder
	for _, e := range r.Entries {
		switch e.Type {
		case TypeDir:
			fmt.Fprintf(&b, "%s/\n", e.Path)
		case TypeSymlink:
			fmt.Fprintf(&b, "%s -> %s\n", e.Path, e.Target)
		default:
			fmt.Fprintf(&b, "%s (%s)\n", e.Path, size(e.Size))
		}
	}
	if len(r.Entries) == 0 {
		b.WriteString("(no entries)\n")
	}
	if r.More > 0 {
		fmt.Fprintf(&b, "truncated: %d more (narrow the glob or list a subdirectory)\n", r.More)
	}
	return b.String()
}

// List lists the visible entries of the directory dir ("" or "." for the
// root), in lexical order of their paths.
func (w *Workspace) List(ctx context.Context, dir string, opts ListOptions) (ListResult, error) {
	return w.list(ctx, dir, opts, nil)
}

func (w *Workspace) list(ctx context.Context, dir string, opts ListOptions, o *Overlay) (ListResult, error) {
	const op = "list"
	if dir == "" {
		dir = "."
	}
	match, err := globMatcher(op, opts.Glob)
	if err != nil {
		return ListResult{}, err
	}
	n, err := w.stat(op, dir, o)
	if err != nil {
		return ListResult{}, err
	}
	if !n.isDir() {
		return ListResult{}, pathErr(op, dir, ErrNotRegular, "it is a file, not a directory; Read it, or List its directory")
	}
	max := w.opts.MaxListEntries
	if opts.Max > 0 && opts.Max < max {
		max = opts.Max
	}
	res := ListResult{Entries: []Entry{}}
	err = w.walk(ctx, n.path, opts.Recursive, o, func(e Entry) error {
		if !match(rel(n.path, e.Path)) {
			return nil
		}
		if len(res.Entries) < max {
			res.Entries = append(res.Entries, e)
		} else {
			res.More++
		}
		return nil
	})
	return res, err
}

// globMatcher returns a function reporting whether a relative path matches
// glob (every path, for ""). A glob without a slash matches a path's last
// element.
func globMatcher(op, glob string) (func(string) bool, error) {
	if glob == "" {
		return func(string) bool { return true }, nil
	}
	if len(glob) > maxGlobLen {
		return nil, pathErr(op, glob[:32]+"...", ErrInvalidPath, "the glob is %d bytes long; at most %d", len(glob), maxGlobLen)
	}
	g := strings.TrimPrefix(glob, "./")
	// doublestar tries each alternative of a {a,b} group against the rest
	// of the name, so k groups of n cost n^k: a model gets one group.
	if strings.Count(g, "{") > 1 || strings.Count(g, ",") > maxGlobAlternatives-1 {
		return nil, pathErr(op, glob, ErrInvalidPath, "a glob may have one {a,b,...} group, of at most %d alternatives", maxGlobAlternatives)
	}
	if !doublestar.ValidatePattern(g) {
		return nil, pathErr(op, glob, ErrInvalidPath, `the glob is malformed (use *, ?, [a-z], {a,b} and ** for any number of directories)`)
	}
	if !strings.Contains(g, "/") {
		return func(p string) bool { return doublestar.MatchUnvalidated(g, path.Base(p)) }, nil
	}
	return func(p string) bool { return doublestar.MatchUnvalidated(g, p) }, nil
}

// rel returns the path p relative to the directory dir, which holds it.
func rel(dir, p string) string {
	if dir == "." {
		return p
	}
	return strings.TrimPrefix(p, dir+"/")
}

// errStop ends a walk early without an error.
var errStop = errors.New("stop")

// walk calls fn for each visible entry of the directory dir (a real path)
// of the view under o, in lexical order, and for the entries of its
// subdirectories when recursive (depth first, a directory before what it
// holds). It does not follow symbolic links. fn may return errStop to end
// the walk.
func (w *Workspace) walk(ctx context.Context, dir string, recursive bool, o *Overlay, fn func(Entry) error) error {
	err := w.walkDir(ctx, dir, recursive, o, fn)
	if errors.Is(err, errStop) {
		return nil
	}
	return err
}

func (w *Workspace) walkDir(ctx context.Context, dir string, recursive bool, o *Overlay, fn func(Entry) error) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	type child struct {
		e    Entry
		emit bool // false: a hidden directory walked only for what Show shows in it
	}
	children := map[string]child{}
	if f, err := w.root.Open(dir); err == nil {
		des, err := f.ReadDir(-1)
		f.Close()
		if err != nil && !errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("list %q: %w", dir, err)
		}
		for _, de := range des {
			p := path.Join(dir, de.Name())
			switch t := de.Type(); {
			case t.IsDir():
				switch w.why(p, true) {
				case visible:
					children[de.Name()] = child{Entry{Path: p, Type: TypeDir}, true}
				case hiddenIgnored:
					if recursive && w.mayShowBelow(p) {
						children[de.Name()] = child{Entry{Path: p, Type: TypeDir}, false}
					}
				}
			case t.IsRegular():
				if w.visible(p, false) {
					var sz int64
					if fi, err := de.Info(); err == nil {
						sz = fi.Size()
					}
					children[de.Name()] = child{Entry{Path: p, Type: TypeFile, Size: sz}, true}
				}
			case t&fs.ModeSymlink != 0:
				if n, err := w.stat("list", p, o); err == nil {
					children[de.Name()] = child{Entry{Path: p, Type: TypeSymlink, Target: n.path}, true}
				}
			}
		}
	}
	for name, e := range o.children(dir) {
		if e == nil {
			delete(children, name)
		} else {
			children[name] = child{*e, true}
		}
	}
	names := make([]string, 0, len(children))
	for name := range children {
		names = append(names, name)
	}
	slices.Sort(names)
	for _, name := range names {
		c := children[name]
		if c.emit {
			if err := fn(c.e); err != nil {
				return err
			}
		}
		if recursive && c.e.Type == TypeDir {
			if err := w.walkDir(ctx, c.e.Path, true, o, fn); err != nil {
				return err
			}
		}
	}
	return nil
}
