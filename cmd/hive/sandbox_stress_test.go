package main

import (
	"context"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/hive-swarm/hive/internal/sandbox"
)

// Many sandboxes at once, started from a binary as big as hive: the
// sandbox's last stage, a copy of this binary, must not crash between
// limiting its address space and becoming the interpreter (its garbage
// collector once did, in about 1 run in 150).
func TestSandboxStagesUnderLoad(t *testing.T) {
	if testing.Short() {
		t.Skip("starts 400 sandboxes")
	}
	sb, err := sandbox.New(context.Background(), sandbox.Config{}, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sb.Close() })
	var wg sync.WaitGroup
	var mu sync.Mutex
	sem := make(chan struct{}, 24)
	crashed := 0
	for range 400 {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			res, err := sb.Run(context.Background(), sandbox.Spec{Lang: sandbox.Python,
				Source: "assert sum(x * x for x in range(1000)) == 332833500\n", Limits: sandbox.Limits{Wall: 2 * time.Minute}})
			if err != nil {
				t.Error(err)
				return
			}
			if !res.OK() {
				mu.Lock()
				if crashed++; crashed == 1 {
					t.Errorf("a run ended %s, exit %d:\n%.600s", res.Reason, res.ExitCode, res.Stderr)
				}
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	if crashed > 0 {
		t.Errorf("%d of 400 runs failed", crashed)
	}
}
