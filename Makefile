# The README's two commands are ./scripts/demo.sh and ./scripts/test.sh;
# these targets are shortcuts for them.
.PHONY: demo test build bench bench-cache bench-hedge bench-peers

build:
	go build -o bin/hive ./cmd/hive

demo:
	./scripts/demo.sh

test:
	./scripts/test.sh

bench:
	go test -run '^$$' -bench . -benchtime 3x ./...

# Prompt caching: a 100-worker wave over a 20k-token shared context on a
# server that caches as Anthropic does, with and without caching.
bench-cache:
	go test -run '^$$' -bench BenchmarkPromptCacheWave -benchtime 3x ./internal/swarm/

# Hedged requests: six waves of 100 workers on a heavy-tailed model,
# hedged at p95 and not.
bench-hedge:
	go test -run '^$$' -bench BenchmarkHedgedWaves -benchtime 3x ./internal/swarm/

# Hive beside a bare errgroup loop, Eino, LangChainGo and LangGraph.js on
# one fan-out job (bench/peers, a module of its own; needs node and npm,
# installs LangGraph.js with npm ci). About a quarter of an hour.
bench-peers:
	cd bench/peers && go run . -n 100,1000 -latency 50ms,1s -reps 5
