//go:build !linux

package sandbox

import (
	"context"
	"runtime"
)

// Init does nothing off Linux.
func Init() {}

type cgroupParent struct{ dir string }

func findCgroup() (*cgroupParent, string) { return nil, "cgroups need Linux" }

func probe(ctx context.Context) error {
	return &UnavailableError{Cause: "the sandbox needs Linux namespaces, and this is " + runtime.GOOS,
		Fix: "run hive on Linux, or use --sandbox=none to run code without isolation"}
}

func (s *Sandbox) runProcess(ctx context.Context, spec Spec) (*Result, error) {
	return nil, &UnavailableError{Cause: "running processes needs Linux", Fix: "use JavaScript, or run hive on Linux"}
}
