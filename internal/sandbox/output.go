package sandbox

import (
	"bytes"
	"sync"
)

// capped keeps the first max bytes written to it and counts the rest. When
// the total first passes max it calls over once (to stop the program), so
// a program that writes a gigabyte costs the host max bytes of memory.
type capped struct {
	mu    sync.Mutex // guards the fields below
	buf   []byte
	max   int
	total int64
	over  func()
	fired bool
}

func newCapped(max int, over func()) *capped { return &capped{max: max, over: over} }

func (c *capped) Write(p []byte) (int, error) {
	c.mu.Lock()
	c.total += int64(len(p))
	if room := c.max - len(c.buf); room > 0 {
		c.buf = append(c.buf, p[:min(room, len(p))]...)
	}
	fire := c.total > int64(c.max) && !c.fired && c.over != nil
	if fire {
		c.fired = true
	}
	c.mu.Unlock()
	if fire {
		c.over()
	}
	return len(p), nil
}

// result returns the kept bytes and whether some were dropped.
func (c *capped) result() ([]byte, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := c.buf
	if out == nil {
		out = []byte{}
	}
	return out, c.total > int64(c.max)
}

// lastLines returns the last n lines of b.
func lastLines(b []byte, n int) []byte {
	b = bytes.TrimRight(b, "\n")
	for i := len(b) - 1; i >= 0; i-- {
		if b[i] == '\n' {
			if n--; n == 0 {
				return b[i+1:]
			}
		}
	}
	return b
}
