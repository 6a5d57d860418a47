package treeview

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"time"

	"golang.org/x/term"

	"github.com/hive-swarm/hive/internal/swarm"
)

// Terminal reports whether w is a terminal and, if so, its size.
func Terminal(w io.Writer) (width, height int, ok bool) {
	f, isFile := w.(*os.File)
	if !isFile || !term.IsTerminal(int(f.Fd())) {
		return 0, 0, false
	}
	width, height, err := term.GetSize(int(f.Fd()))
	if err != nil {
		return 80, 24, true
	}
	return width, height, true
}

// Live redraws a tree in place on a terminal: each draw moves the cursor
// back over the previous drawing and clears it, so the tree must fit the
// screen (it is rendered with at most height-1 lines, each cut to the
// width). Nothing else should write to the terminal between draws.
type Live struct {
	w    io.Writer
	tree *Tree
	// Options are the rendering's; MaxLines and Width are set from Size at
	// each draw.
	Options Options
	// Interval is the least time between two draws. Default 100ms.
	Interval time.Duration
	// Size returns the terminal's size. Default: [Terminal] of w, else
	// 80×24.
	Size func() (width, height int)

	drawn int // lines on screen from the last draw
	buf   bytes.Buffer
}

// NewLive returns a live view of tree on w, in colour.
func NewLive(w io.Writer, tree *Tree) *Live {
	l := &Live{w: w, tree: tree, Options: Options{Color: true}, Interval: 100 * time.Millisecond}
	l.Size = func() (int, int) {
		if cw, ch, ok := Terminal(w); ok {
			return cw, ch
		}
		return 80, 24
	}
	return l
}

// Tree returns the tree drawn.
func (l *Live) Tree() *Tree { return l.tree }

// Draw replaces the previous drawing with the tree's current state.
func (l *Live) Draw() error {
	width, height := l.Size()
	o := l.Options
	o.Width = max(width-1, 20)
	o.MaxLines = max(height-1, 3)
	l.buf.Reset()
	l.eraseTo(&l.buf)
	n, _ := l.tree.Render(&l.buf, o)
	_, err := l.w.Write(l.buf.Bytes())
	l.drawn = n
	return err
}

// eraseTo writes the ANSI sequence that moves to the start of the last
// drawing and clears the screen below.
func (l *Live) eraseTo(b *bytes.Buffer) {
	if l.drawn > 0 {
		fmt.Fprintf(b, "\x1b[%dF\x1b[J", l.drawn)
	}
}

// Follow applies events to the tree until the channel closes or ctx ends,
// redrawing at most once per Interval, and once more at the end. each, when
// not nil, sees every event after it is applied.
func (l *Live) Follow(ctx context.Context, events <-chan swarm.Event, each func(swarm.Event)) error {
	interval := l.Interval
	if interval <= 0 {
		interval = 100 * time.Millisecond
	}
	tick := time.NewTicker(interval)
	defer tick.Stop()
	dirty := true
	for {
		select {
		case ev, ok := <-events:
			if !ok {
				return l.Draw()
			}
			if l.tree.Apply(ev) {
				dirty = true
			}
			if each != nil {
				each(ev)
			}
		case <-tick.C:
			if dirty {
				if err := l.Draw(); err != nil {
					return err
				}
				dirty = false
			}
		case <-ctx.Done():
			l.Draw()
			return ctx.Err()
		}
	}
}
