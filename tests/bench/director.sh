#!/usr/bin/env bash
# Benchmark: end-to-end failure detection on the REAL director (docs/benchmarks.md, section
# "Real director"). A qemu guest (TCG) runs IPVS and keepalived; one real server runs
# globus-gridftp-server and `lvs-node run`. For each checker the script kills (SIGKILL) or
# hangs (SIGSTOP) GridFTP and times how long the node takes to leave the IPVS table or get
# weight 0, polling a copy of /proc/net/ip_vs the guest writes on each change (read every
# 10 ms in the guest by lvs-lab-ipvs-watch). The seeds'
# TCP_CHECK settings are the baseline, measured in the same run; HAProxy agent-check runs in
# a namespace against the same node.
# Usage (root, workspace root): tests/bench/director.sh
#   RUNS=3          kills per checker
#   HUNG_BOUND=30   seconds to wait for a hung GridFTP to be noticed
#   PROFILE=release cargo profile of lvs-node and the bench (debug: no release build needed)
# Everything runs in namespaces and the guest; the host's network is not touched.
set -euo pipefail
cd "$(dirname "$0")/../.."
PROFILE=${PROFILE:-release}
if [ "$PROFILE" = release ]; then
  cargo build --release -q -p lvs-node -p lvs-lab-tests --bins
else
  cargo build -q -p lvs-node -p lvs-lab-tests --bins
fi
exec "target/$PROFILE/lvs-lab-director-bench"
