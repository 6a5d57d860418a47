package docmod

func Add(a, b int) int {
	return a + b
}

func Sub(a, b int) int {
	return a - b
}

// clamp keeps v within [lo, hi]; unexported, and documented already.
func clamp(v, lo, hi int) int {
	return max(lo, min(v, hi))
}

func Clamp01(v int) int {
	return clamp(v, 0, 1)
}
