package workspace

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// hiddenAliases are names that some file system takes for a hidden path:
// case (NTFS, APFS, HFS+), code points HFS+ ignores, NTFS streams,
// trailing dots and spaces (Windows), and Windows short names.
var hiddenAliases = []string{
	".GIT/config",
	".Git/hooks/pre-commit",
	".git\u200c/hooks/pre-commit",
	".git\u200d/hooks/pre-commit",
	"\ufeff.git/hooks/pre-commit",
	".g\u00adit/config",
	".git::$INDEX_ALLOCATION/hooks/x",
	".git:stream",
	".git./x",
	".git /x",
	".git . ./x",
	"GIT~1/x",
	"git~1/hooks/x",
	".ENV",
	".env.",
	".env ",
	".e\u200cnv",
	".Env\ufeff",
	".env:$DATA",
	".env::$DATA",
	"ENV~1",
	"id_rsa\u200d",
	"\u017fecrets.yml", // ſ folds with s, as NTFS's upper-case table has it
	"PRIVATE/key.txt",
	"private./key.txt",
	"pri\u200bvate/key.txt",
}

// TestHiddenAliases: no write, edit, delete, patch or apply reaches a
// hidden path through another name for it, and each is refused with an
// error that says why.
func TestHiddenAliases(t *testing.T) {
	dir := tree(t, map[string]string{
		"a.txt":           "a\n",
		".git/config":     "[core]\n",
		".git/hooks/":     "",
		".env":            "KEY=secret\n",
		"secrets.yml":     "k: v\n",
		"private/key.txt": "mine\n",
	})
	w := open(t, dir, Options{Hide: []string{"private/**"}})
	ctx := context.Background()
	fp, err := w.Fingerprint(ctx)
	if err != nil {
		t.Fatal(err)
	}
	before := snapshotTree(t, dir)
	refused := func(err error) bool { return errors.Is(err, ErrHidden) || errors.Is(err, ErrInvalidPath) }
	for _, p := range hiddenAliases {
		o := w.NewOverlay()
		if err := o.Write(p, "x\n"); !refused(err) {
			t.Errorf("Write(%q): %v; want it refused as hidden or invalid", p, err)
		}
		if _, err := o.Edit(p, "", "x\n", false); !refused(err) {
			t.Errorf("Edit(%q): %v; want it refused as hidden or invalid", p, err)
		}
		if d, err := o.Diff(); err != nil || d != "" {
			t.Errorf("after writes to %q the overlay has changes: %q, %v", p, d, err)
		}
		if w.visible(p, false) {
			t.Errorf("%q is visible", p)
		}
		diff := fmt.Sprintf("diff --git a/%s b/%s\nnew file mode 100644\n--- /dev/null\n+++ b/%s\n@@ -0,0 +1 @@\n+x\n", p, p, p)
		patch, err := ParsePatch("p", diff)
		if err != nil {
			continue // refused already
		}
		if err := w.CheckPatch(patch); !refused(err) {
			t.Errorf("CheckPatch of %q: %v; want it refused as hidden or invalid", p, err)
		}
		if err := w.Apply(ctx, patch, fp); !refused(err) {
			t.Errorf("Apply of %q: %v; want it refused as hidden or invalid", p, err)
		}
		if merged, _ := Merge(patch); w.CheckPatch(merged) == nil {
			t.Errorf("the merge of a patch to %q passes CheckPatch", p)
		}
	}
	if after := snapshotTree(t, dir); fmt.Sprint(after) != fmt.Sprint(before) {
		t.Fatalf("a refused write reached the directory:\n%v\nwas\n%v", after, before)
	}
	// Names like them that no file system confuses with a hidden one are
	// written as any other.
	o := w.NewOverlay()
	for _, p := range []string{"git/config", ".gitx/y", "a.git", "env", "x.env.txt", "tilde~x", "private2/key.txt"} {
		if err := o.Write(p, "ok\n"); err != nil {
			t.Errorf("Write(%q): %v", p, err)
		}
	}
}

func TestFold(t *testing.T) {
	for _, c := range []struct{ in, want string }{
		{".GIT", ".git"},
		{".git\u200c", ".git"},
		{".git. . ", ".git"},
		{"\u212a", "k"}, // Kelvin
		{"\u017f", "s"}, // long s
		{"Straße", "straße"},
		{"a.b", "a.b"},
	} {
		if got := fold(c.in); got != c.want {
			t.Errorf("fold(%q) = %q, want %q", c.in, got, c.want)
		}
	}
	for _, c := range []struct {
		in   string
		want bool
	}{{"git~1", true}, {"gi7eba~1", true}, {"env~12.txt", true}, {"tilde~x", false}, {"~1", false}, {"longername~1", false}, {"a~1.b.c", false}} {
		if got := shortName(c.in); got != c.want {
			t.Errorf("shortName(%q) = %v, want %v", c.in, got, c.want)
		}
	}
}

// A workspace that is itself hidden is refused: inside it no path element
// would be hidden any more (a repository's .git with its config and
// hooks, a secret directory, a directory the repository ignores).
func TestHiddenWorkspaceRefused(t *testing.T) {
	root := t.TempDir()
	repo := filepath.Join(root, "repo")
	for _, d := range []string{".git/hooks", ".GIT", "node_modules/x", "src", ".ssh"} {
		if err := os.MkdirAll(filepath.Join(repo, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	os.WriteFile(filepath.Join(repo, ".gitignore"), []byte("node_modules/\n"), 0o644)
	os.Symlink(filepath.Join(repo, ".git"), filepath.Join(root, "innocent"))
	for dir, want := range map[string]string{
		filepath.Join(repo, ".git"):           ".git directory",
		filepath.Join(repo, ".git", "hooks"):  ".git directory",
		filepath.Join(repo, ".GIT"):           ".git directory",
		filepath.Join(root, "innocent"):       ".git directory",
		filepath.Join(repo, ".ssh"):           "secret directory",
		filepath.Join(repo, "node_modules"):   "hidden in the repository",
		filepath.Join(repo, "node_modules/x"): "hidden in the repository",
	} {
		w, err := Open(dir, Options{})
		if err == nil {
			w.Close()
		}
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("Open(%s) = %v, want an error about the %s", dir, err, want)
		}
	}
	for _, dir := range []string{repo, filepath.Join(repo, "src")} {
		w, err := Open(dir, Options{})
		if err != nil {
			t.Errorf("Open(%s): %v", dir, err)
			continue
		}
		w.Close()
	}
}

// Names that would display as other names are refused: a right-to-left
// override turns "readme\u202Ehs.txt" into "readmetxt.sh" on screen, a C1
// CSI starts a terminal escape.
func TestDisplayNamesRefused(t *testing.T) {
	w := open(t, tree(t, map[string]string{"a.txt": "a\n"}), Options{})
	o := w.NewOverlay()
	for _, name := range []string{"docs/readme\u202Ehs.txt", "x\u009b31m.txt", "a\u200b.txt", "\u2066b.txt"} {
		if err := o.Write(name, "x\n"); !errors.Is(err, ErrInvalidPath) {
			t.Errorf("Write(%q) = %v, want ErrInvalidPath", name, err)
		}
	}
	if err := o.Write("naïve/日本.txt", "x\n"); err != nil {
		t.Errorf("a plain Unicode name: %v", err)
	}
}
