package swarm

import (
	"os"
	"testing"

	"github.com/hive-swarm/hive/internal/sandbox"
)

func TestMain(m *testing.M) {
	sandbox.Init()
	if os.Getenv(crashChildEnv) != "" {
		os.Exit(crashChild())
	}
	os.Exit(m.Run())
}
