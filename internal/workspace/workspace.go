// Package workspace lets workers read and change a real directory tree (a
// repository, a folder of documents) without ever touching it until the
// user applies the result.
//
// Everything a model writes is untrusted: the paths, globs, patterns and
// contents of its tool calls are data it chooses, and this package makes
// sure they stay data. A [Workspace] is a read-only view of one directory,
// DIR, opened with [os.Root], so no path a model names reaches outside it:
// absolute paths, "..", symbolic links that leave the tree, and files that
// are not regular (FIFOs, devices, sockets) are refused with an error that
// says why. Some paths inside DIR are hidden and behave as if they did not
// exist: .git, whatever the tree's .gitignore files ignore (unless
// [Options.Show] shows it), and secrets (.env, keys, credentials, and the
// globs of [Options.Hide]). Reads are bounded: [Workspace.List] in
// entries, [Workspace.Read] in lines and bytes, [Workspace.Grep] in
// matches, bytes and the size of the files it scans, with Go's RE2
// regular expressions, whose time is linear in the input whatever the
// pattern.
//
// A worker changes files in an [Overlay], its own copy-on-write layer over
// the view: [Overlay.Write], [Overlay.Edit] and [Overlay.Delete] are kept in
// memory, confined like reads (no hidden path, nothing under .git) and
// bounded in size, and the overlay's reads see them. [Overlay.Diff] says
// what changed as a git-style unified diff; [Overlay.Materialize] writes
// the tree with the changes, as the overlay's reads see it (nothing
// hidden) and within a budget of bytes, into a fresh directory, where
// tests can run in the sandbox.
//
// At the end of a run, [ParsePatch] reads the workers' diffs back,
// [Merge] combines them (changes to different files, or to different
// lines of a file, merge; overlapping changes are a [Conflict]), and
// [Workspace.Apply] writes the result into DIR, the only write to DIR this
// package makes, and only if DIR is as it was when the run began: its
// [Workspace.Fingerprint] still matches.
//
// The checks assume that nothing else rearranges DIR while a workspace
// reads it (a model cannot: overlays never write DIR, and code runs on
// a materialized copy). Should something swap a checked file for a link
// all the same, [os.Root] still keeps every access inside DIR.
package workspace

import (
	"cmp"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"unicode/utf8"

	"github.com/go-git/go-git/v5/plumbing/format/gitignore"
)

// Defaults of [Options].
const (
	DefaultMaxListEntries  = 1000
	DefaultMaxReadBytes    = 64 << 10
	DefaultMaxReadLines    = 2000
	DefaultMaxGrepMatches  = 200
	DefaultMaxGrepBytes    = 64 << 10
	DefaultMaxFileSize     = 4 << 20
	DefaultMaxOverlayBytes = 32 << 20
)

// Bounds on what a model may pass.
const (
	maxPathLen = 4096 // bytes of a path (PATH_MAX)
	maxNameLen = 255  // bytes of one path element (NAME_MAX)
	maxGlobLen = 256  // bytes of a glob
	// alternatives of the one {a,b,...} group a glob may have
	maxGlobAlternatives = 16
	maxPatternLen       = 1024 // bytes of a regular expression
	maxLinks            = 40   // symbolic links followed resolving one path, as Linux does
	sniffLen            = 8 << 10
)

// Options configure a [Workspace]. They come from the user's configuration,
// never from a model. The zero value works: each zero limit takes its
// default.
type Options struct {
	// Hide lists globs of further secret paths, hidden as the built-in
	// ones (.env, *.pem, ...) are. Globs use doublestar syntax ("**"
	// crosses directories) over slash-separated paths relative to DIR; a
	// glob without a slash matches a name at any depth, as in .gitignore.
	// A glob that matches a directory hides everything in it.
	Hide []string
	// Show lists globs, of the same syntax, of paths the .gitignore files
	// ignore that should be visible all the same: to reads, and in the copy
	// [Overlay.Materialize] makes, where code runs. A secret path (built in
	// or from Hide) is shown only when Show names it literally, without
	// wildcards; .git is never shown.
	Show []string

	MaxListEntries int   // entries a List returns; default 1,000
	MaxReadBytes   int   // bytes of text a Read returns; default 64 KiB
	MaxReadLines   int   // lines a Read returns; default 2,000
	MaxGrepMatches int   // matches a Grep returns; default 200
	MaxGrepBytes   int   // bytes of matched lines a Grep returns; default 64 KiB
	MaxFileSize    int64 // largest file Grep scans and an overlay edits or writes; default 4 MiB
	// MaxOverlayBytes bounds the total size of the files an overlay has
	// written; default 32 MiB.
	MaxOverlayBytes int64
}

// Workspace is a read-only view of a directory tree. It is safe for
// concurrent use.
type Workspace struct {
	root *os.Root
	opts Options
	hide []string // opts.Hide, each glob anchored ("**/" added to one without a slash)
	// hideFolded holds the globs of hide folded (see [foldRunes]), matched
	// against folded paths.
	hideFolded []string
	show       []string // opts.Show, anchored the same way

	mu      sync.Mutex
	ignores map[string][]gitignore.Pattern // guarded by mu: patterns of each directory's .gitignore, by directory
}

// Open opens a read-only view of dir. It fails when dir is not a
// directory or a glob in opts is malformed.
func Open(dir string, opts Options) (*Workspace, error) {
	anchor := func(kind string, globs []string) ([]string, error) {
		var out []string
		for _, g := range globs {
			g = strings.TrimSuffix(strings.TrimPrefix(g, "/"), "/")
			if !strings.Contains(g, "/") {
				g = "**/" + g
			}
			if g == "" || !doublestarValid(g) {
				return nil, fmt.Errorf("workspace: %s glob %q is malformed", kind, g)
			}
			out = append(out, g)
		}
		return out, nil
	}
	hide, err := anchor("hide", opts.Hide)
	if err != nil {
		return nil, err
	}
	show, err := anchor("show", opts.Show)
	if err != nil {
		return nil, err
	}
	if err := hiddenDir(dir, opts); err != nil {
		return nil, err
	}
	root, err := os.OpenRoot(dir)
	if err != nil {
		return nil, fmt.Errorf("workspace: open %s: %w", dir, err)
	}
	opts.MaxListEntries = cmp.Or(opts.MaxListEntries, DefaultMaxListEntries)
	opts.MaxReadBytes = cmp.Or(opts.MaxReadBytes, DefaultMaxReadBytes)
	opts.MaxReadLines = cmp.Or(opts.MaxReadLines, DefaultMaxReadLines)
	opts.MaxGrepMatches = cmp.Or(opts.MaxGrepMatches, DefaultMaxGrepMatches)
	opts.MaxGrepBytes = cmp.Or(opts.MaxGrepBytes, DefaultMaxGrepBytes)
	opts.MaxFileSize = cmp.Or(opts.MaxFileSize, DefaultMaxFileSize)
	opts.MaxOverlayBytes = cmp.Or(opts.MaxOverlayBytes, DefaultMaxOverlayBytes)
	var hideFolded []string
	for _, g := range hide {
		hideFolded = append(hideFolded, foldRunes(g))
	}
	return &Workspace{root: root, opts: opts, hide: hide, hideFolded: hideFolded, show: show, ignores: map[string][]gitignore.Pattern{}}, nil
}

// Close releases the directory. Overlays of w must not be used after.
func (w *Workspace) Close() error { return w.root.Close() }

// Errors that callers may branch on; the errors returned wrap them, most
// in a [*PathError] that says which path and what to do.
var (
	// ErrNotFound: the path does not exist, or it is hidden.
	ErrNotFound = errors.New("not found or hidden")
	// ErrHidden: a write names a hidden path.
	ErrHidden = errors.New("hidden")
	// ErrOutside: the path, or a symbolic link on it, leads outside the
	// workspace.
	ErrOutside = errors.New("outside the workspace")
	// ErrInvalidPath: the path is malformed (empty, absolute, too long, a
	// NUL byte).
	ErrInvalidPath = errors.New("invalid path")
	// ErrNotRegular: the path names a directory where a file is needed,
	// or a FIFO, device or socket.
	ErrNotRegular = errors.New("not a regular file")
	// ErrBinary: the file has a NUL byte in its first 8 KiB.
	ErrBinary = errors.New("binary file")
	// ErrTooLarge: a size limit is passed.
	ErrTooLarge = errors.New("too large")
	// ErrChanged: [Workspace.Apply] found DIR changed since the run
	// began, and wrote nothing.
	ErrChanged = errors.New("the directory changed since the run began")
)

// PathError is the error of an operation on a path. Its message is meant
// for the model that chose the path: what is wrong, and what to do.
type PathError struct {
	Op   string // "read", "list", "write", ...
	Path string // the path as given
	Err  error  // one of the Err* sentinels, or a cause
	Hint string // what to do, or ""
}

func (e *PathError) Error() string {
	s := fmt.Sprintf("%s %q: %v", e.Op, e.Path, e.Err)
	if e.Hint != "" {
		s += "; " + e.Hint
	}
	return s
}

func (e *PathError) Unwrap() error { return e.Err }

func pathErr(op, p string, err error, hint string, args ...any) *PathError {
	if len(args) > 0 {
		hint = fmt.Sprintf(hint, args...)
	}
	return &PathError{Op: op, Path: p, Err: err, Hint: hint}
}

// notFound is the error of a path that does not exist or is hidden: the
// two look the same, so a model learns nothing of hidden files.
func notFound(op, p string) error {
	return pathErr(op, p, ErrNotFound, "List shows what there is")
}

// clean checks a path a model gave and returns it relative to the root,
// slash-separated and clean ("." for the root itself).
func clean(op, p string) (string, error) {
	switch {
	case strings.IndexByte(p, 0) >= 0:
		return "", pathErr(op, p, ErrInvalidPath, "it has a NUL byte")
	case len(p) > maxPathLen:
		return "", pathErr(op, p[:64]+"...", ErrInvalidPath, "it is %d bytes long; at most %d", len(p), maxPathLen)
	case !utf8.ValidString(p):
		return "", pathErr(op, p, ErrInvalidPath, "it is not valid UTF-8")
	case strings.HasPrefix(p, "/"):
		return "", pathErr(op, p, ErrOutside, "give a path relative to the workspace root, such as %q", strings.TrimLeft(p, "/"))
	}
	c := path.Clean(p)
	if c == ".." || strings.HasPrefix(c, "../") {
		return "", pathErr(op, p, ErrOutside, "paths are relative to the workspace root and cannot go above it")
	}
	for _, e := range strings.Split(c, "/") {
		if len(e) > maxNameLen {
			return "", pathErr(op, p, ErrInvalidPath, "an element of it is %d bytes long; at most %d", len(e), maxNameLen)
		}
	}
	return c, nil
}

// cleanWrite checks a path to be written: clean, not the root, and free of
// the characters that a diff would have to quote.
func cleanWrite(op, p string) (string, error) {
	c, err := clean(op, p)
	if err != nil {
		return "", err
	}
	if c == "." || p == "" {
		return "", pathErr(op, p, ErrInvalidPath, "name a file")
	}
	for _, r := range c {
		switch {
		case r < 0x20 || r == 0x7f || r == '"' || r == '\\':
			return "", pathErr(op, p, ErrInvalidPath, "control characters, quotes and backslashes cannot be written in a file name")
		case (r >= 0x80 && r <= 0x9f) || ignorable(r):
			// C1 controls, bidirectional marks and zero-width characters
			// make a name display as another (in a review, a terminal).
			return "", pathErr(op, p, ErrInvalidPath, "invisible characters (C1 controls, bidirectional marks, zero-width characters) cannot be written in a file name")
		case r == ':':
			// On Windows, "NAME:STREAM" and "NAME::$INDEX_ALLOCATION" name
			// a stream of NAME, or NAME itself: .git::$INDEX_ALLOCATION is
			// .git.
			return "", pathErr(op, p, ErrInvalidPath, "a colon cannot be written in a file name (on Windows it names a stream of another file)")
		}
	}
	for _, e := range split(c) {
		if shortName(fold(e)) {
			return "", pathErr(op, p, ErrInvalidPath, "%s has the shape of a Windows short name (like GIT~1), which may stand for another file; choose another name", e)
		}
	}
	return c, nil
}

// shortName reports whether the folded path element e has the shape of a
// Windows 8.3 short name made up for a longer one, such as git~1 (.git)
// or gi7eba~1: at most 8 characters, a tilde and digits, then at most a
// dot and 3 characters.
func shortName(e string) bool {
	base, ext, _ := strings.Cut(e, ".")
	i := strings.LastIndexByte(base, '~')
	if i <= 0 || i == len(base)-1 || len(base) > 8 || len(ext) > 3 || strings.Contains(ext, ".") {
		return false
	}
	for _, r := range base[i+1:] {
		if r < '0' || r > '9' {
			return false
		}
	}
	return true
}

// resolve follows the symbolic links on the clean path p, as the kernel
// would but inside the root, and returns the path it leads to, relative to
// the root. A link that is absolute or leads above the root is refused
// with ErrOutside. The part of p from the first element that does not
// exist on is returned as it is, with exists false.
// Resolve returns the path p (relative to the root, as a model gives
// one) names once the links in it are followed: clean, relative to the
// root. A path that leads out of the tree is an error.
func (w *Workspace) Resolve(p string) (string, error) {
	c, err := clean("resolve", p)
	if err != nil {
		return "", err
	}
	real, _, err := w.resolve("resolve", c)
	return real, err
}

func (w *Workspace) resolve(op, p string) (real string, exists bool, err error) {
	var done []string
	todo := split(p)
	links := 0
	for len(todo) > 0 {
		e := todo[0]
		todo = todo[1:]
		switch e {
		case ".":
			continue
		case "..":
			if len(done) == 0 {
				return "", false, pathErr(op, p, ErrOutside, "a symbolic link on the path leads above the workspace root; only files inside it can be used")
			}
			done = done[:len(done)-1]
			continue
		}
		cur := join(append(done, e))
		fi, err := w.root.Lstat(cur)
		if errors.Is(err, fs.ErrNotExist) {
			return join(append(append(done, e), todo...)), false, nil
		}
		if err != nil {
			if isNotDir(err) {
				return "", false, pathErr(op, p, ErrNotFound, "%s is a file, not a directory", join(done))
			}
			return "", false, pathErr(op, p, err, "")
		}
		if fi.Mode()&fs.ModeSymlink == 0 {
			done = append(done, e)
			continue
		}
		if links++; links > maxLinks {
			return "", false, pathErr(op, p, ErrNotFound, "more than %d symbolic links on the path (a loop?)", maxLinks)
		}
		target, err := w.root.Readlink(cur)
		if err != nil {
			return "", false, pathErr(op, p, err, "")
		}
		if strings.HasPrefix(target, "/") {
			return "", false, pathErr(op, p, ErrOutside, "%s is a symbolic link to an absolute path; only files inside the workspace can be used", cur)
		}
		todo = append(split(target), todo...)
	}
	return join(done), true, nil
}

// join joins path elements; "." for none.
func join(elems []string) string {
	if len(elems) == 0 {
		return "."
	}
	return path.Join(elems...)
}

// split returns the elements of a slash-separated path; none for ".".
func split(p string) []string {
	if p == "." || p == "" {
		return nil
	}
	return strings.Split(p, "/")
}

// isNotDir reports whether err says an element of a path is a file where
// a directory should be.
func isNotDir(err error) bool { return errors.Is(err, syscall.ENOTDIR) }

// hiddenDir refuses a workspace that is itself hidden: a repository's
// .git or a directory under it, a secret directory (~/.ssh, ~/.aws) or one
// under it, or a directory that the repository it is in hides (ignores,
// or hides as a secret). Inside such a directory no path element is
// hidden any more, so workers would read what they must not (the
// credentials of .git/config, keys) and a patch could write it (.git's
// hooks and config run commands). Links are followed first.
func hiddenDir(dir string, opts Options) error {
	real, err := filepath.EvalSymlinks(dir)
	if err != nil {
		return fmt.Errorf("workspace: open %s: %w", dir, err)
	}
	real, err = filepath.Abs(real)
	if err != nil {
		return fmt.Errorf("workspace: %w", err)
	}
	for _, e := range strings.Split(filepath.ToSlash(real), "/") {
		if e == "" {
			continue
		}
		if isGitDir(e) {
			return fmt.Errorf("workspace %s is a repository's .git directory or inside one, which workers may never see: name the repository's work tree instead", dir)
		}
		f := fold(e)
		for _, g := range secretNames {
			if ok, _ := path.Match(g, f); ok {
				return fmt.Errorf("workspace %s is a secret directory (%s) or inside one, which workers may never see: name a directory of project files", dir, e)
			}
		}
	}
	// The repository around it, if any, may hide it.
	for top := filepath.Dir(real); ; top = filepath.Dir(top) {
		if fi, err := os.Lstat(filepath.Join(top, ".git")); err == nil && (fi.IsDir() || fi.Mode().IsRegular()) {
			rel, err := filepath.Rel(top, real)
			if err != nil {
				return nil
			}
			o := opts
			o.Show, o.Hide = nil, nil // the repository's own rules, and the built-in ones
			w, err := Open(top, o)
			if err != nil {
				return nil // not readable as a workspace: nothing to compare with
			}
			defer w.Close()
			if why := w.why(filepath.ToSlash(rel), true); why != visible {
				return fmt.Errorf("workspace %s is hidden in the repository %s (a .gitignore ignores it, or it is a secret), so workers may not see it: name the repository, or a directory it does not hide", dir, top)
			}
			return nil
		}
		if top == filepath.Dir(top) {
			return nil
		}
	}
}
