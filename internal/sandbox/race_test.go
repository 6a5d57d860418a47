//go:build race

package sandbox

// raceEnabled: the race detector's shadow memory multiplies what a Go
// child uses, so tests that expect a Go program to fit give it more.
const raceEnabled = true
