package workspace

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"regexp"
	"strings"
)

// maxMatchText bounds the bytes of a matched line kept in a [Match].
const maxMatchText = 256

// GrepOptions are the arguments of a Grep besides the pattern; a model may
// choose them.
type GrepOptions struct {
	// Path is the directory searched ("" for the root) or a single file.
	Path string `json:"path,omitempty"`
	// Glob keeps the files whose path relative to Path it matches
	// (doublestar syntax; a glob without a slash matches the name).
	Glob string `json:"glob,omitempty"`
	// IgnoreCase matches letters of either case.
	IgnoreCase bool `json:"ignore_case,omitempty"`
	// Max bounds the matches returned; zero or more than
	// [Options.MaxGrepMatches] means that.
	Max int `json:"max,omitempty"`
}

// Match is a line that matched.
type Match struct {
	Path string `json:"path"`
	Line int    `json:"line"` // 1-based
	Text string `json:"text"` // the line without its newline, cut past 256 bytes
}

// GrepResult is what a Grep found.
type GrepResult struct {
	Matches []Match `json:"matches"`
	// Truncated is true when the search stopped at the bound on matches
	// or bytes: there may be more.
	Truncated bool `json:"truncated,omitempty"`
	Files     int  `json:"files"` // files searched
	// SkippedLarge counts files larger than [Options.MaxFileSize], and
	// SkippedBinary files with a NUL byte in their first 8 KiB; neither
	// was searched.
	SkippedLarge  int `json:"skipped_large,omitempty"`
	SkippedBinary int `json:"skipped_binary,omitempty"`
}

// String renders r for a model: one "path:line:text" a match, then what
// was left out.
func (r GrepResult) String() string {
	var b strings.Builder
	for _, m := range r.Matches {
		fmt.Fprintf(&b, "%s:%d:%s\n", m.Path, m.Line, m.Text)
	}
	if len(r.Matches) == 0 {
		fmt.Fprintf(&b, "no matches in %s\n", plural(r.Files, "file", "files"))
	}
	if r.Truncated {
		b.WriteString("truncated: there may be more matches (narrow the pattern, the path or the glob)\n")
	}
	if r.SkippedLarge > 0 {
		fmt.Fprintf(&b, "skipped %s too large to search\n", plural(r.SkippedLarge, "file", "files"))
	}
	if r.SkippedBinary > 0 {
		fmt.Fprintf(&b, "skipped %s\n", plural(r.SkippedBinary, "binary file", "binary files"))
	}
	return b.String()
}

// Grep searches the visible text files for lines matching pattern, a Go
// regular expression (RE2 syntax: its matching time is linear in the text
// whatever the pattern, so no pattern can stall it), of at most 1,024
// bytes. It returns at most [Options.MaxGrepMatches] matches and
// [Options.MaxGrepBytes] bytes of matched lines, in lexical order of
// paths; files larger than [Options.MaxFileSize] and binary files are
// skipped and counted.
func (w *Workspace) Grep(ctx context.Context, pattern string, opts GrepOptions) (GrepResult, error) {
	return w.grep(ctx, pattern, opts, nil)
}

func (w *Workspace) grep(ctx context.Context, pattern string, opts GrepOptions, o *Overlay) (GrepResult, error) {
	const op = "grep"
	if len(pattern) > maxPatternLen {
		return GrepResult{}, fmt.Errorf("grep: the pattern is %d bytes long; at most %d", len(pattern), maxPatternLen)
	}
	if pattern == "" {
		return GrepResult{}, errors.New("grep: the pattern is empty")
	}
	expr := pattern
	if opts.IgnoreCase {
		expr = "(?i)" + expr
	}
	re, err := regexp.Compile(expr)
	if err != nil {
		return GrepResult{}, fmt.Errorf("grep: the pattern is not a valid Go (RE2) regular expression (no backreferences or lookaround): %v", err)
	}
	match, err := globMatcher(op, opts.Glob)
	if err != nil {
		return GrepResult{}, err
	}
	if opts.Path == "" {
		opts.Path = "."
	}
	top, err := w.stat(op, opts.Path, o)
	if err != nil {
		return GrepResult{}, err
	}
	maxMatches := w.opts.MaxGrepMatches
	if opts.Max > 0 && opts.Max < maxMatches {
		maxMatches = opts.Max
	}
	res := GrepResult{Matches: []Match{}}
	budget := w.opts.MaxGrepBytes
	search := func(e Entry) error {
		if e.Type != TypeFile || !match(rel(top.path, e.Path)) {
			return nil
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		n, err := w.file(op, e.Path, o)
		if err != nil {
			return nil // gone since the walk saw it
		}
		if n.size > w.opts.MaxFileSize {
			res.SkippedLarge++
			return nil
		}
		data, err := w.readAll(op, e.Path, n, w.opts.MaxFileSize)
		switch {
		case errors.Is(err, ErrTooLarge):
			res.SkippedLarge++
			return nil
		case err != nil:
			return nil
		case isBinary(data):
			res.SkippedBinary++
			return nil
		}
		res.Files++
		for lineNo := 1; len(data) > 0; lineNo++ {
			line := data
			if i := bytes.IndexByte(data, '\n'); i >= 0 {
				line, data = data[:i], data[i+1:]
			} else {
				data = nil
			}
			if lineNo%4096 == 0 {
				if err := ctx.Err(); err != nil {
					return err
				}
			}
			line = bytes.TrimSuffix(line, []byte{'\r'}) // a CRLF file's lines end where its LF one's do
			if !re.Match(line) {
				continue
			}
			text := string(trimPartialRune(line[:min(len(line), maxMatchText)]))
			if len(line) > maxMatchText {
				text += "..."
			}
			if len(res.Matches) == maxMatches || budget < len(e.Path)+len(text) {
				res.Truncated = true
				return errStop
			}
			budget -= len(e.Path) + len(text)
			res.Matches = append(res.Matches, Match{Path: e.Path, Line: lineNo, Text: text})
		}
		return nil
	}
	if !top.isDir() {
		if err := regular(op, opts.Path, top.mode); err != nil {
			return GrepResult{}, err
		}
		err = search(Entry{Path: top.path, Type: TypeFile, Size: top.size})
		if errors.Is(err, errStop) {
			err = nil
		}
	} else {
		err = w.walk(ctx, top.path, true, o, search)
	}
	if err != nil {
		return GrepResult{}, err
	}
	return res, nil
}
