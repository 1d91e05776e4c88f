#!/usr/bin/env bash
# Benchmark: BFD on the REAL director (docs/benchmarks.md, section "BFD"). A qemu guest (TCG)
# runs IPVS and keepalived; one real server runs globus-gridftp-server and `lvs-node run`
# with a 100 ms GridFTP check and `[bfd]` at 50 ms x 3. In one run: GridFTP killed until the
# node leaves rotation, for the config `director-config --pool --bfd` prints (BFD_CHECK
# beside HTTP_GET), HTTP_GET alone (delay_loop 1), MISC_CHECK and the seeds' TCP_CHECK (the
# baseline); the agent itself SIGKILLed (BFD config and HTTP_GET alone); then the idle cost of
# the 50 ms session (packets/s, agent CPU with and without).
# Usage (root, workspace root): tests/bench/bfd.sh
#   RUNS=3          kills per checker
#   IDLE_SECS=30    length of each idle measurement
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
exec "target/$PROFILE/lvs-lab-bfd-bench"
