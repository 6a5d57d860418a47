package eval

import (
	"context"
	"crypto/sha256"
	"log/slog"
	"os"
	"testing"

	"github.com/hive-swarm/hive/internal/sandbox"
	"github.com/hive-swarm/hive/internal/verify"
)

func TestMain(m *testing.M) {
	sandbox.Init(verify.Programs()...)
	os.Exit(m.Run())
}

// The batch driver judges each program on its own: passing, failing,
// hanging past its limit, and one that kills the driver itself (the rest
// of its batch is then judged one sandbox each).
func TestHiddenBatch(t *testing.T) {
	log := slog.New(slog.DiscardHandler)
	sb, err := sandbox.New(context.Background(), sandbox.Config{}, log)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sb.Close() })
	ev := &Evaluator{Sandbox: sb, Log: log}
	progs := map[string]bool{
		"assert 1 + 1 == 2\n":                        true,
		"assert 1 + 1 == 3\n":                        false,
		"import sys\nsys.exit(0)\n":                  true,
		"import sys\nsys.exit(2)\n":                  false,
		"while True:\n    pass\n":                    false,
		"def f(:\n":                                  false,
		"import os\nos.kill(os.getppid(), 9)\n":      false,
		"print('x' * 10_000_000)\nassert True\n":     true,
		"import time\ntime.sleep(0.2)\nassert 2>1\n": true,
	}
	var list []string
	for p := range progs {
		list = append(list, p)
	}
	if err := ev.prefetchHidden(context.Background(), list); err != nil {
		t.Fatal(err)
	}
	for p, want := range progs {
		v, ok := ev.hidden.Load(sha256.Sum256([]byte(p)))
		if !ok || v.(bool) != want {
			t.Errorf("%q: got %v (judged %v), want %v", p, v, ok, want)
		}
	}
}
