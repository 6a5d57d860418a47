package workspace

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
)

func TestEdit(t *testing.T) {
	dir := tree(t, map[string]string{
		"a.txt":    "one\ntwo\nthree\ntwo\n",
		"crlf.txt": "x\r\ny\r\n",
		"empty":    "",
		"bin":      "\x00",
	})
	w := open(t, dir, Options{})
	o := w.NewOverlay()
	ctx := context.Background()
	read := func(p string) string {
		t.Helper()
		r, err := o.Read(ctx, p, 0, 0)
		if err != nil {
			t.Fatalf("Read(%q): %v", p, err)
		}
		return r.Content
	}
	type edit struct {
		path, old, new string
		all            bool
	}
	fails := []struct {
		edit
		want string
	}{
		{edit{"a.txt", "two", "2", false}, "occurs 2 times (at lines 2, 4)"},
		{edit{"a.txt", "four", "4", false}, "old_string not found"},
		{edit{"a.txt", "one", "one", false}, "the same"},
		{edit{"a.txt", "", "x", false}, "old_string is empty"},
		{edit{"missing.txt", "x", "y", false}, "not found"},
		{edit{"crlf.txt", "x\ny", "z", false}, `\r\n`},
		{edit{"bin", "\x00", "x", false}, "binary"},
	}
	for _, f := range fails {
		if _, err := o.Edit(f.path, f.old, f.new, f.all); err == nil || !strings.Contains(err.Error(), f.want) {
			t.Errorf("Edit(%q, %q, %q, %v): %v, want an error saying %q", f.path, f.old, f.new, f.all, err, f.want)
		}
	}
	if got := read("a.txt"); got != "one\ntwo\nthree\ntwo\n" {
		t.Fatalf("failed edits changed the file: %q", got)
	}
	for _, c := range []struct {
		edit
		n    int
		want string
	}{
		{edit{"a.txt", "three", "3", false}, 1, "one\ntwo\n3\ntwo\n"},
		{edit{"a.txt", "two", "2", true}, 2, "one\n2\n3\n2\n"},
		{edit{"a.txt", "one\n2", "1\n2", false}, 1, "1\n2\n3\n2\n"},
		{edit{"new/file.txt", "", "made\n", false}, 1, "made\n"},
		{edit{"empty", "", "filled\n", false}, 1, "filled\n"},
		{edit{"new/file.txt", "made", "changed", false}, 1, "changed\n"},
	} {
		n, err := o.Edit(c.path, c.old, c.new, c.all)
		if err != nil || n != c.n {
			t.Errorf("Edit(%q, %q, %q, %v) = %d, %v; want %d", c.path, c.old, c.new, c.all, n, err, c.n)
			continue
		}
		if got := read(c.path); got != c.want {
			t.Errorf("after Edit(%q, %q, %q, %v) the file is %q, want %q", c.path, c.old, c.new, c.all, got, c.want)
		}
	}
	if b, _ := os.ReadFile(filepath.Join(dir, "a.txt")); string(b) != "one\ntwo\nthree\ntwo\n" {
		t.Errorf("the overlay changed DIR: %q", b)
	}
}

// TestOverlayView checks that the overlay's reads see its changes, and
// DIR does not.
func TestOverlayView(t *testing.T) {
	dir := tree(t, map[string]string{"a.txt": "alpha\n", "d/b.txt": "beta\n", "d/c.txt": "gamma\n"})
	w := open(t, dir, Options{})
	before, err := w.Fingerprint(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	o := w.NewOverlay()
	ctx := context.Background()
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(o.Write("a.txt", "alpha changed\n"))
	must(o.Write("new/deep/n.txt", "new needle\n"))
	must(o.Delete("d/b.txt"))
	must(o.Write("gone.txt", "x"))
	must(o.Delete("gone.txt"))

	res, err := o.List(ctx, "", ListOptions{Recursive: true})
	must(err)
	if got, want := paths(res), []string{"a.txt", "d", "d/c.txt", "new", "new/deep", "new/deep/n.txt"}; !slices.Equal(got, want) {
		t.Errorf("overlay List = %q, want %q", got, want)
	}
	if r, err := o.Read(ctx, "a.txt", 0, 0); err != nil || r.Content != "alpha changed\n" {
		t.Errorf("overlay Read(a.txt) = %q, %v", r.Content, err)
	}
	for _, p := range []string{"d/b.txt", "gone.txt"} {
		if _, err := o.Read(ctx, p, 0, 0); !errors.Is(err, ErrNotFound) {
			t.Errorf("overlay Read(%q), deleted: %v", p, err)
		}
	}
	g, err := o.Grep(ctx, "needle|beta|changed", GrepOptions{})
	must(err)
	if len(g.Matches) != 2 || g.Matches[0].Path != "a.txt" || g.Matches[1].Path != "new/deep/n.txt" {
		t.Errorf("overlay Grep = %+v", g.Matches)
	}
	if err := o.Write("a.txt/x", "x"); !errors.Is(err, ErrNotFound) {
		t.Errorf("Write under a file: %v", err)
	}
	if err := o.Write("new/deep/n.txt/x", "x"); !errors.Is(err, ErrNotRegular) {
		t.Errorf("Write under a file the overlay wrote: %v", err)
	}
	if err := o.Write("new/deep", "x"); !errors.Is(err, ErrNotRegular) {
		t.Errorf("Write over a directory the overlay made: %v", err)
	}
	if err := o.Write("d", "x"); !errors.Is(err, ErrNotRegular) {
		t.Errorf("Write over a directory: %v", err)
	}

	// DIR is as it was.
	if r, _ := w.Read(ctx, "a.txt", 0, 0); r.Content != "alpha\n" {
		t.Errorf("DIR's a.txt reads %q", r.Content)
	}
	res, _ = w.List(ctx, "", ListOptions{Recursive: true})
	if got, want := paths(res), []string{"a.txt", "d", "d/b.txt", "d/c.txt"}; !slices.Equal(got, want) {
		t.Errorf("DIR's List = %q, want %q", got, want)
	}
	if after, _ := w.Fingerprint(ctx); after != before {
		t.Error("the overlay changed DIR's fingerprint")
	}
}

func TestOverlayLimits(t *testing.T) {
	w := open(t, tree(t, map[string]string{"big.txt": strings.Repeat("x", 200)}), Options{MaxFileSize: 100, MaxOverlayBytes: 250})
	o := w.NewOverlay()
	if err := o.Write("a", strings.Repeat("a", 101)); !errors.Is(err, ErrTooLarge) {
		t.Errorf("Write of 101 bytes, bound 100: %v", err)
	}
	if _, err := o.Edit("big.txt", "x", "y", true); !errors.Is(err, ErrTooLarge) {
		t.Errorf("Edit of a file larger than the bound: %v", err)
	}
	for i := range 2 {
		if err := o.Write(fmt.Sprint(i), strings.Repeat("a", 100)); err != nil {
			t.Fatal(err)
		}
	}
	if err := o.Write("2", strings.Repeat("a", 100)); !errors.Is(err, ErrTooLarge) {
		t.Errorf("Write past the overlay's total: %v", err)
	}
	if err := o.Write("0", strings.Repeat("b", 100)); err != nil {
		t.Errorf("rewriting a file within the total: %v", err)
	}
	if err := o.Delete("0"); err != nil {
		t.Fatal(err)
	}
	if err := o.Write("2", strings.Repeat("a", 100)); err != nil {
		t.Errorf("Write after a delete made room: %v", err)
	}
	if err := o.Write("nul", "a\x00b"); !errors.Is(err, ErrBinary) {
		t.Errorf("Write of a NUL byte: %v", err)
	}
	for _, p := range []string{"a\nb", "a\tb", `a"b`, `a\b`} {
		if err := o.Write(p, "x"); !errors.Is(err, ErrInvalidPath) {
			t.Errorf("Write(%q): %v, want ErrInvalidPath", p, err)
		}
	}
}

// TestOverlayConcurrent writes, edits and reads one overlay from many
// goroutines; the race detector checks the locking.
func TestOverlayConcurrent(t *testing.T) {
	w := open(t, tree(t, map[string]string{"shared.txt": "n\n"}), Options{})
	o := w.NewOverlay()
	ctx := context.Background()
	var wg sync.WaitGroup
	for i := range 8 {
		wg.Go(func() {
			p := fmt.Sprintf("d%d/f.txt", i)
			for j := range 20 {
				if err := o.Write(p, fmt.Sprintf("%d\n", j)); err != nil {
					t.Error(err)
				}
				if _, err := o.Edit("shared.txt", "n\n", "n\nn\n", false); err != nil && !strings.Contains(err.Error(), "occurs") {
					t.Error(err)
				}
				if _, err := o.List(ctx, "", ListOptions{Recursive: true}); err != nil {
					t.Error(err)
				}
				if _, err := o.Grep(ctx, "1", GrepOptions{}); err != nil {
					t.Error(err)
				}
			}
		})
	}
	wg.Wait()
	if _, err := o.Diff(); err != nil {
		t.Fatal(err)
	}
}

// gitRepo makes a git repository of files, committed, and returns it.
func gitRepo(t testing.TB, files map[string]string) string {
	t.Helper()
	dir := tree(t, files)
	git(t, dir, "init", "-q")
	git(t, dir, "add", "-A")
	git(t, dir, "-c", "user.name=t", "-c", "user.email=t@example.com", "commit", "-q", "-m", "base")
	return dir
}

// git runs git in dir. The tests need it: they check the diffs with git
// apply.
func git(t testing.TB, dir string, args ...string) string {
	t.Helper()
	if _, err := exec.LookPath("git"); err != nil {
		t.Fatal("git is not installed, and these tests check diffs with git apply: install git (apt-get install git)")
	}
	cmd := exec.Command("git", args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "GIT_CONFIG_GLOBAL=/dev/null", "GIT_CONFIG_NOSYSTEM=1")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("git %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return string(out)
}

// baseFiles is a tree with files of every shape a diff must handle.
func baseFiles() map[string]string {
	var long strings.Builder
	for i := 1; i <= 40; i++ {
		fmt.Fprintf(&long, "line %d\n", i)
	}
	return map[string]string{
		"long.txt":        long.String(),
		"nonl.txt":        "first\nlast without newline",
		"gone.txt":        "to be deleted\n",
		"gone-empty.txt":  "",
		"keep.txt":        "unchanged\n",
		"dir/mode.sh":     "#!/bin/sh\necho hi\n",
		"dir/space x.txt": "a name with a space\n",
		"unicode.md":      "héllo\n",
		".gitignore":      "ignored/\n",
		"query.sql":       "-- a comment\nselect 1;\n++ not a diff line\n",
	}
}

// changeAll makes, in o, changes of every shape a diff must handle.
func changeAll(t testing.TB, o *Overlay) {
	t.Helper()
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	edit := func(p, old, new string) {
		t.Helper()
		_, err := o.Edit(p, old, new, false)
		must(err)
	}
	edit("long.txt", "line 2\n", "line two\n")
	edit("long.txt", "line 20\n", "line 20\ninserted\n")
	edit("long.txt", "line 39\nline 40\n", "the end\n")
	edit("nonl.txt", "last without newline", "last with newline\n")
	must(o.Delete("gone.txt"))
	must(o.Delete("gone-empty.txt"))
	must(o.Write("new/file.go", "package file\n"))
	must(o.Write("new/empty", ""))
	must(o.Write("new/nonl", "no newline"))
	edit("dir/mode.sh", "hi", "hello")
	edit("dir/space x.txt", "space", "SPACE")
	edit("unicode.md", "héllo", "hällo")
	must(o.Write("keep.txt", "unchanged\n"))
	must(o.Write("query.sql", "-- another comment\nselect 2;\n++ still not one\n")) // lines that look like ---/+++ headers in a diff
}

// TestDiffGitApply checks an overlay's diff with git: git apply --check
// accepts it, and git apply makes the tree Materialize makes.
func TestDiffGitApply(t *testing.T) {
	dir := gitRepo(t, baseFiles())
	if err := os.Chmod(filepath.Join(dir, "dir", "mode.sh"), 0o755); err != nil {
		t.Fatal(err)
	}
	git(t, dir, "-c", "user.name=t", "-c", "user.email=t@example.com", "commit", "-q", "-am", "mode")
	w := open(t, dir, Options{})
	o := w.NewOverlay()
	changeAll(t, o)
	d, err := o.Diff()
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		"diff --git a/long.txt b/long.txt\n--- a/long.txt\n+++ b/long.txt\n@@ -1,5 +1,5 @@\n line 1\n-line 2\n+line two\n",
		"diff --git a/gone.txt b/gone.txt\ndeleted file mode 100644\n--- a/gone.txt\n+++ /dev/null\n@@ -1 +0,0 @@\n-to be deleted\n",
		"diff --git a/gone-empty.txt b/gone-empty.txt\ndeleted file mode 100644\ndiff --git",
		"diff --git a/new/empty b/new/empty\nnew file mode 100644\ndiff --git",
		"diff --git a/new/file.go b/new/file.go\nnew file mode 100644\n--- /dev/null\n+++ b/new/file.go\n@@ -0,0 +1 @@\n+package file\n",
		"-last without newline\n\\ No newline at end of file\n+last with newline\n",
		"+no newline\n\\ No newline at end of file\n",
	} {
		if !strings.Contains(d, want) {
			t.Errorf("the diff lacks\n%s\n---- diff:\n%s", want, d)
		}
	}
	if strings.Contains(d, "keep.txt") {
		t.Errorf("a file written with its own contents is in the diff:\n%s", d)
	}

	patch := filepath.Join(t.TempDir(), "p.diff")
	if err := os.WriteFile(patch, []byte(d), 0o644); err != nil {
		t.Fatal(err)
	}
	git(t, dir, "apply", "--check", patch)
	git(t, dir, "apply", patch)
	mat := filepath.Join(t.TempDir(), "m")
	if err := o.Materialize(context.Background(), mat, 0); err != nil {
		t.Fatal(err)
	}
	sameTree(t, dir, mat)
}

// snapshotTree returns the files of dir but .git: path to mode and
// contents (or link target).
func snapshotTree(t testing.TB, dir string) map[string]string {
	t.Helper()
	out := map[string]string{}
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		rel = filepath.ToSlash(rel)
		if d.Name() == ".git" {
			return filepath.SkipDir
		}
		fi, err := d.Info()
		if err != nil {
			return err
		}
		switch {
		case d.IsDir():
		case fi.Mode()&fs.ModeSymlink != 0:
			target, _ := os.Readlink(p)
			out[rel] = "link " + target
		default:
			b, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			out[rel] = fmt.Sprintf("%v %s", fi.Mode().Perm(), b)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// sameTree checks that two directories hold the same files.
func sameTree(t testing.TB, a, b string) {
	t.Helper()
	sa, sb := snapshotTree(t, a), snapshotTree(t, b)
	for p, v := range sa {
		if sb[p] != v {
			t.Errorf("%s: %q in one tree, %q in the other", p, v, sb[p])
		}
	}
	for p, v := range sb {
		if _, ok := sa[p]; !ok {
			t.Errorf("%s: only in the second tree (%q)", p, v)
		}
	}
}

// TestMaterialize: the copy holds what the overlay's reads see and
// nothing else: no .git (nor .GIT), secret, configured hidden path, or
// ignored file that Show does not show, and no link to one.
func TestMaterialize(t *testing.T) {
	dir := tree(t, map[string]string{
		"src/a.go":          "package a\n",
		".gitignore":        "gen/\n*.local\nbuild/\n",
		"gen/z.go":          "package gen\n",
		"app.local":         "PASSWORD=hunter2\n",
		"build/out/big.bin": "compiled",
		"build/keep.txt":    "shown",
		".env":              "KEY=secret\n",
		".ENV.":             "KEY=secret\n",
		"keys/server.pem":   "secret",
		".git/config":       "[core]\n",
		".GIT/config":       "[core]\n",
		"private/notes.md":  "mine",
	})
	symlink(t, "src/a.go", filepath.Join(dir, "link"))
	symlink(t, ".env", filepath.Join(dir, "env-link"))
	symlink(t, "app.local", filepath.Join(dir, "local-link"))
	symlink(t, "build/out", filepath.Join(dir, "out-dir-link"))
	symlink(t, "/etc/passwd", filepath.Join(dir, "out-link"))
	w := open(t, dir, Options{Hide: []string{"private/**"}, Show: []string{"build/keep.txt"}})
	o := w.NewOverlay()
	if err := o.Write("src/b.go", "package a // b\n"); err != nil {
		t.Fatal(err)
	}
	if err := o.Delete("src/a.go"); err != nil {
		t.Fatal(err)
	}
	dst := filepath.Join(t.TempDir(), "m")
	if err := o.Materialize(context.Background(), dst, 0); err != nil {
		t.Fatal(err)
	}
	got := snapshotTree(t, dst)
	want := map[string]string{
		".gitignore":     "-rw-r--r-- gen/\n*.local\nbuild/\n",
		"build/keep.txt": "-rw-r--r-- shown",
		"src/b.go":       "-rw-r--r-- package a // b\n",
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("Materialize made\n%v\nwant\n%v", got, want)
	}
	if err := o.Materialize(context.Background(), dst, 0); err == nil {
		t.Error("Materialize into a directory that is not empty succeeded")
	}
}

// TestMaterializeBudget: a tree over the budget is not copied whole; the
// error says so (ErrTooLarge), and the copy stops there.
func TestMaterializeBudget(t *testing.T) {
	dir := tree(t, map[string]string{
		"a.txt": strings.Repeat("a", 600),
		"b.txt": strings.Repeat("b", 600),
		"c.txt": strings.Repeat("c", 600),
	})
	w := open(t, dir, Options{})
	o := w.NewOverlay()
	ctx := context.Background()
	dst := filepath.Join(t.TempDir(), "m")
	if err := o.Materialize(ctx, dst, 1000); !errors.Is(err, ErrTooLarge) {
		t.Fatalf("Materialize of 1800 bytes with a budget of 1000: %v, want ErrTooLarge", err)
	}
	var copied int64
	filepath.WalkDir(dst, func(p string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			fi, _ := d.Info()
			copied += fi.Size()
		}
		return nil
	})
	if copied > 1000 {
		t.Errorf("%d bytes were copied, over the budget of 1000", copied)
	}
	// The overlay's writes count.
	if err := o.Write("d.txt", strings.Repeat("d", 2000)); err != nil {
		t.Fatal(err)
	}
	if err := o.Materialize(ctx, filepath.Join(t.TempDir(), "m"), 3000); !errors.Is(err, ErrTooLarge) {
		t.Errorf("Materialize of 3800 bytes with a budget of 3000: %v, want ErrTooLarge", err)
	}
	if err := o.Materialize(ctx, filepath.Join(t.TempDir(), "m"), 3800); err != nil {
		t.Errorf("Materialize of 3800 bytes with a budget of 3800: %v", err)
	}
}

// TestChangedRestore: the changes an overlay's edits left, put back into a
// new overlay, make the same diff, though DIR changed meanwhile; a link is
// changed at its target; a restore cannot reach a hidden path.
func TestChangedRestore(t *testing.T) {
	files := baseFiles()
	dir := tree(t, files)
	symlink(t, "long.txt", filepath.Join(dir, "link.txt"))
	w := open(t, dir, Options{})
	o := w.NewOverlay()
	changeAll(t, o)
	if _, err := o.Edit("link.txt", "line 5\n", "line five\n", false); err != nil {
		t.Fatal(err)
	}
	want, err := o.Diff()
	if err != nil {
		t.Fatal(err)
	}
	var changes []Change
	for _, p := range []string{"link.txt", "nonl.txt", "gone.txt", "gone-empty.txt", "new/file.go", "new/empty", "new/nonl", "dir/mode.sh", "dir/space x.txt", "unicode.md", "keep.txt", "query.sql"} {
		c, ok := o.Changed(p)
		if !ok {
			t.Fatalf("%s: not changed", p)
		}
		changes = append(changes, c)
	}
	if c, _ := o.Changed("link.txt"); c.Path != "long.txt" || !strings.Contains(c.Content, "line five") {
		t.Errorf("the change through the link: %+v", c)
	}
	if _, ok := o.Changed("long-nope.txt"); ok {
		t.Error("a file the overlay did not change is changed")
	}
	// What the edits read changes in DIR: a replay of the edits would
	// fail; a restore of their changes does not read DIR.
	os.WriteFile(filepath.Join(dir, "unicode.md"), []byte("other\n"), 0o644)
	o2 := w.NewOverlay()
	for _, c := range changes {
		if err := o2.Restore(c); err != nil {
			t.Fatalf("restore %+v: %v", c, err)
		}
	}
	got, err := o2.Diff()
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(got, "+hällo") || !strings.Contains(got, "+line five") || strings.Count(got, "diff --git") != strings.Count(want, "diff --git") {
		t.Errorf("restored diff:\n%s\nwant the changes of:\n%s", got, want)
	}
	for _, c := range []Change{{Path: ".git/config", Content: "x"}, {Path: ".env", Content: "x"}, {Path: "../out", Content: "x"}, {Path: "/etc/passwd", Content: "x"}} {
		if err := o2.Restore(c); err == nil {
			t.Errorf("restore %s: no error", c.Path)
		}
	}
}
