package workspace

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
)

func TestGrep(t *testing.T) {
	dir := tree(t, map[string]string{
		"a.go":       "package a\n\nfunc Hello() {}\nfunc hello() {}\n",
		"b/b.go":     "package b\n// HELLO\n",
		"b/b.txt":    "hello text\r\n",
		"big.txt":    strings.Repeat("hello\n", 2000),
		"bin.dat":    "hello\x00",
		"long.txt":   strings.Repeat("ü", 300) + "hello\n",
		"many.txt":   strings.Repeat("match\n", 50),
		"nomatch.md": "nothing\n",
	})
	w := open(t, dir, Options{MaxFileSize: 4 << 10, MaxGrepMatches: 20})
	ctx := context.Background()
	lines := func(r GrepResult) []string {
		var out []string
		for _, m := range r.Matches {
			out = append(out, fmt.Sprintf("%s:%d:%s", m.Path, m.Line, m.Text))
		}
		return out
	}
	cases := []struct {
		pattern string
		opts    GrepOptions
		want    []string
	}{
		{`^func [hH]ello`, GrepOptions{}, []string{"a.go:3:func Hello() {}", "a.go:4:func hello() {}"}},
		{`hello`, GrepOptions{Glob: "*.go", IgnoreCase: true}, []string{"a.go:3:func Hello() {}", "a.go:4:func hello() {}", "b/b.go:2:// HELLO"}},
		{`hello`, GrepOptions{Path: "b"}, []string{"b/b.txt:1:hello text"}},
		{`hello`, GrepOptions{Path: "b/b.txt"}, []string{"b/b.txt:1:hello text"}},
		{`text$`, GrepOptions{Path: "b"}, []string{"b/b.txt:1:hello text"}}, // a line is matched without its \r\n
		{`nope`, GrepOptions{}, nil},
	}
	for _, c := range cases {
		r, err := w.Grep(ctx, c.pattern, c.opts)
		if err != nil {
			t.Errorf("Grep(%q, %+v): %v", c.pattern, c.opts, err)
			continue
		}
		if got := lines(r); strings.Join(got, "\n") != strings.Join(c.want, "\n") {
			t.Errorf("Grep(%q, %+v) =\n%s\nwant\n%s", c.pattern, c.opts, strings.Join(got, "\n"), strings.Join(c.want, "\n"))
		}
	}

	r, err := w.Grep(ctx, "hello", GrepOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if r.SkippedLarge != 1 || r.SkippedBinary != 1 {
		t.Errorf("skipped %d large and %d binary files, want 1 and 1", r.SkippedLarge, r.SkippedBinary)
	}
	for _, m := range r.Matches {
		if m.Path == "long.txt" && (len(m.Text) > maxMatchText+3 || !strings.HasSuffix(m.Text, "...") || !strings.HasPrefix(m.Text, "üü")) {
			t.Errorf("a long line is returned as %q", m.Text)
		}
	}
	s := r.String()
	for _, want := range []string{"a.go:4:func hello() {}", "skipped 1 file too large", "skipped 1 binary file"} {
		if !strings.Contains(s, want) {
			t.Errorf("GrepResult.String() lacks %q:\n%s", want, s)
		}
	}

	// Bounded by matches, from the options and from the call.
	r, _ = w.Grep(ctx, "match", GrepOptions{})
	if len(r.Matches) != 20 || !r.Truncated || !strings.Contains(r.String(), "truncated") {
		t.Errorf("Grep of 50 matches with a bound of 20: %d matches, truncated %v", len(r.Matches), r.Truncated)
	}
	r, _ = w.Grep(ctx, "match", GrepOptions{Max: 5})
	if len(r.Matches) != 5 || !r.Truncated {
		t.Errorf("Grep with Max 5: %d matches, truncated %v", len(r.Matches), r.Truncated)
	}
	// Bounded by bytes.
	wb := open(t, dir, Options{MaxGrepBytes: 100})
	r, _ = wb.Grep(ctx, "match", GrepOptions{})
	if n := len(r.Matches); n == 0 || n*len("many.txtmatch") > 100 || !r.Truncated {
		t.Errorf("Grep bounded to 100 bytes: %d matches, truncated %v", n, r.Truncated)
	}

	for _, c := range []struct {
		pattern string
		opts    GrepOptions
		want    string
	}{
		{`(a)\1`, GrepOptions{}, "RE2"},
		{`(?=x)`, GrepOptions{}, "RE2"},
		{strings.Repeat("a", maxPatternLen+1), GrepOptions{}, "at most 1024"},
		{"", GrepOptions{}, "empty"},
		{"x", GrepOptions{Glob: "{"}, "malformed"},
		{"x", GrepOptions{Path: "missing"}, "not found"},
	} {
		if _, err := w.Grep(ctx, c.pattern, c.opts); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("Grep(%.20q, %+v): %v, want an error saying %q", c.pattern, c.opts, err, c.want)
		}
	}
}

// TestGrepHostile runs patterns that take a backtracking engine
// exponential time; RE2 takes time linear in the text, so Grep returns,
// with the right answer. (Under the race detector, the megabyte takes
// Go's regexp about 2.5 s.)
func TestGrepHostile(t *testing.T) {
	t.Parallel()
	dir := tree(t, map[string]string{
		"mb.txt":    strings.Repeat("a", 1<<20),
		"lines.txt": strings.Repeat(strings.Repeat("a", 63)+"\n", 1<<10),
	})
	w := open(t, dir, Options{})
	for _, c := range []struct{ pattern, path string }{
		{`(a*)*b`, "mb.txt"},
		{`(a|aa)*b`, "lines.txt"},
		{`^(a?){30}a{30}$`, "lines.txt"},
	} {
		r, err := w.Grep(context.Background(), c.pattern, GrepOptions{Path: c.path})
		if err != nil {
			t.Fatalf("Grep(%q): %v", c.pattern, err)
		}
		if len(r.Matches) != 0 || r.Files != 1 || r.Truncated {
			t.Errorf("Grep(%q) in %s = %d matches in %d files, want none in 1", c.pattern, c.path, len(r.Matches), r.Files)
		}
	}
	r, err := w.Grep(context.Background(), `^(a?){30}a{30}`, GrepOptions{Path: "lines.txt", Max: 3})
	if err != nil || len(r.Matches) != 3 || r.Matches[2].Line != 3 {
		t.Errorf("Grep of a matching hostile pattern: %+v, %v", r, err)
	}
}

func TestGrepCanceled(t *testing.T) {
	files := map[string]string{}
	for i := range 20 {
		files[fmt.Sprintf("f%02d.txt", i)] = "x\n"
	}
	w := open(t, tree(t, files), Options{})
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := w.Grep(ctx, "x", GrepOptions{}); !errors.Is(err, context.Canceled) {
		t.Errorf("Grep with a canceled context: %v", err)
	}
}
