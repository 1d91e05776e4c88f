#!/usr/bin/env bash
# Benchmark: director failover (docs/benchmarks.md, section "Director failover"). Each round
# runs the lab test tests/tests/director_failover.rs once: two qemu guests (TCG) run IPVS
# and the keepalived configs `director-config --director A --director B --for ...` prints,
# two nodes run `lvs-node run` with BFD to both, a GridFTP transfer and an HTTP download run
# through the VIP, and the master's qemu is SIGKILLed. Every round also checks what the
# test checks (transfers byte for byte, synced connections, ARP, drain); a round that fails
# is reported and counted, not measured.
# Measured per round, from the kill (host clock):
#   first_byte_s  the first byte of a NEW connection through the backup (a client opens
#                 one to VIP:8000 every 50 ms);
#   b_master_s    the host seeing "Entering MASTER STATE" in B's keepalived log;
# and, in the same round, the baseline:
#   baseline_gap_s the largest gap between successive first bytes of the same client loop
#                 through A in the 10 s before the kill (no failover);
#   vrrp_down_interval_s  B's computed Master_Down_Interval (3 x advert_int + skew).
# Usage (root, workspace root): tests/bench/failover.sh
#   ROUNDS=5        rounds (each boots two guests: about a minute)
#   PROFILE=debug   cargo profile of lvs-node and the test (release: --release build)
# Everything runs in namespaces and the guests; the host's network is not touched.
set -euo pipefail
cd "$(dirname "$0")/../.."
ROUNDS=${ROUNDS:-5}
PROFILE=${PROFILE:-debug}
if [ "$(id -u)" != 0 ]; then
  echo "tests/bench/failover.sh: needs root (namespaces, qemu on the lab bridge)" >&2
  exit 1
fi
case "$PROFILE" in
  debug) rel=() ;;
  release) rel=(--release) ;;
  *) echo "tests/bench/failover.sh: PROFILE must be debug or release, not '$PROFILE'" >&2; exit 2 ;;
esac
case "$ROUNDS" in
  '' | *[!0-9]* | 0) echo "tests/bench/failover.sh: ROUNDS must be a positive integer, not '$ROUNDS'" >&2; exit 2 ;;
esac
cargo build -q "${rel[@]}" -p lvs-node --features lvs-node/fault-injection
cargo test -q "${rel[@]}" -p lvs-lab-tests --features lvs-node/fault-injection \
  --test director_failover --no-run
out=$(mktemp -d /tmp/lvs-failover-bench.XXXXXX)
trap 'rm -rf "$out"' EXIT
echo "failover bench: $ROUNDS round(s), $PROFILE build, load $(cut -d' ' -f1-3 /proc/loadavg)"
failed=0
for i in $(seq 1 "$ROUNDS"); do
  if cargo test -q "${rel[@]}" -p lvs-lab-tests --features lvs-node/fault-injection \
    --test director_failover -- --nocapture >"$out/round$i.log" 2>&1; then
    line=$(grep -m1 '^FAILOVER ' "$out/round$i.log" || true)
    echo "round $i: ${line#FAILOVER }"
    echo "$line" >>"$out/figures"
  else
    failed=$((failed + 1))
    echo "round $i: FAILED (the test's assertion, last lines below)"
    grep -A3 'panicked' "$out/round$i.log" | head -8 | sed 's/^/    /'
  fi
done
if [ -s "$out/figures" ]; then
  python3 - "$out/figures" <<'EOF'
import statistics, sys
rows = [dict(kv.split('=') for kv in l.split()[1:]) for l in open(sys.argv[1]) if l.strip()]
print(f"{len(rows)} measured round(s)")
for k, what in [("first_byte_s", "kill -> first byte of a new connection through B"),
                ("b_master_s", "kill -> B logs MASTER (host polling)"),
                ("baseline_gap_s", "baseline: largest gap between first bytes through A, no kill"),
                ("vrrp_down_interval_s", "computed: B's VRRP Master_Down_Interval")]:
    v = sorted(float(r[k]) for r in rows)
    print(f"  {what}: min {v[0]:.2f} s, median {statistics.median(v):.2f} s, max {v[-1]:.2f} s")
EOF
fi
echo "load after: $(cut -d' ' -f1-3 /proc/loadavg)"
[ "$failed" = 0 ] || { echo "$failed round(s) failed"; exit 1; }
