#!/usr/bin/env bash
# Benchmarks for `lvs-node run` (docs/benchmarks.md, section "lvs-node run").
# Run as root from the workspace root:  tests/bench/daemon.sh
#   LVS_NODE=path   binary to measure (default: target/release/lvs-node, built if missing)
#   DURATION=10     seconds of wrk load
#   CONNS=50        wrk connections
#   CHECK_INTERVAL=500ms  the gridftp check's interval (60s: GridFTP's forks out of the way)
# Everything runs in a private network namespace; the host's network is not touched.
set -euo pipefail
cd "$(dirname "$0")/../.."
BIN=${LVS_NODE:-target/release/lvs-node}
DURATION=${DURATION:-10}
CONNS=${CONNS:-50}
CHECK_INTERVAL=${CHECK_INTERVAL:-500ms}
if [ ! -x "$BIN" ]; then cargo build --release -p lvs-node; fi
NS=lvbench$$
WORK=$(mktemp -d /tmp/lvbench.XXXXXX)
PIDS=()
cleanup() {
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
  sleep 0.2
  ip netns del "$NS" 2>/dev/null || true
  rm -rf "/etc/netns/$NS" "$WORK"
}
trap cleanup EXIT
ip netns add "$NS"
X() { ip netns exec "$NS" "$@"; }
X ip link set lo up
X ip addr add 10.0.0.11/32 dev lo          # stands in for the real IP
mkdir -p "/etc/netns/$NS"
printf '127.0.0.1 localhost\n10.0.0.11 rs.bench\n' > "/etc/netns/$NS/hosts"

start_gridftp() {
  ip netns exec "$NS" unshare -u sh -c 'hostname rs.bench && exec globus-gridftp-server -aa -anonymous-user nobody -p 2811 -d error -l /dev/null -data-interface 10.0.0.11' >/dev/null 2>&1 &
  GPID=$!
  PIDS+=("$GPID")
  for _ in $(seq 100); do X ss -Hltn 'sport = :2811' | grep -q LISTEN && return; sleep 0.05; done
  echo "gridftp did not start" >&2; exit 1
}

cat > "$WORK/node.toml" <<TOML
interface = "lo"
real_ip = "10.0.0.11"
state_dir = "$WORK/state"
[[vip]]
address = "192.0.2.100"
ports = [2811]
[daemon]
manage_dataplane = ${MANAGE:-true}
control_socket = "$WORK/control.sock"
recheck_interval = "1s"
[[check]]
name = "gridftp"
kind = "gridftp"
interval = "$CHECK_INTERVAL"
timeout = "300ms"
rise = 2
fall = 1
[report]
http = "10.0.0.11:8080"
agent_check = "10.0.0.11:8081"
# wrk opens every connection from one address: above the default cap of 16 per source the
# agent would close the rest at once (a flood guard, docs/daemon.md), which is not the
# throughput this measures.
max_per_source = $((CONNS > 16 ? CONNS : 16))
TOML

start_gridftp
# The agent on CPU 0, the load generator on CPU 1.
ip netns exec "$NS" taskset -c 0 "$BIN" -c "$WORK/node.toml" run 2>"$WORK/agent.log" &
APID=$!
PIDS+=("$APID")
for _ in $(seq 200); do X curl -sf -o /dev/null http://10.0.0.11:8080/health && break; sleep 0.05; done
if ! X curl -sf -o /dev/null http://10.0.0.11:8080/health; then
  echo "error: the agent did not report up (200 on /health) within 10 s; its log:" >&2
  cat "$WORK/agent.log" >&2
  exit 1
fi
if ! X ip -o addr show dev lo | grep -q '192.0.2.100/32'; then
  echo "error: the agent did not put the VIP on lo (manage_dataplane = ${MANAGE:-true}); its log:" >&2
  cat "$WORK/agent.log" >&2
  exit 1
fi
echo "== lvs-node run benchmarks ($(date -u +%F), $(nproc) cores, $("$BIN" --version))"
echo "health: $(X curl -s http://10.0.0.11:8080/health)"

# wrk on CPU 1 against URL; prints the summary lines and fails loudly when wrk fails or
# reports no throughput.
run_wrk() {
  if ! X taskset -c 1 wrk -t1 -c"$CONNS" -d"${DURATION}s" --latency "$1" >"$WORK/wrk.txt" 2>&1; then
    echo "error: wrk against $1 failed:" >&2; cat "$WORK/wrk.txt" >&2; exit 1
  fi
  if ! grep -q "Requests/sec" "$WORK/wrk.txt"; then
    echo "error: wrk against $1 printed no Requests/sec:" >&2; cat "$WORK/wrk.txt" >&2; exit 1
  fi
  grep -E "Requests/sec|50%|75%|90%|99%|Non-2xx|Socket errors" "$WORK/wrk.txt"
  if grep -qE "Non-2xx|Socket errors" "$WORK/wrk.txt"; then
    echo "error: wrk against $1 saw errors or non-2xx answers (above): no throughput figure" >&2; exit 1
  fi
}

echo "-- /health throughput (wrk, 1 thread, $CONNS connections, ${DURATION}s; agent pinned to one core)"
run_wrk http://10.0.0.11:8080/health

# Baseline in the same run: HAProxy's built-in `monitor-uri` on the same core, same wrk load.
cat > "$WORK/haproxy.cfg" <<HCFG
global
    nbthread 1
defaults
    mode http
    timeout client 5s
    timeout server 5s
    timeout connect 1s
frontend health
    bind 10.0.0.11:8099
    monitor-uri /health
HCFG
X taskset -c 0 haproxy -f "$WORK/haproxy.cfg" -D -p "$WORK/haproxy.pid"
sleep 0.3
PIDS+=("$(cat "$WORK/haproxy.pid")")
echo "-- baseline: HAProxy 'monitor-uri /health' on the same core, same wrk load"
run_wrk http://10.0.0.11:8099/health

rss_kb=$(awk '/VmRSS/{print $2}' /proc/$APID/status)
hwm_kb=$(awk '/VmHWM/{print $2}' /proc/$APID/status)
echo "-- memory: RSS $((rss_kb / 1024)) MiB now, peak $((hwm_kb / 1024)) MiB (after the wrk run)"

ticks() { awk '{print $14 + $15}' /proc/$APID/stat; }
hz=$(getconf CLK_TCK)
t0=$(ticks); sleep 20; t1=$(ticks)
echo "-- idle CPU (gridftp check every $CHECK_INTERVAL, data plane recheck 1s): $(awk -v d=$((t1 - t0)) -v hz="$hz" 'BEGIN{printf "%.2f%% of one core", d * 100 / hz / 20}')"

# Baseline in the same run, on the same kills: keepalived's TCP_CHECK schedule with the OSG
# seed's settings (a connect every delay_loop = 10 s, connect_timeout 3 s; down on the first
# failure, so the real checker, which also retries, can only be slower). keepalived's checkers
# need IPVS, which this kernel lacks, so a shell loop in the namespace replays the schedule;
# tests/bench/director.sh measures the real TCP_CHECK on the real director.
cat > "$WORK/tcpcheck.sh" <<'SH'
trap 'exit 0' TERM
while :; do
  if timeout 3 bash -c 'exec 3<>/dev/tcp/127.0.0.1/2811' 2>/dev/null; then
    rm -f "$1/tcpcheck.down"
  elif [ ! -e "$1/tcpcheck.down" ]; then
    date +%s%N > "$1/tcpcheck.down.tmp" && mv "$1/tcpcheck.down.tmp" "$1/tcpcheck.down"
  fi
  sleep 10 & wait $!
done
SH
# Not through X: a function run with & is a subshell, and $! would be the subshell's PID,
# not the loop's (which then outlived the run).
ip netns exec "$NS" bash "$WORK/tcpcheck.sh" "$WORK" &
PIDS+=("$!")
# The loop's phase is independent of the kills: each kill waits a random 0-10 s.

echo "-- failure detection: kill gridftp, poll /health every 10ms until 503 (5 runs); baseline: the TCP_CHECK schedule above, same kills"
det=()
base=()
for i in 1 2 3 4 5; do
  sleep "$((RANDOM % 10)).$((RANDOM % 10))"
  kill "$GPID"; wait "$GPID" 2>/dev/null || true
  s=$(date +%s%N)
  while [ "$(X curl -s -o /dev/null -w '%{http_code}' http://10.0.0.11:8080/health)" != 503 ]; do sleep 0.01; done
  e=$(date +%s%N)
  det+=($(( (e - s) / 1000000 )))
  for _ in $(seq 1500); do [ -e "$WORK/tcpcheck.down" ] && break; sleep 0.01; done
  if [ ! -e "$WORK/tcpcheck.down" ]; then echo "error: the TCP_CHECK loop never saw the kill" >&2; exit 1; fi
  base+=($(( ($(cat "$WORK/tcpcheck.down") - s) / 1000000 )))
  start_gridftp
  while [ "$(X curl -s -o /dev/null -w '%{http_code}' http://10.0.0.11:8080/health)" != 200 ]; do sleep 0.05; done
  for _ in $(seq 1500); do [ ! -e "$WORK/tcpcheck.down" ] && break; sleep 0.01; done
  if [ -e "$WORK/tcpcheck.down" ]; then echo "error: the TCP_CHECK loop never saw GridFTP back" >&2; exit 1; fi
done
stats() { printf '%s\n' "$@" | sort -n | awk '{a[NR]=$1; t+=$1} END{printf "min %d ms, mean %d ms, max %d ms (%d runs)", a[1], t/NR, a[NR], NR}'; }
echo "   lvs-node (refused, process dead): ${det[*]} ms: $(stats "${det[@]}")"
echo "   baseline TCP_CHECK schedule (delay_loop 10, connect_timeout 3): ${base[*]} ms: $(stats "${base[@]}")"
mean() { printf '%s\n' "$@" | awk '{t+=$1} END{print t/NR}'; }
maxv() { printf '%s\n' "$@" | sort -n | tail -1; }
echo "   ratio: $(awk -v a="$(mean "${base[@]}")" -v b="$(mean "${det[@]}")" 'BEGIN{printf "%.1f", a/b}')x on the mean, $(awk -v a="$(maxv "${base[@]}")" -v b="$(maxv "${det[@]}")" 'BEGIN{printf "%.1f", a/b}')x on the worst case"
echo "-- failure detection: SIGSTOP gridftp (accepts TCP, never answers; TCP_CHECK cannot see this)"
hang=()
for i in 1 2 3; do
  sleep 0.$((RANDOM % 5))
  kill -STOP "$GPID"
  s=$(date +%s%N)
  while [ "$(X curl -s -o /dev/null -w '%{http_code}' http://10.0.0.11:8080/health)" != 503 ]; do sleep 0.01; done
  e=$(date +%s%N)
  hang+=($(( (e - s) / 1000000 )))
  kill -CONT "$GPID"
  while [ "$(X curl -s -o /dev/null -w '%{http_code}' http://10.0.0.11:8080/health)" != 200 ]; do sleep 0.05; done
done
echo "   hung: ${hang[*]} ms: $(stats "${hang[@]}")"
if [ -e "$WORK/tcpcheck.down" ]; then
  echo "   baseline TCP_CHECK schedule: saw the hung server as down (unexpected)"
else
  echo "   baseline TCP_CHECK schedule: never saw the hung server (the kernel completes the handshake)"
fi

echo "-- drift repair: ip addr del of the VIP, time until it is back (20 runs)"
if grep -q 'manage_dataplane = true' "$WORK/node.toml" && X ip -o addr show dev lo | grep -q 192.0.2.100 && ! grep -q "cannot converge" "$WORK/agent.log"; then
  cat > "$WORK/drift.sh" <<'SH'
for i in $(seq 1 20); do
  t0=$(date +%s%N); ip addr del 192.0.2.100/32 dev lo
  while ! ip -o addr show dev lo | grep -q '192.0.2.100/32'; do :; done
  t1=$(date +%s%N); echo $(( (t1 - t0) / 1000 )); sleep 0.2
done
SH
  X sh "$WORK/drift.sh" | sort -n > "$WORK/drift.txt"
  awk '{a[NR]=$1} END{printf "   median %.1f ms, min %.1f ms, max %.1f ms (wall clock, includes ip(8) polling)\n", a[int((NR+1)/2)]/1000, a[1]/1000, a[NR]/1000}' "$WORK/drift.txt"
  X curl -s http://10.0.0.11:8080/metrics | grep -E '^lvs_realserver_repairs_total'
else
  echo "error: drift repair cannot be measured: manage_dataplane is off, the VIP is not on lo or the agent cannot converge" >&2
  cat "$WORK/agent.log" >&2
  exit 1
fi
