package workspace

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
)

// node is what a path names in a view: DIR, or DIR under an overlay.
type node struct {
	path string      // the real path (symbolic links followed), relative to the root
	mode fs.FileMode // type and permission bits
	size int64
	// data holds the contents of a file an overlay wrote; nil for a file
	// of DIR, read when needed.
	data    []byte
	written bool // the overlay wrote the file
}

func (n node) isDir() bool { return n.mode.IsDir() }

// stat returns what the path p, as a model gave it, names in the view of
// w under o (nil for DIR alone). A path that does not exist or is hidden
// is ErrNotFound; one that leads outside, ErrOutside.
func (w *Workspace) stat(op, p string, o *Overlay) (node, error) {
	c, err := clean(op, p)
	if err != nil {
		return node{}, err
	}
	real, exists, err := w.resolve(op, c)
	if err != nil {
		return node{}, err
	}
	n := node{path: real}
	ch, dir, inOverlay := o.lookup(real)
	switch {
	case inOverlay && dir:
		n.mode = fs.ModeDir | 0o755
	case inOverlay && (ch == nil || ch.deleted):
		return node{}, notFound(op, p)
	case inOverlay:
		n.mode, n.size, n.data, n.written = ch.mode, int64(len(ch.data)), ch.data, true
	case !exists:
		return node{}, notFound(op, p)
	default:
		fi, err := w.root.Lstat(real)
		if err != nil {
			return node{}, notFound(op, p)
		}
		n.mode, n.size = fi.Mode(), fi.Size()
	}
	if !w.visible(c, n.isDir()) || !w.visible(real, n.isDir()) {
		return node{}, notFound(op, p)
	}
	return n, nil
}

// file is stat for a path that must be a regular file.
func (w *Workspace) file(op, p string, o *Overlay) (node, error) {
	n, err := w.stat(op, p, o)
	if err != nil {
		return node{}, err
	}
	if err := regular(op, p, n.mode); err != nil {
		return node{}, err
	}
	return n, nil
}

// regular says why a file of mode m cannot be read or changed, or nil if
// it can.
func regular(op, p string, m fs.FileMode) error {
	switch {
	case m.IsRegular():
		return nil
	case m.IsDir() && (op == "read" || op == "grep"):
		return pathErr(op, p, ErrNotRegular, "it is a directory; List shows what it holds")
	case m.IsDir():
		return pathErr(op, p, ErrNotRegular, "it is a directory; files are written and deleted one by one")
	default:
		return pathErr(op, p, ErrNotRegular, "it is a %s, which the workspace neither reads nor writes", kindOf(m))
	}
}

// kindOf names the type of a file of mode m.
func kindOf(m fs.FileMode) string {
	switch {
	case m&fs.ModeNamedPipe != 0:
		return "FIFO"
	case m&fs.ModeSocket != 0:
		return "socket"
	case m&fs.ModeDevice != 0:
		return "device"
	case m&fs.ModeSymlink != 0:
		return "symbolic link"
	case m.IsDir():
		return "directory"
	}
	return "special file"
}

// open returns the contents of the regular file n.
func (w *Workspace) open(op, p string, n node) (io.ReadCloser, error) {
	if n.written {
		return io.NopCloser(bytes.NewReader(n.data)), nil
	}
	f, _, err := w.openRegular(n.path)
	if err != nil {
		var pe *PathError
		if errors.As(err, &pe) {
			return nil, pathErr(op, p, pe.Err, pe.Hint)
		}
		return nil, pathErr(op, p, err, "")
	}
	return f, nil
}

// openRegular opens the file at the real path p of DIR for reading and
// checks, on the open file, that it is regular: a FIFO or a device is
// refused without being read, and without waiting for a FIFO's writer.
func (w *Workspace) openRegular(p string) (*os.File, fs.FileInfo, error) {
	f, err := w.root.OpenFile(p, os.O_RDONLY|openFlags, 0)
	if err != nil {
		return nil, nil, err
	}
	fi, err := f.Stat()
	if err == nil && !fi.Mode().IsRegular() {
		err = &PathError{Op: "open", Path: p, Err: ErrNotRegular, Hint: fmt.Sprintf("it is a %s", kindOf(fi.Mode()))}
	}
	if err != nil {
		f.Close()
		return nil, nil, err
	}
	return f, fi, nil
}

// readAll reads the regular file n whole, refusing one larger than max
// bytes.
func (w *Workspace) readAll(op, p string, n node, max int64) ([]byte, error) {
	if n.written {
		return n.data, nil
	}
	if n.size > max {
		return nil, pathErr(op, p, ErrTooLarge, "it is %s, more than the %s the workspace reads whole", size(n.size), size(max))
	}
	r, err := w.open(op, p, n)
	if err != nil {
		return nil, err
	}
	defer r.Close()
	b, err := io.ReadAll(io.LimitReader(r, max+1))
	if err != nil {
		return nil, pathErr(op, p, err, "")
	}
	if int64(len(b)) > max {
		return nil, pathErr(op, p, ErrTooLarge, "it is more than the %s the workspace reads whole", size(max))
	}
	return b, nil
}

// isBinary reports whether b, the start of a file, holds a NUL byte in
// its first 8 KiB.
func isBinary(b []byte) bool {
	return bytes.IndexByte(b[:min(len(b), sniffLen)], 0) >= 0
}

// size formats a byte count for a person or a model.
func size(n int64) string {
	switch {
	case n >= 1<<20 && n%(1<<20) == 0:
		return fmt.Sprintf("%d MiB", n>>20)
	case n >= 1<<20:
		return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20))
	case n >= 1<<10 && n%(1<<10) == 0:
		return fmt.Sprintf("%d KiB", n>>10)
	case n >= 1<<10:
		return fmt.Sprintf("%.1f KiB", float64(n)/(1<<10))
	}
	return fmt.Sprintf("%d bytes", n)
}

// plural returns "1 line", "2 lines".
func plural(n int, one, many string) string {
	if n == 1 {
		return "1 " + one
	}
	return fmt.Sprintf("%d %s", n, many)
}
