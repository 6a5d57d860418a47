package workspace

import (
	"context"
	"errors"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"
)

// tree makes a directory holding files (path: contents; a path ending in
// "/" is an empty directory) and returns it.
func tree(t testing.TB, files map[string]string) string {
	t.Helper()
	dir := t.TempDir()
	for p, c := range files {
		full := filepath.Join(dir, filepath.FromSlash(p))
		if strings.HasSuffix(p, "/") {
			if err := os.MkdirAll(full, 0o755); err != nil {
				t.Fatal(err)
			}
			continue
		}
		if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(full, []byte(c), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

func open(t testing.TB, dir string, opts Options) *Workspace {
	t.Helper()
	w, err := Open(dir, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { w.Close() })
	return w
}

func symlink(t testing.TB, target, link string) {
	t.Helper()
	if err := os.Symlink(target, link); err != nil {
		t.Fatal(err)
	}
}

// paths returns the paths of a list's entries.
func paths(r ListResult) []string {
	var out []string
	for _, e := range r.Entries {
		out = append(out, e.Path)
	}
	return out
}

func TestOpen(t *testing.T) {
	if _, err := Open(filepath.Join(t.TempDir(), "missing"), Options{}); err == nil {
		t.Error("Open of a missing directory succeeded")
	}
	if _, err := Open(t.TempDir(), Options{Hide: []string{"[a"}}); err == nil {
		t.Error("Open with a malformed Hide glob succeeded")
	}
}

// TestEscapes checks that every way out of the tree is refused, by every
// operation that takes a path, with an error that says why and names no
// directory of the host.
func TestEscapes(t *testing.T) {
	dir := tree(t, map[string]string{"a.txt": "hello\n", "sub/b.txt": "b\n"})
	symlink(t, "/etc/passwd", filepath.Join(dir, "passwd"))
	symlink(t, "..", filepath.Join(dir, "up"))
	symlink(t, "../..", filepath.Join(dir, "sub", "upup"))
	symlink(t, "../"+filepath.Base(dir)+"/a.txt", filepath.Join(dir, "outandin"))
	symlink(t, "/", filepath.Join(dir, "slash"))
	symlink(t, "loop", filepath.Join(dir, "loop"))
	if err := syscall.Mkfifo(filepath.Join(dir, "fifo"), 0o644); err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("unix", filepath.Join(dir, "sock"))
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	dev := syscall.Mknod(filepath.Join(dir, "null"), syscall.S_IFCHR|0o666, 1<<8|3) == nil

	w := open(t, dir, Options{})
	o := w.NewOverlay()
	ctx := context.Background()
	cases := []struct {
		path string
		want error
	}{
		{"passwd", ErrOutside},
		{"up/etc/passwd", ErrOutside},
		{"up", ErrOutside},
		{"sub/upup/x", ErrOutside},
		{"outandin", ErrOutside},
		{"slash/etc/passwd", ErrOutside},
		{"../x", ErrOutside},
		{"sub/../../x", ErrOutside},
		{"..", ErrOutside},
		{"/etc/passwd", ErrOutside},
		{"a\x00b", ErrInvalidPath},
		{strings.Repeat("a/", 3000) + "x", ErrInvalidPath},
		{strings.Repeat("n", 300), ErrInvalidPath},
		{"\xff\xfe", ErrInvalidPath},
		{"loop", ErrNotFound},
		{"fifo", ErrNotRegular},
		{"sock", ErrNotRegular},
	}
	if dev {
		cases = append(cases, struct {
			path string
			want error
		}{"null", ErrNotRegular})
	}
	for _, c := range cases {
		check := func(op string, err error) {
			t.Helper()
			if !errors.Is(err, c.want) {
				t.Errorf("%s %q: got %v, want %v", op, c.path, err, c.want)
				return
			}
			if strings.Contains(err.Error(), dir) {
				t.Errorf("%s %q: the error names the host directory: %v", op, c.path, err)
			}
		}
		done := make(chan struct{})
		go func() {
			defer close(done)
			_, err := w.Read(ctx, c.path, 0, 0)
			check("read", err)
			_, err = o.Read(ctx, c.path, 0, 0)
			check("overlay read", err)
			_, err = w.Grep(ctx, "x", GrepOptions{Path: c.path})
			check("grep", err)
			if c.want != ErrNotRegular {
				_, err = w.List(ctx, c.path, ListOptions{})
				check("list", err)
			}
			if c.want == ErrNotRegular || c.path == "loop" {
				return // writes of these fail otherwise: see TestWriteRefused
			}
			check("write", o.Write(c.path, "x"))
			_, err = o.Edit(c.path, "", "x", false)
			check("edit", err)
			check("delete", o.Delete(c.path))
		}()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			t.Fatalf("%q: an operation blocked", c.path)
		}
	}
	// None of them is listed.
	res, err := w.List(ctx, ".", ListOptions{Recursive: true})
	if err != nil {
		t.Fatal(err)
	}
	if got, want := paths(res), []string{"a.txt", "sub", "sub/b.txt"}; !slices.Equal(got, want) {
		t.Errorf("List = %q, want %q", got, want)
	}
	if d, _ := o.Diff(); d != "" {
		t.Errorf("refused writes left a diff:\n%s", d)
	}
}

// TestSymlinkInside checks that links inside the tree are followed, and
// that a link cannot reach a hidden file.
func TestSymlinkInside(t *testing.T) {
	dir := tree(t, map[string]string{"docs/readme.md": "read me\n", ".env": "KEY=1\n", "x/.gitkeep": ""})
	symlink(t, "docs/readme.md", filepath.Join(dir, "README"))
	symlink(t, "docs", filepath.Join(dir, "d"))
	symlink(t, ".env", filepath.Join(dir, "env"))
	symlink(t, "../.env", filepath.Join(dir, "x", "env"))
	w := open(t, dir, Options{})
	ctx := context.Background()
	for _, p := range []string{"README", "d/readme.md", "./docs/../README"} {
		r, err := w.Read(ctx, p, 0, 0)
		if err != nil || r.Content != "read me\n" || r.Path != "docs/readme.md" {
			t.Errorf("Read(%q) = %+v, %v", p, r, err)
		}
	}
	for _, p := range []string{"env", "x/env"} {
		if _, err := w.Read(ctx, p, 0, 0); !errors.Is(err, ErrNotFound) {
			t.Errorf("Read(%q) through a link to .env: %v, want ErrNotFound", p, err)
		}
	}
	res, err := w.List(ctx, ".", ListOptions{Recursive: true})
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"README", "d", "docs", "docs/readme.md", "x", "x/.gitkeep"}
	if got := paths(res); !slices.Equal(got, want) {
		t.Errorf("List = %q, want %q", got, want)
	}
	// Writing through a link changes its target.
	o := w.NewOverlay()
	if err := o.Write("README", "new\n"); err != nil {
		t.Fatal(err)
	}
	if r, _ := o.Read(ctx, "docs/readme.md", 0, 0); r.Content != "new\n" {
		t.Errorf("the link's target reads %q after a write through the link", r.Content)
	}
	if err := o.Delete("README"); !errors.Is(err, ErrNotRegular) {
		t.Errorf("Delete of a link: %v, want ErrNotRegular", err)
	}
	if err := o.Write("env", "x"); !errors.Is(err, ErrHidden) {
		t.Errorf("Write through a link to .env: %v, want ErrHidden", err)
	}
}

// hiddenTree has visible files and hidden ones, all holding "needle".
var hiddenTree = map[string]string{
	".git/config":               "needle",
	".git/hooks/pre-commit":     "needle",
	".gitignore":                "build/\n*.log\n!keep.log\n# comment\n",
	"build/out.txt":             "needle",
	"app.log":                   "needle",
	"keep.log":                  "needle",
	".env":                      "needle",
	".env.local":                "needle",
	"certs/server.pem":          "needle",
	"certs/README":              "needle",
	"ID_RSA.pub":                "needle",
	"sub/credentials-prod.json": "needle",
	".npmrc":                    "needle",
	"private/data.txt":          "needle",
	"sub/.gitignore":            "local.txt\n",
	"sub/local.txt":             "needle",
	"sub/code.go":               "needle",
	"src/main.go":               "needle",
	"vendor/.git":               "gitdir: needle",
}

var visibleTree = []string{
	".gitignore", "certs", "certs/README", "keep.log", "src", "src/main.go",
	"sub", "sub/.gitignore", "sub/code.go", "vendor",
}

func TestHidden(t *testing.T) {
	dir := tree(t, hiddenTree)
	symlink(t, ".env", filepath.Join(dir, "env-link"))
	w := open(t, dir, Options{Hide: []string{"private"}})
	o := w.NewOverlay()
	ctx := context.Background()

	res, err := w.List(ctx, "", ListOptions{Recursive: true})
	if err != nil {
		t.Fatal(err)
	}
	if got := paths(res); !slices.Equal(got, visibleTree) {
		t.Errorf("List =\n%q\nwant\n%q", got, visibleTree)
	}
	g, err := w.Grep(ctx, "needle", GrepOptions{})
	if err != nil {
		t.Fatal(err)
	}
	var found []string
	for _, m := range g.Matches {
		found = append(found, m.Path)
	}
	if want := []string{"certs/README", "keep.log", "src/main.go", "sub/code.go"}; !slices.Equal(found, want) {
		t.Errorf("Grep found %q, want %q", found, want)
	}
	for p := range hiddenTree {
		if slices.Contains(visibleTree, p) {
			continue
		}
		if _, err := w.Read(ctx, p, 0, 0); !errors.Is(err, ErrNotFound) {
			t.Errorf("Read(%q) of a hidden file: %v, want ErrNotFound", p, err)
		}
		if _, err := w.Grep(ctx, "needle", GrepOptions{Path: p}); !errors.Is(err, ErrNotFound) {
			t.Errorf("Grep in %q, a hidden file: %v, want ErrNotFound", p, err)
		}
		if err := o.Write(p, "x"); !errors.Is(err, ErrHidden) {
			t.Errorf("Write(%q) of a hidden file: %v, want ErrHidden", p, err)
		}
		if _, err := o.Edit(p, "needle", "x", false); !errors.Is(err, ErrHidden) {
			t.Errorf("Edit(%q) of a hidden file: %v, want ErrHidden", p, err)
		}
		if err := o.Delete(p); !errors.Is(err, ErrHidden) {
			t.Errorf("Delete(%q) of a hidden file: %v, want ErrHidden", p, err)
		}
	}
	for _, p := range []string{".git", "build", "private", "env-link", ".git/hooks"} {
		if _, err := w.List(ctx, p, ListOptions{}); !errors.Is(err, ErrNotFound) {
			t.Errorf("List(%q), hidden: %v, want ErrNotFound", p, err)
		}
	}
	for _, p := range []string{".git/hooks/post-checkout", "build/new.txt", "new.log", ".env.production", "private/x", "sub/local.txt", "a/b/id_ed25519"} {
		if err := o.Write(p, "x"); !errors.Is(err, ErrHidden) {
			t.Errorf("Write(%q), a new hidden path: %v, want ErrHidden", p, err)
		}
	}
	// The errors of a hidden file and of a missing one say the same.
	_, e1 := w.Read(ctx, ".env", 0, 0)
	_, e2 := w.Read(ctx, ".nothing", 0, 0)
	if strings.ReplaceAll(e1.Error(), ".env", "X") != strings.ReplaceAll(e2.Error(), ".nothing", "X") {
		t.Errorf("a hidden file's error %q differs from a missing one's %q", e1, e2)
	}
}

func TestShow(t *testing.T) {
	dir := tree(t, hiddenTree)
	ctx := context.Background()
	cases := []struct {
		show []string
		want []string // visible besides visibleTree
	}{
		{[]string{"build"}, []string{"build", "build/out.txt"}},
		{[]string{"build/out.txt"}, []string{"build/out.txt"}},
		{[]string{"*.log"}, []string{"app.log"}},
		{[]string{"sub/local.txt"}, []string{"sub/local.txt"}},
		// Wildcards never show a secret, or .git.
		{[]string{"**", "*"}, []string{"app.log", "build", "build/out.txt", "sub/local.txt"}},
		{[]string{".env*", "*.pem", ".git"}, nil},
		// A literal path does.
		{[]string{".env.local", "certs/server.pem"}, []string{".env.local", "certs/server.pem"}},
	}
	for _, c := range cases {
		w := open(t, dir, Options{Show: c.show, Hide: []string{"private"}})
		res, err := w.List(ctx, "", ListOptions{Recursive: true})
		if err != nil {
			t.Fatal(err)
		}
		want := slices.Sorted(slices.Values(append(slices.Clone(visibleTree), c.want...)))
		if got := paths(res); !slices.Equal(got, want) {
			t.Errorf("Show %q: List =\n%q\nwant\n%q", c.show, got, want)
		}
		for _, p := range c.want {
			if !strings.Contains(p, ".") {
				continue
			}
			if r, err := w.Read(ctx, p, 0, 0); err != nil || r.Content != "needle" {
				t.Errorf("Show %q: Read(%q) = %q, %v", c.show, p, r.Content, err)
			}
		}
	}
}

func TestList(t *testing.T) {
	files := map[string]string{"empty/": ""}
	for _, p := range []string{"a.go", "b.txt", "cmd/x/main.go", "cmd/x/main_test.go", "docs/a.md"} {
		files[p] = "x\n"
	}
	w := open(t, tree(t, files), Options{MaxListEntries: 4})
	ctx := context.Background()
	cases := []struct {
		dir  string
		opts ListOptions
		want []string
		more int
	}{
		{"", ListOptions{}, []string{"a.go", "b.txt", "cmd", "docs"}, 1},
		{".", ListOptions{Max: 2}, []string{"a.go", "b.txt"}, 3},
		{"cmd", ListOptions{Recursive: true}, []string{"cmd/x", "cmd/x/main.go", "cmd/x/main_test.go"}, 0},
		{"", ListOptions{Recursive: true, Glob: "*.go"}, []string{"a.go", "cmd/x/main.go", "cmd/x/main_test.go"}, 0},
		{"cmd", ListOptions{Recursive: true, Glob: "x/*_test.go"}, []string{"cmd/x/main_test.go"}, 0},
		{"", ListOptions{Recursive: true, Glob: "**/*.{md,txt}"}, []string{"b.txt", "docs/a.md"}, 0},
		{"empty", ListOptions{}, []string{}, 0},
	}
	for _, c := range cases {
		res, err := w.List(ctx, c.dir, c.opts)
		if err != nil {
			t.Errorf("List(%q, %+v): %v", c.dir, c.opts, err)
			continue
		}
		if got := paths(res); !slices.Equal(got, c.want) && !(len(got) == 0 && len(c.want) == 0) || res.More != c.more {
			t.Errorf("List(%q, %+v) = %q, %d more; want %q, %d more", c.dir, c.opts, got, res.More, c.want, c.more)
		}
	}
	res, _ := w.List(ctx, "", ListOptions{})
	if s := res.String(); !strings.Contains(s, "truncated: 1 more") || !strings.Contains(s, "cmd/\n") {
		t.Errorf("ListResult.String() =\n%s", s)
	}
	if _, err := w.List(ctx, "a.go", ListOptions{}); !errors.Is(err, ErrNotRegular) {
		t.Errorf("List of a file: %v", err)
	}
	if _, err := w.List(ctx, "", ListOptions{Glob: "[a"}); !errors.Is(err, ErrInvalidPath) {
		t.Errorf("List with a malformed glob: %v", err)
	}
	for _, g := range []string{
		strings.Repeat("*", 1000),
		strings.Repeat("{*,a}", 40) + "b", // exponential in doublestar
		"{" + strings.Repeat("a,", 16) + "b}",
	} {
		if _, err := w.List(ctx, "", ListOptions{Glob: g}); !errors.Is(err, ErrInvalidPath) {
			t.Errorf("List with glob %.30q: %v, want ErrInvalidPath", g, err)
		}
	}
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	if _, err := w.List(cctx, "", ListOptions{Recursive: true}); !errors.Is(err, context.Canceled) {
		t.Errorf("List with a canceled context: %v", err)
	}
}

func TestRead(t *testing.T) {
	var long strings.Builder
	for i := 1; i <= 10; i++ {
		long.WriteString(strings.Repeat("x", i) + "\n")
	}
	dir := tree(t, map[string]string{
		"ten.txt":    long.String(),
		"nonl.txt":   "one\ntwo",
		"empty.txt":  "",
		"wide.txt":   strings.Repeat("é", 100) + "\nnext\n",
		"bin.dat":    "text\x00more",
		"crlf.txt":   "a\r\nb\r\n",
		"unicode.md": "日本語\n",
	})
	w := open(t, dir, Options{MaxReadLines: 4, MaxReadBytes: 30})
	ctx := context.Background()
	cases := []struct {
		path       string
		start, end int
		content    string
		first      int
		last       int
		total      int
		cut        bool
	}{
		{"ten.txt", 0, 0, "x\nxx\nxxx\nxxxx\n", 1, 4, 10, false},
		{"ten.txt", 2, 3, "xx\nxxx\n", 2, 3, 10, false},
		{"ten.txt", 7, 0, "xxxxxxx\nxxxxxxxx\nxxxxxxxxx\n", 7, 9, 10, false}, // 30 bytes: line 10 does not fit
		{"ten.txt", 10, 20, "xxxxxxxxxx\n", 10, 10, 10, false},               // end past the end
		{"nonl.txt", 0, 0, "one\ntwo", 1, 2, 2, false},
		{"nonl.txt", 2, 2, "two", 2, 2, 2, false},
		{"empty.txt", 0, 0, "", 1, 0, 0, false},
		{"wide.txt", 0, 0, strings.Repeat("é", 15), 1, 1, 2, true},
		{"crlf.txt", 0, 0, "a\r\nb\r\n", 1, 2, 2, false},
		{"unicode.md", 1, 1, "日本語\n", 1, 1, 1, false},
	}
	for _, c := range cases {
		r, err := w.Read(ctx, c.path, c.start, c.end)
		if err != nil {
			t.Errorf("Read(%q, %d, %d): %v", c.path, c.start, c.end, err)
			continue
		}
		if r.Content != c.content || r.StartLine != c.first || r.EndLine != c.last || r.TotalLines != c.total || r.Cut != c.cut {
			t.Errorf("Read(%q, %d, %d) = %+v\nwant %q lines %d-%d of %d cut %v", c.path, c.start, c.end, r, c.content, c.first, c.last, c.total, c.cut)
		}
	}
	r, _ := w.Read(ctx, "ten.txt", 0, 0)
	if s := r.String(); !strings.Contains(s, "lines 1-4 of 10") || !strings.Contains(s, "read on from line 5") {
		t.Errorf("ReadResult.String() =\n%s", s)
	}
	for _, c := range []struct {
		path       string
		start, end int
		want       string
	}{
		{"bin.dat", 0, 0, "binary"},
		{"ten.txt", 11, 0, "past the end"},
		{"ten.txt", 5, 2, "before start_line"},
		{"ten.txt", -1, 0, "negative"},
		{"missing.txt", 0, 0, "not found"},
		{".", 0, 0, "directory"},
	} {
		if _, err := w.Read(ctx, c.path, c.start, c.end); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("Read(%q, %d, %d): %v, want an error saying %q", c.path, c.start, c.end, err, c.want)
		}
	}
}

// TestReadLarge reads a window of a file of 100,000 lines.
func TestReadLarge(t *testing.T) {
	var b strings.Builder
	for i := range 100_000 {
		b.WriteString(strings.Repeat("y", i%100) + "\n")
	}
	w := open(t, tree(t, map[string]string{"big.txt": b.String()}), Options{})
	r, err := w.Read(context.Background(), "big.txt", 50_001, 50_003)
	if err != nil {
		t.Fatal(err)
	}
	if r.TotalLines != 100_000 || r.Content != "\ny\nyy\n" {
		t.Errorf("Read = %d lines, %q", r.TotalLines, r.Content)
	}
}

// A .git spelled in another case, or with Windows' trailing dots, is the
// repository on a case-insensitive file system: as hidden as .git; and a
// patch cannot create an executable file.
func TestGitAnyCaseAndNoExecutables(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "a.txt"), []byte("a\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	ws, err := Open(dir, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer ws.Close()
	ov := ws.NewOverlay()
	for _, p := range []string{".GIT/hooks/pre-commit", ".Git/config", ".git./config", "GIT~1/config"} {
		if err := ov.Write(p, "x"); err == nil {
			t.Errorf("write %s: allowed", p)
		}
		if _, err := ParsePatch("p", "diff --git a/"+p+" b/"+p+"\nnew file mode 100644\n--- /dev/null\n+++ b/"+p+"\n@@ -0,0 +1 @@\n+x\n"); err == nil {
			t.Errorf("patch of %s: accepted", p)
		}
	}
	for _, p := range []string{".envrc", ".aws/credentials", "deploy/prod.tfvars", ".kube/config"} {
		if ws.visible(p, false) {
			t.Errorf("%s is visible", p)
		}
	}
	patch, err := ParsePatch("p", "diff --git a/run.sh b/run.sh\nnew file mode 100755\n--- /dev/null\n+++ b/run.sh\n@@ -0,0 +1,2 @@\n+#!/bin/sh\n+echo hi\n")
	if err != nil {
		t.Fatal(err)
	}
	fp, err := ws.Fingerprint(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if err := ws.Apply(context.Background(), patch, fp); err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(filepath.Join(dir, "run.sh"))
	if err != nil || fi.Mode().Perm()&0o111 != 0 {
		t.Errorf("run.sh: %v, mode %v; want a file no one can execute", err, fi.Mode())
	}
}
