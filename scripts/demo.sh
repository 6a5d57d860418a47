#!/usr/bin/env bash
# Runs Hive's main job, the offline demo, installing what it needs when it
# is missing and this machine can install it (Debian/Ubuntu packages).
set -euo pipefail
cd "$(dirname "$0")/.."

if ! command -v python3 >/dev/null 2>&1; then
  if command -v apt-get >/dev/null 2>&1; then
    sudo=""
    [ "$(id -u)" -eq 0 ] || sudo="sudo"
    echo "demo.sh: installing python3 (the sandbox runs the models' Python code)" >&2
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq python3 >/dev/null
  else
    echo "demo.sh: python3 is missing and there is no apt-get here; install python3 and run again" >&2
    exit 1
  fi
fi

mkdir -p bin
go build -o bin/hive ./cmd/hive
if ! ./bin/hive data path >/dev/null 2>&1; then
  echo "demo.sh: fetching the benchmark data (pinned upstream commits, checked by sha256)" >&2
  ./bin/hive data fetch
fi
exec ./bin/hive demo "$@"
