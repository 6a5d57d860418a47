package server

import (
	"os"
	"testing"

	"github.com/hive-swarm/hive/internal/sandbox"
	"github.com/hive-swarm/hive/internal/verify"
)

// TestMain lets the sandbox re-execute the test binary as its isolated
// child before any test runs.
func TestMain(m *testing.M) {
	sandbox.Init(verify.Programs()...)
	os.Exit(m.Run())
}
