package workspace

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync"
	"unicode/utf8"
)

// ReadResult is a range of lines of a text file.
type ReadResult struct {
	Path string `json:"path"`
	// Content holds lines StartLine to EndLine, each with its newline
	// (the file's last line may have none).
	Content   string `json:"content"`
	StartLine int    `json:"start_line"` // 1-based
	EndLine   int    `json:"end_line"`   // inclusive; StartLine-1 when no line was returned
	// TotalLines counts the lines of the whole file (a last line without a
	// newline counts).
	TotalLines int `json:"total_lines"`
	// Cut is true when the last line returned was longer than the bytes
	// a Read returns, and only its beginning is in Content.
	Cut bool `json:"cut,omitempty"`
}

// String renders r for a model: a header with the range and the total,
// the lines, and where to read on when there is more.
func (r ReadResult) String() string {
	var b strings.Builder
	switch {
	case r.TotalLines == 0:
		fmt.Fprintf(&b, "%s: empty file\n", r.Path)
		return b.String()
	case r.EndLine < r.StartLine:
		fmt.Fprintf(&b, "%s: no lines from %d (of %d)\n", r.Path, r.StartLine, r.TotalLines)
		return b.String()
	}
	fmt.Fprintf(&b, "%s: lines %d-%d of %d\n", r.Path, r.StartLine, r.EndLine, r.TotalLines)
	b.WriteString(r.Content)
	if !strings.HasSuffix(r.Content, "\n") {
		b.WriteString("\n")
	}
	if r.Cut {
		fmt.Fprintf(&b, "(line %d is cut: it is too long to show whole)\n", r.EndLine)
	}
	if r.EndLine < r.TotalLines {
		fmt.Fprintf(&b, "(%s more; read on from line %d)\n", plural(r.TotalLines-r.EndLine, "line", "lines"), r.EndLine+1)
	}
	return b.String()
}

// readers keeps the 64 KiB readers of Read: a swarm's workers read many
// small files, and a fresh reader each time was a tenth of a worker's CPU.
var readers = sync.Pool{New: func() any { return bufio.NewReaderSize(nil, 64<<10) }}

// Read returns lines startLine to endLine (1-based, inclusive) of the text
// file at path. startLine 0 means 1; endLine 0 means as many as the bounds
// allow. At most [Options.MaxReadLines] lines and [Options.MaxReadBytes]
// bytes are returned: the result says where it stopped and how many lines
// the file has. A file with a NUL byte in its first 8 KiB is binary and
// refused with ErrBinary.
func (w *Workspace) Read(ctx context.Context, path string, startLine, endLine int) (ReadResult, error) {
	return w.read(ctx, path, startLine, endLine, nil)
}

func (w *Workspace) read(ctx context.Context, p string, start, end int, o *Overlay) (ReadResult, error) {
	const op = "read"
	switch {
	case start < 0 || end < 0:
		return ReadResult{}, pathErr(op, p, errors.New("negative line number"), "lines are numbered from 1")
	case end != 0 && end < max(start, 1):
		return ReadResult{}, pathErr(op, p, errors.New("end_line before start_line"), "give end_line >= start_line, or 0 to read as far as the bounds allow")
	}
	start = max(start, 1)
	n, err := w.file(op, p, o)
	if err != nil {
		return ReadResult{}, err
	}
	r, err := w.open(op, p, n)
	if err != nil {
		return ReadResult{}, err
	}
	defer r.Close()
	br := readers.Get().(*bufio.Reader)
	br.Reset(r)
	defer func() { br.Reset(nil); readers.Put(br) }()
	if head, _ := br.Peek(sniffLen); isBinary(head) {
		return ReadResult{}, pathErr(op, p, ErrBinary, "it has a NUL byte in its first 8 KiB, so it is not text; Grep skips it too")
	}
	last := start + w.opts.MaxReadLines - 1
	if end != 0 && end < last {
		last = end
	}
	res := ReadResult{Path: n.path, StartLine: start, EndLine: start - 1}
	var content strings.Builder
	budget := w.opts.MaxReadBytes
	var line []byte // the line being read, up to budget+1 bytes
	stopped := false
	lineNo := 0
	atStart := true
	for chunks := 1; ; chunks++ {
		if chunks%4096 == 0 {
			if err := ctx.Err(); err != nil {
				return ReadResult{}, err
			}
		}
		chunk, err := br.ReadSlice('\n')
		if len(chunk) > 0 {
			if atStart {
				lineNo++
				line = line[:0]
			}
			inRange := !stopped && lineNo >= start && lineNo <= last
			if inRange && len(line) <= budget {
				line = append(line, chunk[:min(len(chunk), budget+1-len(line))]...)
			}
			atStart = chunk[len(chunk)-1] == '\n'
			if atStart && inRange {
				stopped = w.take(&res, &content, &budget, line, lineNo)
			}
		}
		if err == bufio.ErrBufferFull {
			continue
		}
		if err == io.EOF {
			if !atStart && !stopped && lineNo >= start && lineNo <= last {
				w.take(&res, &content, &budget, line, lineNo)
			}
			break
		}
		if err != nil {
			return ReadResult{}, pathErr(op, p, err, "")
		}
	}
	res.TotalLines = lineNo
	res.Content = content.String()
	if start > lineNo && lineNo > 0 {
		return ReadResult{}, pathErr(op, p, errors.New("start_line past the end"), "the file has %s", plural(lineNo, "line", "lines"))
	}
	return res, nil
}

// take adds the line numbered lineNo to a read's result if it fits in
// the budget, or its beginning if it is the first line and does not fit.
// It reports whether the read should stop.
func (w *Workspace) take(res *ReadResult, content *strings.Builder, budget *int, line []byte, lineNo int) bool {
	if len(line) <= *budget {
		content.Write(line)
		*budget -= len(line)
		res.EndLine = lineNo
		return false
	}
	if content.Len() == 0 {
		content.Write(trimPartialRune(line[:*budget]))
		res.EndLine = lineNo
		res.Cut = true
	}
	return true
}

// trimPartialRune drops an incomplete UTF-8 sequence at the end of b.
func trimPartialRune(b []byte) []byte {
	for i := 1; i <= utf8.UTFMax && i <= len(b); i++ {
		if utf8.RuneStart(b[len(b)-i]) {
			if r, _ := utf8.DecodeRune(b[len(b)-i:]); r == utf8.RuneError && !utf8.FullRune(b[len(b)-i:]) {
				return b[:len(b)-i]
			}
			break
		}
	}
	return b
}
