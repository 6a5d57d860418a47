package workspace

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"io/fs"
	"path"
	"slices"
)

// Fingerprint returns a digest of DIR as it is now, "sha256:" and 64 hex
// digits, to tell later whether DIR changed (see [Workspace.Apply]).
//
// It covers every entry of the tree but .git (at any depth), hidden or
// not, without following symbolic links: each entry's path, type and
// permission bits; a regular file's contents; a symbolic link's target.
// Of a secret path it covers the size and modification time instead of
// the contents, so that a fingerprint, which may be journaled or shown,
// tells nothing of a secret. FIFOs, devices and sockets count by path and
// type, and are never opened. Ownership, times (but a secret's) and
// extended attributes are not covered.
func (w *Workspace) Fingerprint(ctx context.Context) (string, error) {
	h := sha256.New()
	fh, buf := sha256.New(), make([]byte, 64<<10) // for every file
	err := w.walkAll(ctx, ".", func(p string, de fs.DirEntry) error {
		fi, err := de.Info()
		if errors.Is(err, fs.ErrNotExist) {
			return nil // removed since its directory was read
		}
		if err != nil {
			return err
		}
		fmt.Fprintf(h, "%s\x00%o\x00", p, fi.Mode())
		switch {
		case fi.Mode().IsRegular() && w.secretPath(p):
			fmt.Fprintf(h, "secret %d %d", fi.Size(), fi.ModTime().UnixNano())
		case fi.Mode().IsRegular():
			if err := w.hashFile(ctx, h, fh, buf, p); err != nil {
				return fmt.Errorf("fingerprint: %s: %w", p, err)
			}
		case fi.Mode()&fs.ModeSymlink != 0:
			target, err := w.root.Readlink(p)
			if err != nil {
				return fmt.Errorf("fingerprint: %s: %w", p, err)
			}
			fmt.Fprintf(h, "link %s", target)
		}
		h.Write([]byte{'\n'})
		return nil
	})
	if err != nil {
		return "", err
	}
	return "sha256:" + hex.EncodeToString(h.Sum(nil)), nil
}

// hashFile writes the SHA-256 of the regular file p to h, watching ctx
// between chunks; fh and buf are the hash and buffer it reuses.
func (w *Workspace) hashFile(ctx context.Context, h io.Writer, fh hash.Hash, buf []byte, p string) error {
	f, _, err := w.openRegular(p)
	if err != nil {
		return err
	}
	defer f.Close()
	fh.Reset()
	for {
		if err := ctx.Err(); err != nil {
			return err
		}
		n, err := f.Read(buf)
		fh.Write(buf[:n])
		if err == io.EOF {
			break
		}
		if err != nil {
			return err
		}
	}
	fmt.Fprintf(h, "file %x", fh.Sum(nil))
	return nil
}

// walkAll calls fn for every entry under the directory dir of DIR but
// .git, hidden or not, in lexical order of paths, a directory before what
// it holds; fn may return fs.SkipDir to skip what a directory holds. It
// does not follow symbolic links.
func (w *Workspace) walkAll(ctx context.Context, dir string, fn func(p string, de fs.DirEntry) error) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	f, err := w.root.Open(dir)
	if errors.Is(err, fs.ErrNotExist) && dir != "." {
		return nil // removed since its parent was read
	}
	if err != nil {
		return err
	}
	des, err := f.ReadDir(-1)
	f.Close()
	if err != nil {
		return err
	}
	slices.SortFunc(des, func(a, b fs.DirEntry) int {
		switch {
		case a.Name() < b.Name():
			return -1
		case a.Name() > b.Name():
			return 1
		}
		return 0
	})
	for _, de := range des {
		if isGitDir(de.Name()) {
			continue
		}
		p := path.Join(dir, de.Name())
		err := fn(p, de)
		if err == fs.SkipDir {
			continue
		}
		if err != nil {
			return err
		}
		if de.IsDir() {
			if err := w.walkAll(ctx, p, fn); err != nil {
				return err
			}
		}
	}
	return nil
}
