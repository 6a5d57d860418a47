package limit

import (
	"log/slog"
	"sync"
)

// A Set holds one [Limiter] per model name for the whole process, so that
// every caller of a model shares its admission. It is safe for concurrent
// use.
type Set struct {
	log *slog.Logger

	mu sync.Mutex
	m  map[string]*Limiter // guarded by mu
}

// NewSet returns an empty set whose limiters log to log (nil discards).
func NewSet(log *slog.Logger) *Set {
	return &Set{log: log, m: make(map[string]*Limiter)}
}

// Get returns the limiter of the model called name, creating it with cfg on
// first use. Later calls return the same limiter and ignore cfg.
func (s *Set) Get(name string, cfg Config) *Limiter {
	s.mu.Lock()
	defer s.mu.Unlock()
	l, ok := s.m[name]
	if !ok {
		l = New(name, cfg, s.log)
		s.m[name] = l
	}
	return l
}

// All returns a snapshot of the limiters' stats by model name.
func (s *Set) All() map[string]Stats {
	s.mu.Lock()
	ls := make([]*Limiter, 0, len(s.m))
	for _, l := range s.m {
		ls = append(ls, l)
	}
	s.mu.Unlock()
	out := make(map[string]Stats, len(ls))
	for _, l := range ls {
		out[l.name] = l.Stats()
	}
	return out
}
