package workspace

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

// diffOf returns the diff of an overlay over dir made by fn, parsed and
// named name.
func diffOf(t testing.TB, w *Workspace, name string, fn func(o *Overlay)) Patch {
	t.Helper()
	o := w.NewOverlay()
	fn(o)
	d, err := o.Diff()
	if err != nil {
		t.Fatal(err)
	}
	p, err := ParsePatch(name, d)
	if err != nil {
		t.Fatalf("ParsePatch of\n%s\n%v", d, err)
	}
	if p.String() != d {
		t.Fatalf("ParsePatch(d).String() differs from d:\n%s\n----\n%s", p.String(), d)
	}
	return p
}

func edit(t testing.TB, o *Overlay, p, old, new string) {
	t.Helper()
	if _, err := o.Edit(p, old, new, false); err != nil {
		t.Fatal(err)
	}
}

// numbered returns n lines "line 1\n" ... "line n\n".
func numbered(n int) string {
	var b strings.Builder
	for i := 1; i <= n; i++ {
		fmt.Fprintf(&b, "line %d\n", i)
	}
	return b.String()
}

// TestParsePatchGit parses what git diff writes (with its index lines)
// and applies it.
func TestParsePatchGit(t *testing.T) {
	dir := gitRepo(t, baseFiles())
	w := open(t, dir, Options{})
	fp, err := w.Fingerprint(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	// Make the changes with git, read them back with git diff, and undo
	// them.
	o := w.NewOverlay()
	changeAll(t, o)
	mine, _ := o.Diff()
	pf := filepath.Join(t.TempDir(), "p.diff")
	os.WriteFile(pf, []byte(mine), 0o644)
	git(t, dir, "apply", "--index", pf)
	theirs := git(t, dir, "diff", "--cached", "--no-color", "--no-renames")
	git(t, dir, "reset", "-q", "--hard")
	if !strings.Contains(theirs, "\nindex ") {
		t.Fatalf("git diff wrote no index lines:\n%s", theirs)
	}
	p, err := ParsePatch("git", theirs)
	if err != nil {
		t.Fatalf("ParsePatch of git diff's output: %v\n%s", err, theirs)
	}
	if p.String() != mine {
		t.Errorf("git's diff parses as\n%s\nnot as ours\n%s", p, mine)
	}
	numstat := git(t, dir, "apply", "--numstat", pf)
	wantAdded, wantRemoved := 0, 0
	for _, l := range strings.Split(strings.TrimSpace(numstat), "\n") {
		var a, r int
		fmt.Sscanf(l, "%d\t%d", &a, &r)
		wantAdded, wantRemoved = wantAdded+a, wantRemoved+r
	}
	if a, r := p.Stat(); a != wantAdded || r != wantRemoved {
		t.Errorf("Stat: +%d -%d; git apply --numstat says +%d -%d", a, r, wantAdded, wantRemoved)
	}
	if err := w.Apply(context.Background(), p, fp); err != nil {
		t.Fatal(err)
	}
	mat := filepath.Join(t.TempDir(), "m")
	if err := o.Materialize(context.Background(), mat, 0); err != nil {
		t.Fatal(err)
	}
	sameTree(t, dir, mat)
}

func TestParsePatchRefuses(t *testing.T) {
	for _, c := range []struct {
		name, diff, want string
	}{
		{"rename", "diff --git a/x b/y\nsimilarity index 100%\nrename from x\nrename to y\n", "not supported"},
		{"binary", "diff --git a/x b/x\nindex 1..2 100644\nBinary files a/x and b/x differ\n", "binary"},
		{"mode", "diff --git a/x b/x\nold mode 100644\nnew mode 100755\n", "not supported"},
		{"git dir", "diff --git a/.git/hooks/pre-commit b/.git/hooks/pre-commit\nnew file mode 100755\n--- /dev/null\n+++ b/.git/hooks/pre-commit\n@@ -0,0 +1 @@\n+rm -rf /\n", ".git"},
		{"nested git dir", "--- /dev/null\n+++ b/sub/.git/config\n@@ -0,0 +1 @@\n+x\n", ".git"},
		{"parent", "--- a/../x\n+++ b/../x\n@@ -1 +1 @@\n-a\n+b\n", "outside"},
		{"absolute", "--- /etc/passwd\n+++ /etc/passwd\n@@ -1 +1 @@\n-a\n+b\n", "a/ or b/"},
		{"unclean", "--- a/x/../y\n+++ b/x/../y\n@@ -1 +1 @@\n-a\n+b\n", "not a clean path"},
		{"count", "--- a/x\n+++ b/x\n@@ -1,2 +1 @@\n-a\n+b\n", "old and"},
		{"renamed in ---/+++", "--- a/x\n+++ b/y\n@@ -1 +1 @@\n-a\n+b\n", "renames"},
		{"twice", "--- a/x\n+++ b/x\n@@ -1 +1 @@\n-a\n+b\n--- a/x\n+++ b/x\n@@ -3 +3 @@\n-a\n+b\n", "twice"},
		{"overlap", "--- a/x\n+++ b/x\n@@ -1,2 +1,2 @@\n-a\n+b\n c\n@@ -2 +2 @@\n-c\n+d\n", "before the end"},
	} {
		_, err := ParsePatch(c.name, c.diff)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: ParsePatch: %v, want an error saying %q", c.name, err, c.want)
		}
	}
	if p, err := ParsePatch("empty", ""); err != nil || len(p.Paths()) != 0 {
		t.Errorf("ParsePatch of nothing: %v, %v", p.Paths(), err)
	}
}

func TestMerge(t *testing.T) {
	base := map[string]string{"a.txt": numbered(40), "b.txt": numbered(5), "c.txt": "c\n"}
	dir := gitRepo(t, base)
	w := open(t, dir, Options{})
	p1 := diffOf(t, w, "w1", func(o *Overlay) {
		edit(t, o, "a.txt", "line 10\n", "ten\n")
		edit(t, o, "a.txt", "line 30\n", "thirty\n")
		edit(t, o, "b.txt", "line 1\n", "one\n")
	})
	p2 := diffOf(t, w, "w2", func(o *Overlay) {
		edit(t, o, "a.txt", "line 14\n", "fourteen\nand more\n") // 3 lines from w1's: the hunks share lines
		edit(t, o, "a.txt", "line 1\n", "")
		o.Write("new.txt", "new\n")
	})
	p3 := diffOf(t, w, "w3", func(o *Overlay) {
		edit(t, o, "a.txt", "line 14\n", "fourteen\nand more\n") // the same change as w2's
		o.Delete("c.txt")
	})
	merged, conflicts := Merge(p1, p2, p3)
	if len(conflicts) != 0 {
		t.Fatalf("conflicts: %v", conflicts)
	}
	if merged.Name != "w1+w2+w3" || !slices.Equal(merged.Paths(), []string{"a.txt", "b.txt", "c.txt", "new.txt"}) {
		t.Errorf("merged %s changes %q", merged.Name, merged.Paths())
	}
	pf := filepath.Join(t.TempDir(), "p.diff")
	os.WriteFile(pf, []byte(merged.String()), 0o644)
	git(t, dir, "apply", "--check", pf)

	fp, _ := w.Fingerprint(context.Background())
	if err := w.Apply(context.Background(), merged, fp); err != nil {
		t.Fatalf("Apply: %v\n%s", err, merged)
	}
	want := strings.Replace(strings.Replace(strings.Replace(numbered(40), "line 10\n", "ten\n", 1), "line 30\n", "thirty\n", 1), "line 14\n", "fourteen\nand more\n", 1)
	want = strings.TrimPrefix(want, "line 1\n")
	if b, _ := os.ReadFile(filepath.Join(dir, "a.txt")); string(b) != want {
		t.Errorf("a.txt after the merged patch:\n%s\nwant\n%s\npatch:\n%s", b, want, merged)
	}
	if _, err := os.Stat(filepath.Join(dir, "c.txt")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("c.txt is still there: %v", err)
	}
	if b, _ := os.ReadFile(filepath.Join(dir, "new.txt")); string(b) != "new\n" {
		t.Errorf("new.txt = %q", b)
	}
}

func TestMergeConflicts(t *testing.T) {
	w := open(t, tree(t, map[string]string{"a.txt": numbered(40), "b.txt": "b\n"}), Options{})
	one := diffOf(t, w, "one", func(o *Overlay) {
		edit(t, o, "a.txt", "line 10\nline 11\n", "ten\neleven\n")
		edit(t, o, "b.txt", "b", "B")
	})
	cases := []struct {
		name   string
		fn     func(o *Overlay)
		want   Conflict
		merged bool // the other file still merges
	}{
		{"overlap", func(o *Overlay) { edit(t, o, "a.txt", "line 11\nline 12\n", "x\n") },
			Conflict{Path: "a.txt", A: "one", B: "other", ALines: [2]int{10, 11}, BLines: [2]int{11, 12}}, false},
		{"adjacent", func(o *Overlay) { edit(t, o, "a.txt", "line 12\n", "twelve\n") },
			Conflict{Path: "a.txt", A: "one", B: "other", ALines: [2]int{10, 11}, BLines: [2]int{12, 12}}, false},
		{"insert between", func(o *Overlay) { edit(t, o, "a.txt", "line 12\n", "new\nline 12\n") },
			Conflict{Path: "a.txt", A: "one", B: "other", ALines: [2]int{10, 11}, BLines: [2]int{12, 11}}, false},
		{"delete", func(o *Overlay) { o.Delete("b.txt"); edit(t, o, "a.txt", "line 30\n", "x\n") },
			Conflict{Path: "b.txt", A: "one", B: "other"}, true},
	}
	for _, c := range cases {
		other := diffOf(t, w, "other", c.fn)
		merged, conflicts := Merge(one, other)
		if len(conflicts) != 1 {
			t.Errorf("%s: conflicts %v, want one", c.name, conflicts)
			continue
		}
		got := conflicts[0]
		got.Why = ""
		if got != c.want {
			t.Errorf("%s: conflict %+v, want %+v", c.name, got, c.want)
		}
		s := conflicts[0].String()
		if !strings.Contains(s, `"one"`) || !strings.Contains(s, `"other"`) || !strings.Contains(s, c.want.Path) {
			t.Errorf("%s: the conflict says %q", c.name, s)
		}
		// The merged patch keeps the first patch's change to the file.
		if !strings.Contains(merged.String(), "+ten\n") || !strings.Contains(merged.String(), "+B\n") {
			t.Errorf("%s: the merged patch lost the first patch's changes:\n%s", c.name, merged)
		}
		if c.merged != strings.Contains(merged.String(), "+x\n") {
			t.Errorf("%s: the other patch's change to the other file merged: %v, want %v\n%s", c.name, !c.merged, c.merged, merged)
		}
	}
	// A third patch conflicting with the first is named against it, not
	// against the second.
	two := diffOf(t, w, "two", func(o *Overlay) { edit(t, o, "a.txt", "line 30\n", "thirty\n") })
	three := diffOf(t, w, "three", func(o *Overlay) { edit(t, o, "a.txt", "line 9\n", "nine\n") })
	_, conflicts := Merge(one, two, three)
	if len(conflicts) != 1 || conflicts[0].A != "one" || conflicts[0].B != "three" || conflicts[0].ALines != [2]int{10, 11} {
		t.Errorf("conflicts %+v, want one between one (lines 10-11) and three", conflicts)
	}
	// Two creations of one file.
	c1 := diffOf(t, w, "c1", func(o *Overlay) { o.Write("n.txt", "1\n") })
	c2 := diffOf(t, w, "c2", func(o *Overlay) { o.Write("n.txt", "2\n") })
	if _, conflicts := Merge(c1, c2); len(conflicts) != 1 || conflicts[0].Path != "n.txt" {
		t.Errorf("two different creations: %v", conflicts)
	}
	if m, conflicts := Merge(c1, c1); len(conflicts) != 0 || m.String() != c1.String() {
		t.Errorf("the same creation twice: %v\n%s", conflicts, m)
	}
}

// TestMergeRandom merges two patches that each change random lines of a
// file: they conflict exactly when two changed lines are the same or
// adjacent, and otherwise the merged patch makes both changes.
func TestMergeRandom(t *testing.T) {
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "f"), []byte(numbered(60)), 0o644)
	w := open(t, dir, Options{})
	rng := rand.New(rand.NewPCG(1, 2))
	for iter := range 200 {
		lines := strings.SplitAfter(numbered(60), "\n")[:60]
		want := slices.Clone(lines)
		var sets [2][]int
		var ps []Patch
		for k, name := range []string{"A", "B"} {
			o := w.NewOverlay()
			mine := slices.Clone(lines)
			for range 1 + rng.IntN(3) {
				i := rng.IntN(60)
				sets[k] = append(sets[k], i)
				mine[i] = fmt.Sprintf("%s changed %d\n", name, i+1)
				want[i] = mine[i]
			}
			if err := o.Write("f", strings.Join(mine, "")); err != nil {
				t.Fatal(err)
			}
			d, _ := o.Diff()
			p, err := ParsePatch(name, d)
			if err != nil {
				t.Fatal(err)
			}
			ps = append(ps, p)
		}
		near := false
		for _, a := range sets[0] {
			for _, b := range sets[1] {
				if a-b <= 1 && b-a <= 1 {
					near = true
				}
			}
		}
		merged, conflicts := Merge(ps...)
		if near != (len(conflicts) > 0) {
			t.Fatalf("iteration %d: lines %v and %v: conflicts %v", iter, sets[0], sets[1], conflicts)
		}
		if near {
			continue
		}
		got, _, err := merged.files[0].apply(numbered(60), true)
		if err != nil {
			t.Fatalf("iteration %d: %v\n%s", iter, err, merged)
		}
		if got != strings.Join(want, "") {
			t.Fatalf("iteration %d: lines %v and %v: the merged patch makes\n%s\nwant\n%s\npatches:\n%s%s\nmerged:\n%s",
				iter, sets[0], sets[1], got, strings.Join(want, ""), ps[0], ps[1], merged)
		}
	}
}

func TestApply(t *testing.T) {
	files := baseFiles()
	files[".env"] = "KEY=1\n"
	dir := gitRepo(t, files)
	if err := os.Chmod(filepath.Join(dir, "dir", "mode.sh"), 0o755); err != nil {
		t.Fatal(err)
	}
	w := open(t, dir, Options{})
	ctx := context.Background()
	fp, err := w.Fingerprint(ctx)
	if err != nil {
		t.Fatal(err)
	}
	o := w.NewOverlay()
	changeAll(t, o)
	d, _ := o.Diff()
	p, err := ParsePatch("all", d)
	if err != nil {
		t.Fatal(err)
	}

	// DIR changed since the fingerprint: nothing is written.
	os.WriteFile(filepath.Join(dir, "keep.txt"), []byte("changed by the user\n"), 0o644)
	before := snapshotTree(t, dir)
	err = w.Apply(ctx, p, fp)
	if !errors.Is(err, ErrChanged) || !strings.Contains(err.Error(), "git stash") {
		t.Errorf("Apply to a changed DIR: %v, want ErrChanged and a hint", err)
	}
	if after := snapshotTree(t, dir); fmt.Sprint(after) != fmt.Sprint(before) {
		t.Error("Apply to a changed DIR wrote")
	}
	os.WriteFile(filepath.Join(dir, "keep.txt"), []byte("unchanged\n"), 0o644)
	if now, _ := w.Fingerprint(ctx); now != fp {
		t.Fatal("the fingerprint differs after a file got its contents back")
	}

	// A secret's contents are not in the fingerprint, its size is.
	mtime := fileTime(t, dir, ".env")
	os.WriteFile(filepath.Join(dir, ".env"), []byte("KEY=2\n"), 0o644)
	os.Chtimes(filepath.Join(dir, ".env"), mtime, mtime)
	if now, _ := w.Fingerprint(ctx); now != fp {
		t.Error("the fingerprint depends on a secret's contents")
	}
	os.WriteFile(filepath.Join(dir, ".env"), []byte("KEY=22\n"), 0o644)
	os.Chtimes(filepath.Join(dir, ".env"), mtime, mtime)
	if now, _ := w.Fingerprint(ctx); now == fp {
		t.Error("the fingerprint does not change with a secret's size")
	}
	os.WriteFile(filepath.Join(dir, ".env"), []byte("KEY=1\n"), 0o644)
	os.Chtimes(filepath.Join(dir, ".env"), mtime, mtime)

	if err := w.Apply(ctx, p, fp); err != nil {
		t.Fatal(err)
	}
	mat := filepath.Join(t.TempDir(), "m")
	if err := o.Materialize(ctx, mat, 0); err != nil {
		t.Fatal(err)
	}
	applied := snapshotTree(t, dir)
	delete(applied, ".env") // Materialize leaves secrets out
	if got, want := fmt.Sprint(applied), fmt.Sprint(snapshotTree(t, mat)); got != want {
		t.Errorf("Apply made\n%s\nMaterialize made\n%s", got, want)
	}
	for p := range applied {
		if strings.Contains(p, ".hive-apply-") {
			t.Errorf("a temporary file is left: %s", p)
		}
	}
	if fi, err := os.Stat(filepath.Join(dir, "dir", "mode.sh")); err != nil || fi.Mode().Perm() != 0o755 {
		t.Errorf("mode.sh: %v, %v", fi.Mode(), err)
	}
}

func fileTime(t testing.TB, dir, p string) time.Time {
	t.Helper()
	fi, err := os.Stat(filepath.Join(dir, p))
	if err != nil {
		t.Fatal(err)
	}
	return fi.ModTime()
}

func TestApplyRefuses(t *testing.T) {
	dir := tree(t, map[string]string{"a.txt": "a\n", "b.txt": "b\n", "real/x.txt": "x\n", ".gitignore": "ignored/\n"})
	symlink(t, "real", filepath.Join(dir, "link"))
	symlink(t, "a.txt", filepath.Join(dir, "alink"))
	w := open(t, dir, Options{})
	ctx := context.Background()
	fp, _ := w.Fingerprint(ctx)
	before := snapshotTree(t, dir)
	for _, c := range []struct{ name, diff, want string }{
		{"secret", "--- /dev/null\n+++ b/.env\n@@ -0,0 +1 @@\n+KEY=stolen\n", "hidden"},
		{"ignored", "--- /dev/null\n+++ b/ignored/x\n@@ -0,0 +1 @@\n+x\n", "hidden"},
		{"through a link", "--- /dev/null\n+++ b/link/new.txt\n@@ -0,0 +1 @@\n+x\n", "symbolic link"},
		{"a link", "--- a/alink\n+++ b/alink\n@@ -1 +1 @@\n-a\n+b\n", "symbolic link"},
		{"mismatch", "--- a/a.txt\n+++ b/a.txt\n@@ -1 +1 @@\n-a\n+A\n--- a/b.txt\n+++ b/b.txt\n@@ -1 +1 @@\n-not b\n+B\n", `line 1 should be "not b\n", and is "b\n"`},
		{"past the end", "--- a/a.txt\n+++ b/a.txt\n@@ -5 +5 @@\n-a\n+A\n", "past the end"},
		{"creates an existing file", "--- /dev/null\n+++ b/a.txt\n@@ -0,0 +1 @@\n+a\n", "exists"},
		{"changes a missing file", "--- a/none.txt\n+++ b/none.txt\n@@ -1 +1 @@\n-a\n+b\n", "does not exist"},
	} {
		p, err := ParsePatch(c.name, c.diff)
		if err != nil {
			t.Errorf("%s: ParsePatch: %v", c.name, err)
			continue
		}
		if err := w.Apply(ctx, p, fp); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: Apply: %v, want an error saying %q", c.name, err, c.want)
		}
		if after := snapshotTree(t, dir); fmt.Sprint(after) != fmt.Sprint(before) {
			t.Fatalf("%s: a refused Apply wrote", c.name)
		}
	}
}

// A worker's CRLF lines stay CRLF from the overlay through the patch to
// the directory: hive apply writes the bytes the check ran on.
func TestCRLFPatch(t *testing.T) {
	dir := tree(t, map[string]string{"win.txt": "a\r\nb\r\nc\r\n"})
	w := open(t, dir, Options{})
	ctx := context.Background()
	fp, err := w.Fingerprint(ctx)
	if err != nil {
		t.Fatal(err)
	}
	o := w.NewOverlay()
	if err := o.Write("new.sh", "echo safe\r\nexit 0\r\n"); err != nil {
		t.Fatal(err)
	}
	d, _ := o.Diff()
	p, err := ParsePatch("w", d)
	if err != nil {
		t.Fatal(err)
	}
	if p.String() != d {
		t.Errorf("round trip differs:\n%q\n%q", d, p.String())
	}
	if err := w.Apply(ctx, p, fp); err != nil {
		t.Fatal(err)
	}
	got, _ := os.ReadFile(filepath.Join(dir, "new.sh"))
	if string(got) != "echo safe\r\nexit 0\r\n" {
		t.Errorf("applied %q, the overlay (and the check) had %q", got, "echo safe\r\nexit 0\r\n")
	}

	// A change to an existing CRLF file.
	fp, _ = w.Fingerprint(ctx)
	o = w.NewOverlay()
	if _, err := o.Edit("win.txt", "b", "B", false); err != nil {
		t.Fatal(err)
	}
	d, _ = o.Diff()
	p, err = ParsePatch("w", d)
	if err != nil {
		t.Fatal(err)
	}
	if err := w.Apply(ctx, p, fp); err != nil {
		t.Errorf("apply of an edit to a CRLF file: %v", err)
	}
}
