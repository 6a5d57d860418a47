//go:build !linux

package sandbox

import (
	"context"
	"runtime"
)

// Init registers programs; off Linux there is no sandbox to run them in.
func Init(programs ...Program) { register(programs) }

type cgroupParent struct{}

func (c *cgroupParent) mode() string { return "" }
func (c *cgroupParent) dir() string  { return "" }

func physicalMemory() int64 { return 1 << 30 }

func findCgroup() (*cgroupParent, string) { return nil, "cgroups need Linux" }

func probe(ctx context.Context) error {
	return &UnavailableError{Cause: "the sandbox needs Linux namespaces, and this is " + runtime.GOOS,
		Fix: "run hive on Linux, or use --sandbox=none to run code without isolation"}
}

type warmPool struct{}

// Close does nothing off Linux: no sandbox is kept started.
func (s *Sandbox) Close() error { return nil }

func (s *Sandbox) runProcess(ctx context.Context, spec Spec) (*Result, error) {
	return nil, &UnavailableError{Cause: "running processes needs Linux", Fix: "run hive on Linux"}
}
