#!/usr/bin/env bash
# The one-command LVS-DR lab demo (root, after tests/setup.sh): builds the workspace and walks
# through the story in network namespaces (see docs/demo.md).
#   tests/demo.sh                 run it; everything is torn down at the end (or on Ctrl-C)
#   tests/demo.sh --keep          leave the lab up to explore; prints how to tear it down
#   tests/demo.sh --teardown P    remove a lab left by --keep (P = its prefix, e.g. lvd12345)
set -euo pipefail
cd "$(dirname "$0")/.."
if [ "$(id -u)" != 0 ]; then
  echo "tests/demo.sh: the lab needs root (network namespaces)" >&2
  exit 1
fi
cargo build --workspace --quiet
exec target/debug/lvs-lab-demo "$@"
