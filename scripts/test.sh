#!/usr/bin/env bash
# Runs Hive's whole test suite, installing what the tests need when it is
# missing and this machine can install it (Debian/Ubuntu packages).
set -euo pipefail
cd "$(dirname "$0")/.."

need=()
command -v python3 >/dev/null 2>&1 || need+=(python3)
{ python3 -c 'import pytest' || /usr/bin/python3 -c 'import pytest'; } >/dev/null 2>&1 || need+=(python3-pytest) # the seccomp allow list is tested under pytest
command -v chromium >/dev/null 2>&1 || [ -x /usr/bin/chromium ] || need+=(chromium)
command -v npm >/dev/null 2>&1 || need+=(nodejs npm) # the official OpenAI Node SDK drives hive serve; MCP's reference server
command -v git >/dev/null 2>&1 || need+=(git)         # workspace patches are checked with git apply
if [ ${#need[@]} -gt 0 ]; then
  if command -v apt-get >/dev/null 2>&1; then
    sudo=""
    [ "$(id -u)" -eq 0 ] || sudo="sudo"
    echo "test.sh: installing ${need[*]}" >&2
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${need[@]}" >/dev/null
  else
    echo "test.sh: missing ${need[*]} and no apt-get here; the tests that need them will fail" >&2
  fi
fi

# The official OpenAI Node SDK, which TestOpenAINodeSDK drives hive serve with.
echo "test.sh: the OpenAI Node SDK (npm ci)" >&2
if ! npm ci --prefix internal/server/testdata/node-sdk --ignore-scripts --no-audit --no-fund --loglevel=error >/dev/null; then
  echo "test.sh: npm ci failed: the OpenAI Node SDK is needed by TestOpenAINodeSDK (is the npm registry reachable?)" >&2
  exit 1
fi

# MCP's reference server (@modelcontextprotocol/server-everything), which
# TestEverythingServer drives through Hive's MCP client.
echo "test.sh: the MCP reference server (npm ci)" >&2
if ! npm ci --prefix internal/mcp/testdata/servers --ignore-scripts --no-audit --no-fund --loglevel=error >/dev/null; then
  echo "test.sh: npm ci failed: @modelcontextprotocol/server-everything is needed by TestEverythingServer (is the npm registry reachable?)" >&2
  exit 1
fi

# The official MCP TypeScript SDK, which TestMCPTypeScriptSDK drives hive mcp and /mcp with.
echo "test.sh: the MCP TypeScript SDK (npm ci)" >&2
if ! npm ci --prefix cmd/hive/testdata/mcp-sdk --ignore-scripts --no-audit --no-fund --loglevel=error >/dev/null; then
  echo "test.sh: npm ci failed: @modelcontextprotocol/sdk is needed by TestMCPTypeScriptSDK (is the npm registry reachable?)" >&2
  exit 1
fi

echo "test.sh: gofmt and go vet" >&2
unformatted=$(gofmt -l $(git ls-files '*.go' 2>/dev/null || find . -name '*.go'))
if [ -n "$unformatted" ]; then
  echo "gofmt would change: $unformatted" >&2
  exit 1
fi
go vet ./...

echo "test.sh: go test -race" >&2
go test -race -count=1 -timeout 30m "$@" ./...
