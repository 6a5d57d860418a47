package swarm

import (
	"os"
	"testing"

	"github.com/hive-swarm/hive/internal/sandbox"
	"github.com/hive-swarm/hive/internal/verify"
)

func TestMain(m *testing.M) {
	sandbox.Init(verify.Programs()...)
	if os.Getenv(crashChildEnv) != "" {
		os.Exit(crashChild())
	}
	if os.Getenv(benchServerEnv) != "" {
		os.Exit(benchServerChild())
	}
	os.Exit(m.Run())
}
