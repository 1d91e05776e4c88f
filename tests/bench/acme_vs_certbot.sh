#!/usr/bin/env bash
# lvs-cert vs certbot --webroot: VIP + 12 nodes, one Pebble (PEBBLE_VA_NOSLEEP=1) in the
# namespace lab, alternating runs, median wall time. Needs root, pebble, certbot, openssl.
# Usage: tests/bench/acme_vs_certbot.sh [ROUNDS]   (default 3)
set -euo pipefail
cd "$(dirname "$0")/../.."
export BENCH_ROUNDS="${1:-3}"
cargo build --workspace --release
cargo test --release -p lvs-lab-tests --test certs_bench -- --ignored --nocapture 2>&1 |
  grep -E '^(round|RESULT)|panicked|test result'
