package workspace

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
)

// Diff returns o's changes to DIR as a git-style unified diff (see
// [Patch.String]), files in lexical order; "" when nothing changed. A file
// written with the contents it had is no change.
func (o *Overlay) Diff() (string, error) {
	p, err := o.patch()
	if err != nil {
		return "", err
	}
	return p.String(), nil
}

// patch returns o's changes as a patch against DIR as it is now.
func (o *Overlay) patch() (Patch, error) {
	changes, paths := o.snapshot()
	var p Patch
	for _, real := range paths {
		ch := changes[real]
		old, exists, mode, err := o.w.base(real)
		if err != nil {
			return Patch{}, fmt.Errorf("diff: %w", err)
		}
		if !exists {
			mode = ch.mode
		}
		if fp, ok := filePatchOf(real, old, ch.data, exists, !ch.deleted, mode); ok {
			p.files = append(p.files, fp)
		}
	}
	return p, nil
}

// base returns the contents and permission bits of the file at the real
// path p of DIR, and whether there is one.
func (w *Workspace) base(p string) ([]byte, bool, fs.FileMode, error) {
	fi, err := w.root.Lstat(p)
	if errors.Is(err, fs.ErrNotExist) || isNotDir(err) {
		return nil, false, 0, nil
	}
	if err != nil {
		return nil, false, 0, err
	}
	if !fi.Mode().IsRegular() {
		return nil, false, 0, fmt.Errorf("%s is a %s now", p, kindOf(fi.Mode()))
	}
	b, err := w.readAll("read", p, node{path: p, mode: fi.Mode(), size: fi.Size()}, w.opts.MaxFileSize)
	if err != nil {
		return nil, false, 0, err
	}
	return b, true, fi.Mode().Perm(), nil
}

// DefaultMaxMaterialize is the budget in bytes of [Overlay.Materialize]
// when its max is not positive: 1 GiB.
const DefaultMaxMaterialize = 1 << 30

// Materialize writes the tree with o's changes into dst, a directory that
// must not exist or be empty, for a build or tests to run there (in the
// sandbox). It copies what the overlay's reads see, and nothing else:
// never .git, secrets or the configured hidden paths, and what .gitignore
// ignores only when [Options.Show] shows it (code run in the copy may
// print whatever it finds there). Permission bits are kept (directories
// are made writable by their owner); FIFOs, devices and sockets are left
// out, and so are symbolic links that lead outside the tree or to a path
// that is not visible.
//
// The files copied total at most max bytes (DefaultMaxMaterialize when max
// is not positive): past it, Materialize stops copying at once and
// returns an error that wraps [ErrTooLarge]. On any error dst holds part
// of the tree, and the caller removes it.
func (o *Overlay) Materialize(ctx context.Context, dst string, max int64) error {
	if max <= 0 {
		max = DefaultMaxMaterialize
	}
	if err := os.Mkdir(dst, 0o755); err != nil && !errors.Is(err, fs.ErrExist) {
		return fmt.Errorf("materialize: %w", err)
	}
	if des, err := os.ReadDir(dst); err != nil || len(des) > 0 {
		return fmt.Errorf("materialize: %s must be a new or empty directory", dst)
	}
	out, err := os.OpenRoot(dst)
	if err != nil {
		return fmt.Errorf("materialize: %w", err)
	}
	defer out.Close()
	changes, paths := o.snapshot()
	done := map[string]bool{}
	w := o.w
	left := max // bytes the copy may still take
	take := func(p string, n int64) error {
		if left -= n; left < 0 {
			return fmt.Errorf("the workspace with the changes is over %s, the most that is copied (at %s): %w", size(max), p, ErrTooLarge)
		}
		return nil
	}
	err = w.walkAll(ctx, ".", func(p string, de fs.DirEntry) error {
		fi, err := de.Info()
		if errors.Is(err, fs.ErrNotExist) {
			return nil
		}
		if err != nil {
			return err
		}
		switch {
		case fi.IsDir():
			switch w.why(p, true) {
			case visible:
			case hiddenIgnored:
				if !w.mayShowBelow(p) {
					return fs.SkipDir
				}
				// Walked for what Show shows in it.
			default:
				return fs.SkipDir
			}
			return out.Mkdir(p, fi.Mode().Perm()|0o700)
		case fi.Mode().IsRegular():
			if ch, ok := changes[p]; ok {
				done[p] = true
				if ch.deleted {
					return nil
				}
				if err := take(p, int64(len(ch.data))); err != nil {
					return err
				}
				return writeNew(out, p, ch.data, ch.mode)
			}
			if !w.visible(p, false) {
				return nil
			}
			return w.copyFile(out, p, fi.Mode().Perm(), take)
		case fi.Mode()&fs.ModeSymlink != 0:
			if !w.visible(p, false) {
				return nil
			}
			real, exists, err := w.resolve("materialize", p)
			if err != nil || !exists {
				return nil
			}
			rfi, err := w.root.Stat(real)
			if err != nil || !w.visible(real, rfi.IsDir()) {
				return nil
			}
			if ch, ok := changes[real]; ok && ch.deleted {
				return nil
			}
			target, err := w.root.Readlink(p)
			if err != nil {
				return err
			}
			return out.Symlink(target, p)
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("materialize: %w", err)
	}
	for _, p := range paths {
		if ch := changes[p]; !done[p] && !ch.deleted {
			if err := take(p, int64(len(ch.data))); err != nil {
				return fmt.Errorf("materialize: %w", err)
			}
			if err := out.MkdirAll(path.Dir(p), 0o755); err != nil {
				return fmt.Errorf("materialize: %w", err)
			}
			if err := writeNew(out, p, ch.data, ch.mode); err != nil {
				return fmt.Errorf("materialize: %w", err)
			}
		}
	}
	return nil
}

// copyFile copies the regular file p of DIR to the same path in out,
// once take has taken its size from the budget.
func (w *Workspace) copyFile(out *os.Root, p string, perm fs.FileMode, take func(p string, n int64) error) error {
	in, fi, err := w.openRegular(p)
	if err != nil {
		return err
	}
	defer in.Close()
	if err := take(p, fi.Size()); err != nil {
		return err
	}
	f, err := out.OpenFile(p, os.O_WRONLY|os.O_CREATE|os.O_EXCL, perm)
	if err != nil {
		return err
	}
	// No more than the size taken, should the file grow meanwhile.
	_, err = io.Copy(f, io.LimitReader(in, fi.Size()))
	return closeChmod(f, perm, err)
}

// writeNew writes data to a new file p of out.
func writeNew(out *os.Root, p string, data []byte, perm fs.FileMode) error {
	f, err := out.OpenFile(p, os.O_WRONLY|os.O_CREATE|os.O_EXCL, perm)
	if err != nil {
		return err
	}
	_, err = f.Write(data)
	return closeChmod(f, perm, err)
}

// closeChmod sets f's permission bits to perm (whatever the umask took
// away) and closes it, returning the first error, err included.
func closeChmod(f *os.File, perm fs.FileMode, err error) error {
	if err == nil {
		err = f.Chmod(perm)
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}
