#!/usr/bin/env bash
# The full test suite: unit tests and the network-namespace LVS-DR lab tests (root).
# Lab tests fail, never skip, when they cannot build namespaces.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ "$(id -u)" != 0 ]; then
  echo "tests/run.sh: the lab tests need root (network namespaces)" >&2
  exit 1
fi
# The lab's rollback and crash tests inject faults through the `fault-injection` feature;
# release builds and the packages are built without it.
cargo build --workspace --features lvs-node/fault-injection
# The static binaries the packages ship (portable.rs, packaging.rs test them), with the
# release build's flags in the dev profile.
packaging/build-static.sh --profile debug >/dev/null
cargo test --workspace --no-fail-fast --features lvs-node/fault-injection
