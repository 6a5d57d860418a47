# The README's two commands are ./scripts/demo.sh and ./scripts/test.sh;
# these targets are shortcuts for them.
.PHONY: demo test build bench

build:
	go build -o bin/hive ./cmd/hive

demo:
	./scripts/demo.sh

test:
	./scripts/test.sh

bench:
	go test -run '^$$' -bench . -benchtime 3x ./...
