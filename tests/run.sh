#!/usr/bin/env bash
# The full test suite: unit tests and the network-namespace LVS-DR lab tests (root).
# Lab tests fail, never skip, when they cannot build namespaces.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ "$(id -u)" != 0 ]; then
  echo "tests/run.sh: the lab tests need root (network namespaces)" >&2
  exit 1
fi
cargo build --workspace
cargo test --workspace --no-fail-fast
