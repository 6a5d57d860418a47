//go:build !peers_solo || peers_hive

package main

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"

	"github.com/hive-swarm/hive/internal/config"
	"github.com/hive-swarm/hive/internal/journal"
	"github.com/hive-swarm/hive/internal/price"
	"github.com/hive-swarm/hive/internal/provider"
	"github.com/hive-swarm/hive/internal/swarm"
)

// Hive's own engine, as hive run sets it up: a fresh SQLite journal, the
// provider registry over a configuration naming two priced models on the
// server, the swarm engine. The job is one run: its lead delegates the
// tasks, each worker reads its file with the workspace's read_file and
// submits, and the lead finishes. Every call is reserved against the run's
// budget, admitted by the model's limiter, priced, and journaled with
// the nodes, events and conversations.

func init() { goImpls["hive"] = prepareHive }

func prepareHive(ctx context.Context, j job) (func(context.Context) (string, error), func(), error) {
	tmp, err := os.MkdirTemp("", "hive-peers-journal-")
	if err != nil {
		return nil, nil, err
	}
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	store, err := journal.Open(ctx, filepath.Join(tmp, "hive.db"), log)
	if err != nil {
		os.RemoveAll(tmp)
		return nil, nil, err
	}
	cfg := config.Default()
	f := func(v float64) *float64 { return &v }
	for name, id := range map[string]string{"lead": "hive-lead", "worker": "hive-worker"} {
		cfg.Models[name] = &config.Model{
			Name: name, Provider: "openai", ID: id, BaseURL: j.URL + "/v1",
			Price:  &config.Price{Input: f(1), Output: f(2)},
			Limits: config.Limits{Concurrency: j.Cap},
		}
	}
	reg := provider.NewRegistry(cfg, func(string) string { return "" }, log)
	e, err := swarm.New(ctx, store, reg, log, swarm.Options{})
	if err != nil {
		store.Close()
		os.RemoveAll(tmp)
		return nil, nil, err
	}
	closeAll := func() {
		e.Close(context.Background())
		store.Close()
		os.RemoveAll(tmp)
	}
	run := func(ctx context.Context) (string, error) {
		id, err := e.Start(ctx, swarm.Spec{
			Task:       leadTask(j.N),
			Lead:       "lead",
			Tiers:      []string{"worker"},
			BudgetUSD:  1_000_000 * price.Dollar, // never reached, but every call is reserved and settled
			MaxWorkers: j.Cap,
			MaxDepth:   1, // the job's workers do not delegate
			Workspace:  j.Dir,
		})
		if err != nil {
			return "", err
		}
		res, err := e.Wait(ctx, id)
		if err != nil {
			return "", err
		}
		if res.Status != swarm.StatusDone {
			return "", fmt.Errorf("run %s ended %s: %s", id, res.Status, res.Error)
		}
		return res.Answer, nil
	}
	return run, closeAll, nil
}
