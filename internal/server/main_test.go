package server

import (
	"os"
	"testing"

	"github.com/hive-swarm/hive/internal/sandbox"
)

// TestMain lets the sandbox re-execute the test binary as its isolated
// child before any test runs.
func TestMain(m *testing.M) {
	sandbox.Init()
	os.Exit(m.Run())
}
