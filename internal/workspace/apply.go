package workspace

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"io/fs"
	"os"
	"path"
	"strings"
)

// Apply writes p into DIR, the one write to DIR this package makes: the
// caller (the user, not a model) has accepted the changes. It writes
// nothing unless DIR's [Workspace.Fingerprint] still equals
// baseFingerprint, taken when the run began (otherwise the error wraps
// ErrChanged and says what to do), and unless every file of p applies
// exactly: each hunk's lines must be where it says. Paths are checked as
// an overlay's writes are: no hidden path, nothing under .git, and no
// path through a symbolic link. Each file is written whole to a temporary
// file beside it and renamed over it, so a reader sees the old file or
// the new one, never a mix, and a link put in its place is replaced, not
// followed. Between the check of the fingerprint and the writes, and
// between two files, DIR is not locked: do not change it while Apply
// runs.
func (w *Workspace) Apply(ctx context.Context, p Patch, baseFingerprint string) error {
	fail := func(err error) error { return fmt.Errorf("apply %s: %w", p.Name, err) }
	now, err := w.Fingerprint(ctx)
	if err != nil {
		return fail(err)
	}
	if now != baseFingerprint {
		return fail(fmt.Errorf("%w (fingerprint %s then, %s now), so nothing was written: "+
			"re-run the task against the directory as it is now, or set your own changes aside "+
			"(git stash), apply, and bring them back (git stash pop)", ErrChanged, short(baseFingerprint), short(now)))
	}
	type write struct {
		path   string
		data   string
		delete bool
		mode   fs.FileMode
	}
	var writes []write
	for _, f := range p.files {
		c, err := w.writable("apply", f.path)
		if err != nil {
			return fail(err)
		}
		real, exists, err := w.resolve("apply", c)
		if err != nil {
			return fail(err)
		}
		if real != c {
			return fail(pathErr("apply", c, ErrNotRegular, "the path passes through a symbolic link (to %s); a patch names real paths", real))
		}
		var old []byte
		mode := f.mode
		if exists {
			old, exists, mode, err = w.base(c)
			if err != nil {
				return fail(err)
			}
		}
		data, keep, err := f.apply(string(old), exists)
		if err != nil {
			return fail(err)
		}
		writes = append(writes, write{path: c, data: data, delete: !keep, mode: mode})
	}
	if err := ctx.Err(); err != nil {
		return fail(err)
	}
	var done []string
	for _, wr := range writes {
		var err error
		if wr.delete {
			err = w.root.Remove(wr.path)
		} else {
			err = w.replace(wr.path, []byte(wr.data), wr.mode)
		}
		if err != nil {
			if len(done) > 0 {
				return fail(fmt.Errorf("%s: %w (already written: %s)", wr.path, err, strings.Join(done, ", ")))
			}
			return fail(fmt.Errorf("%s: %w", wr.path, err))
		}
		done = append(done, wr.path)
	}
	return nil
}

// CheckPatch returns an error when p changes a path that
// [Workspace.Apply] would refuse for its name alone: a malformed path, or
// a hidden one (.git, gitignored or secret), or a name that some file
// system takes for a hidden one (.GIT, ".env.", ".git\u200c", GIT~1,
// ".git::$INDEX_ALLOCATION"). It reads no file.
func (w *Workspace) CheckPatch(p Patch) error {
	for _, f := range p.files {
		if _, err := w.writable("apply", f.path); err != nil {
			return fmt.Errorf("patch %s: %w", p.Name, err)
		}
	}
	return nil
}

// writable checks the path p of a patch to be applied and returns it
// clean: a path that may be written ([cleanWrite]) and that is not hidden,
// its names compared folded.
func (w *Workspace) writable(op, p string) (string, error) {
	c, err := cleanWrite(op, p)
	if err != nil {
		return "", err
	}
	if w.why(c, false) != visible {
		return "", pathErr(op, c, ErrHidden, "a patch may not change a hidden path (.git, gitignored or secret), nor another name of one")
	}
	return c, nil
}

// replace writes data with permission bits perm to the path p of DIR,
// through a temporary file in the same directory renamed over p.
func (w *Workspace) replace(p string, data []byte, perm fs.FileMode) error {
	dir := path.Dir(p)
	if dir != "." {
		if err := w.root.MkdirAll(dir, 0o755); err != nil {
			return err
		}
	}
	var rnd [8]byte
	rand.Read(rnd[:])
	tmp := path.Join(dir, ".hive-apply-"+hex.EncodeToString(rnd[:])+".tmp")
	f, err := w.root.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_EXCL|openFlags, perm)
	if err != nil {
		return err
	}
	_, err = f.Write(data)
	if err == nil {
		err = f.Sync()
	}
	if err = closeChmod(f, perm, err); err == nil {
		err = w.root.Rename(tmp, p)
	}
	if err != nil {
		w.root.Remove(tmp)
	}
	return err
}

// short abbreviates a fingerprint for a message.
func short(fp string) string {
	if len(fp) > 19 {
		return fp[:19]
	}
	return fp
}
