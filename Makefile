# The README's two commands: `make demo` (Hive's main job) and `make test`.
.PHONY: demo test build bench

build:
	go build -o bin/hive ./cmd/hive

demo: build
	./bin/hive demo

test:
	./scripts/test.sh

bench:
	go test -run '^$$' -bench . -benchmem ./...
