package llm

import (
	"fmt"
	"io"
)

// CapBody returns rc that fails a read past max bytes, for the body of a
// model server's answer: a runaway or hostile server cannot make Hive hold
// more, and the cut is an error, never a shorter answer that parses.
func CapBody(rc io.ReadCloser, max int64) io.ReadCloser {
	return &cappedBody{ReadCloser: rc, left: max, max: max}
}

type cappedBody struct {
	io.ReadCloser
	left, max int64
}

func (b *cappedBody) Read(p []byte) (int, error) {
	if b.left <= 0 {
		return 0, fmt.Errorf("the server's answer is longer than %d MiB", b.max>>20)
	}
	if int64(len(p)) > b.left {
		p = p[:b.left]
	}
	n, err := b.ReadCloser.Read(p)
	b.left -= int64(n)
	return n, err
}
