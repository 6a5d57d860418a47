package docmod

// Rect is a rectangle, W wide and H high.
type Rect struct {
	W, H int
}

func (r Rect) Area() int {
	return r.W * r.H
}

func Square(n int) Rect {
	return Rect{W: n, H: n}
}
