#!/usr/bin/env bash
# Benchmark: a site's pool at 2, 12 and 50 nodes, side by side (docs/benchmarks.md, section
# "Site scale"). Every node is an `lvs-node run` (release build) in a namespace of its own,
# on one bridge, with 4 VIPs (2 IPv4, 2 IPv6) managed by the agent, `[pool]` listing every
# node (default interval: 2 s, or 100 ms per node when longer, so 5 s at 50), and
# BFD (default 50 ms x 3) to two directors. The directors
# are BFD peers only: keepalived processes with nothing but one `bfd_instance` per node, in
# two namespaces (keepalived's IPVS part cannot run in this kernel, and BFD needs none).
# Measured at each size, one size after the other with the same lab:
#   at rest     per-node CPU (utime+stime from /proc/PID/stat over WINDOW seconds, % of one
#               core), RSS (VmRSS at the end of the window), pool polling traffic (bytes/s
#               per node, sent + received, on TCP port 8080: nft counters in the node's
#               namespace; nothing else talks to port 8080 during the window);
#   commands    `director-config --pool URL... --bfd --bfd-source D1` (every node, from a
#               director's namespace)
#               and `pool status` (on the first node, its `[pool] peers`): wall time,
#               median and max of TIMES runs;
#   /pool       render time (curl's time_total, median and max of TIMES, from a director's
#               namespace) and page size, with the history the run has (default intervals);
#   full hour   the same /pool figures with a full hour of history: the first node is
#               restarted with a build that has the lab's `fault-injection` feature and
#               `LVS_NODE_HISTORY_STEP_MS=0` (a sample every poll round instead of every
#               5 s), polling every 200 ms, until every node's ring holds the 720 samples a
#               full hour holds (each graph then draws its 240 points). The samples are as
#               many as an hour's; they are 200 ms apart, not 5 s (the graphs say "-3 min").
# The kernel's neighbour table is shared by every namespace (gc_thresh3 = 1024 entries by
# default) and a 50-node mesh needs about 2,500: the run raises net.ipv4/ipv6
# .neigh.default.gc_thresh2/3 and restores them on exit, also on failure.
#
# Usage (root, workspace root):  tests/bench/scale.sh
#   SIZES="2 12 50"   pool sizes, one after the other     WINDOW=60   seconds at rest
#   TIMES=5           runs of each timed command          FILL=1      the full-hour phase (0: skip)
#   SETTLE=10         seconds after every session is Up before the window
#   LVS_NODE=path     binary to measure instead of the release build (a debug build is no figure)
#   LVS_NODE_FI=path  the fault-injection build for the full-hour phase (else built here)
# Goals at 50 nodes: <= 1 % of a core and <= 20 MiB per node at rest, /pool <= 1 MB and
# <= 100 ms with a full hour of history, `director-config --pool` <= 1 s.
# Exit: 0 every goal met; 3 a goal missed (the verdicts say which); 1 the lab, a tool or a
# node failed. Everything runs in namespaces it creates; the host's network is not touched
# (only the neighbour-table sysctls above, restored on exit).
set -euo pipefail
cd "$(dirname "$0")/../.."
SIZES=${SIZES:-"2 12 50"}
WINDOW=${WINDOW:-60}
TIMES=${TIMES:-5}
FILL=${FILL:-1}
SETTLE=${SETTLE:-10}
MAXN=0
for n in $SIZES; do
  [[ "$n" =~ ^[0-9]+$ ]] && [ "$n" -ge 2 ] && [ "$n" -le 200 ] || { echo "scale.sh: SIZES: '$n' is not a pool size (2..200)" >&2; exit 1; }
  [ "$n" -gt "$MAXN" ] && MAXN=$n
done
die() { echo "scale.sh: $*" >&2; exit 1; }
[ "$(id -u)" = 0 ] || die "run as root (it builds network namespaces)"
for t in ip nft keepalived curl sysctl awk sort getconf; do
  command -v "$t" >/dev/null || die "$t is missing (tests/setup.sh installs it)"
done
export CARGO_INCREMENTAL=0
if [ -n "${LVS_NODE_FI:-}" ]; then
  FIBIN=$(realpath "$LVS_NODE_FI")
  [ -x "$FIBIN" ] || die "LVS_NODE_FI=$LVS_NODE_FI is not an executable"
elif [ "$FILL" = 1 ]; then
  cargo build --release -q -p lvs-node --features lvs-node/fault-injection \
    || die "cargo build --release -p lvs-node --features lvs-node/fault-injection failed"
  FIBIN=$(mktemp /tmp/lvs-node-fi.XXXXXX)
  cp target/release/lvs-node "$FIBIN"
fi
if [ -n "${LVS_NODE:-}" ]; then
  BIN=$(realpath "$LVS_NODE")
  [ -x "$BIN" ] || die "LVS_NODE=$LVS_NODE is not an executable"
else
  cargo build --release -q -p lvs-node || die "cargo build --release -p lvs-node failed"
  BIN=$PWD/target/release/lvs-node
fi
if [ "$FILL" = 1 ]; then
  grep -qaF LVS_NODE_HISTORY_STEP_MS "$FIBIN" || die "$FIBIN lacks the fault-injection hook LVS_NODE_HISTORY_STEP_MS"
fi
grep -qaF LVS_NODE_HISTORY_STEP_MS "$BIN" && die "$BIN is a fault-injection build: measure the release build"

P=lvsc$$
WORK=$(mktemp -d /tmp/lvscale.XXXXXX)
PIDS=()
NSS=()
SYSCTLS=(net.ipv4.neigh.default.gc_thresh2 net.ipv4.neigh.default.gc_thresh3
         net.ipv6.neigh.default.gc_thresh2 net.ipv6.neigh.default.gc_thresh3)
declare -A SAVED=()
cleanup() {
  local rc=$? p n k
  for p in "${PIDS[@]}"; do
    if kill -0 "$p" 2>/dev/null; then kill "$p"; fi
  done
  sleep 0.5
  for p in "${PIDS[@]}"; do
    if kill -0 "$p" 2>/dev/null; then kill -9 "$p"; fi
  done
  for n in "${NSS[@]}"; do
    ip netns del "$n" || echo "scale.sh: cannot delete namespace $n" >&2
  done
  for k in "${!SAVED[@]}"; do
    sysctl -qw "$k=${SAVED[$k]}" || echo "scale.sh: cannot restore $k=${SAVED[$k]}" >&2
  done
  if [ -n "${FIBIN:-}" ] && [ -z "${LVS_NODE_FI:-}" ]; then rm -f "$FIBIN"; fi
  if [ "$rc" != 0 ]; then
    echo "scale.sh: exit $rc; logs kept in $WORK" >&2
  else
    rm -rf "$WORK"
  fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# The neighbour table: room for the mesh (about N^2 entries per family), restored on exit.
for k in "${SYSCTLS[@]}"; do SAVED[$k]=$(sysctl -n "$k"); done
need=$((MAXN * MAXN * 2 + 1024))
for k in "${SYSCTLS[@]}"; do
  [ "${SAVED[$k]}" -ge "$need" ] || sysctl -qw "$k=$need"
done

# Lab: a bridge in its own namespace; two directors (10.78.0.2, .3) and MAXN nodes
# (10.78.1.K, fd00:78::1:K) on it.
D1=10.78.0.2 D2=10.78.0.3
VIPS4=(192.0.2.101 192.0.2.102) VIPS6=(2001:db8::101 2001:db8::102)
node_ip() { echo "10.78.1.$1"; }
node_ip6() { echo "fd00:78::1:$1"; }
ip netns add "${P}br" || die "cannot create namespace ${P}br"
NSS+=("${P}br")
ip netns exec "${P}br" sysctl -qw net.ipv6.conf.all.disable_ipv6=1
ip netns exec "${P}br" ip link add br0 type bridge
ip netns exec "${P}br" ip link set br0 up
host() { # $1 = namespace suffix, $2 = port number, $3 = IPv4, $4 = IPv6 or ""
  local ns="$P$1"
  ip netns add "$ns" || die "cannot create namespace $ns"
  NSS+=("$ns")
  ip netns exec "$ns" ip link set lo up
  if [ -n "$4" ]; then
    ip netns exec "$ns" sysctl -qw net.ipv6.conf.default.accept_dad=0 net.ipv6.conf.all.accept_dad=0
  else
    ip netns exec "$ns" sysctl -qw net.ipv6.conf.all.disable_ipv6=1
  fi
  ip link add name eth0 netns "$ns" address "$(printf '02:00:00:78:%02x:%02x' $(($2 / 256)) $(($2 % 256)))" \
    type veth peer name p$2 netns "${P}br"
  ip netns exec "${P}br" ip link set p$2 master br0 up
  ip netns exec "$ns" ip addr add "$3/16" dev eth0
  if [ -n "$4" ]; then ip netns exec "$ns" ip addr add "$4/64" dev eth0 nodad; fi
  ip netns exec "$ns" ip link set eth0 up
}
host d1 1 $D1 ""
host d2 2 $D2 ""
for k in $(seq "$MAXN"); do host "n$k" $((10 + k)) "$(node_ip "$k")" "$(node_ip6 "$k")"; done
# Pool polling traffic: TCP port 8080 both ways, counted in each node's namespace.
for k in $(seq "$MAXN"); do
  ip netns exec "${P}n$k" nft -f - <<'NFT' || die "cannot add the traffic counters in node $k"
table inet lvscale {
  chain in { type filter hook input priority -300; tcp dport 8080 counter; tcp sport 8080 counter; }
  chain out { type filter hook output priority -300; tcp dport 8080 counter; tcp sport 8080 counter; }
}
NFT
done
pool_bytes() { # $1 = node number: bytes counted on port 8080 so far
  ip netns exec "${P}n$1" nft list table inet lvscale | awk '{for (i = 1; i < NF; i++) if ($i == "bytes") s += $(i + 1)} END {print s + 0}'
}

HZ=$(getconf CLK_TCK)
proc_ticks() { sed 's/.*) //' /proc/"$1"/stat | awk '{print $12 + $13}'; }
# "tid name ticks" for every thread of PID $1 (names: the agent's planes, lvs-bfd, lvs-pool,
# lvs-edge, and the main thread); counted per thread id, so a thread that exits in the
# window drops out instead of making its name's time go backwards.
thread_ticks() {
  local t
  for t in /proc/"$1"/task/*; do
    [ -r "$t/stat" ] || continue
    awk '{n = $0; sub(/^[^(]*\(/, "", n); sub(/\).*$/, "", n); gsub(/ /, "_", n); r = $0; sub(/.*\) /, "", r); split(r, f, " "); print FILENAME, n, f[12] + f[13]}' "$t/stat" 2>/dev/null
  done
}
# keepalived runs its BFD process as a child: the parent's ticks and its children's.
tree_ticks() { local t=0 c; t=$(proc_ticks "$1"); for c in $(pgrep -P "$1"); do t=$((t + $(proc_ticks "$c"))); done; echo "$t"; }
rss_kib() { awk '/^VmRSS:/ {print $2}' /proc/"$1"/status; }
ms_now() { echo $(( ${EPOCHREALTIME/./} / 1000 )); }
# "median max" (ms) of the numbers in file $1
stats() { sort -n "$1" | awk '{a[NR] = $1} END {if (NR == 0) {print "nan nan"; exit} printf "%s %s\n", a[int((NR + 1) / 2)], a[NR]}'; }

node_toml() { # $1 = node number, $2 = pool size, $3 = extra [pool] lines
  local k=$1 n=$2 ip d="$WORK/n$1" j peers="" allow="\"$D1\", \"$D2\""
  ip=$(node_ip "$k")
  for j in $(seq "$n"); do
    peers+="\"http://$(node_ip "$j"):8080\", "
    allow+=", \"$(node_ip "$j")\""
  done
  mkdir -p "$d"
  cat <<TOML
interface = "eth0"
real_ip = "$ip"
real_ip6 = "$(node_ip6 "$k")"
state_dir = "$d/state"
[[vip]]
address = "${VIPS4[0]}"
ports = [2811]
[[vip]]
address = "${VIPS4[1]}"
ports = [1094]
[[vip]]
address = "${VIPS6[0]}"
ports = [2811]
[[vip]]
address = "${VIPS6[1]}"
ports = [1094]
[daemon]
control_socket = "$d/control.sock"
[report]
http = "$ip:8080"
allow = [$allow]
[bfd]
directors = ["$D1", "$D2"]
[pool]
peers = [${peers%, }]
$3
TOML
}

# keepalived's BFD process alone, one bfd_instance per node, 50 ms x 3 (the agent's default
# and what `director-config --bfd` mirrors).
ka_conf() { # $1 = director address, $2 = pool size
  echo "global_defs {"; echo "    router_id scale-$1"; echo "}"
  local j
  for j in $(seq "$2"); do
    printf 'bfd_instance n%s {\n    neighbor_ip %s\n    source_ip %s\n    min_rx 50\n    min_tx 50\n    multiplier 3\n}\n' \
      "$j" "$(node_ip "$j")" "$1"
  done
}

metric() { # $1 = node number, $2 = metric line prefix; prints the value or nothing
  ip netns exec "${P}d1" curl -s -m 2 "http://$(node_ip "$1"):8080/metrics" | awk -v m="$2" 'index($0, m " ") == 1 {print $2}'
}
bfd_up() { # $1 = node number: both sessions Up
  local m
  m=$(ip netns exec "${P}d1" curl -s -m 2 "http://$(node_ip "$1"):8080/metrics") || return 1
  echo "$m" | grep -qF "lvs_realserver_bfd_session_state{director=\"$D1\"} 3" &&
    echo "$m" | grep -qF "lvs_realserver_bfd_session_state{director=\"$D2\"} 3"
}
page() { # $1 = output file; GET /pool of node 1 from the director; prints "ms bytes"
  ip netns exec "${P}d1" curl -sf -m 20 -o "$1" -w '%{time_total} %{size_download}\n' "http://$(node_ip 1):8080/pool" |
    awk '{printf "%.1f %d\n", $1 * 1000, $2}'
}
# The points of each weight line on a page (the graphs' blue polylines), one line each.
# A page with no weight line yet (a node just restarted) prints nothing, and is no error.
graph_points() { { grep -o 'stroke="#1f5fbf"[^>]*points="[^"]*"' "$1" || [ $? = 1 ]; } | awk -F'points="' '{print split($2, a, " ")}'; }

start_node() { # $1 = node number, $2 = binary, then env assignments; echoes the PID
  local k=$1 bin=$2; shift 2
  ip netns exec "${P}n$k" env "$@" "$bin" -c "$WORK/n$k/node.toml" run >> "$WORK/n$k/agent.log" 2>&1 &
  echo $!
}

echo "== site scale ($(date -u '+%F %H:%M UTC'), $(nproc) cores, $("$BIN" --version), load average $(cut -d' ' -f1-3 /proc/loadavg))"
echo "   sizes: $SIZES; each node: 4 VIPs (${VIPS4[*]} ${VIPS6[*]}), [pool] of every node (default interval: 2s, 5s at 50 nodes; timeout 1s),"
echo "   BFD 50ms x 3 to $D1 and $D2 (keepalived bfd_instance only); WINDOW=${WINDOW}s at rest, SETTLE=${SETTLE}s, TIMES=$TIMES, FILL=$FILL"
echo "   neighbour table: $(for k in "${SYSCTLS[@]}"; do printf '%s=%s ' "${k#net.}" "$(sysctl -n "$k")"; done)(restored on exit)"
: > "$WORK/rows"
DROPPED=0

for N in $SIZES; do
  d="$WORK/size$N"; mkdir -p "$d"
  SPIDS=()
  for k in $(seq "$N"); do
    rm -rf "$WORK/n$k"
    node_toml "$k" "$N" "" > "$WORK/n$k.toml.tmp"
    mv "$WORK/n$k.toml.tmp" "$WORK/n$k/node.toml"
  done
  ka_conf $D1 "$N" > "$d/ka1.conf"
  ka_conf $D2 "$N" > "$d/ka2.conf"
  ip netns exec "${P}d1" keepalived -f "$d/ka1.conf" -n -l -D -p "$d/ka1.pid" -c "$d/ka1-c.pid" \
    -r "$d/ka1-r.pid" -b "$d/ka1-b.pid" > "$d/ka1.log" 2>&1 &
  KA1=$!; PIDS+=($KA1); SPIDS+=($KA1)
  ip netns exec "${P}d2" keepalived -f "$d/ka2.conf" -n -l -D -p "$d/ka2.pid" -c "$d/ka2-c.pid" \
    -r "$d/ka2-r.pid" -b "$d/ka2-b.pid" > "$d/ka2.log" 2>&1 &
  KA2=$!; PIDS+=($KA2); SPIDS+=($KA2)
  declare -A APID=()
  t0=$(ms_now)
  for k in $(seq "$N"); do
    APID[$k]=$(start_node "$k" "$BIN")
    PIDS+=("${APID[$k]}"); SPIDS+=("${APID[$k]}")
  done
  # Every node's two BFD sessions Up, and the first node's pool view all up.
  pending=$(seq "$N")
  for _ in $(seq 600); do
    left=""
    for k in $pending; do
      kill -0 "${APID[$k]}" 2>/dev/null || die "node $k exited: $(tail -20 "$WORK/n$k/agent.log")"
      bfd_up "$k" || left+=" $k"
    done
    pending=$left
    [ -z "$pending" ] && break
    sleep 0.2
  done
  [ -z "$pending" ] || die "$N nodes: BFD not Up with both directors after 120 s on node(s)$pending:
$(tail -10 "$WORK/n${pending# }"/agent.log 2>/dev/null | head -10)
$(tail -10 "$d/ka1.log")"
  ok=
  for _ in $(seq 300); do
    if page "$d/pool0.html" > /dev/null && grep -qF "Pool: $N node(s) &mdash; $N up</h1>" "$d/pool0.html"; then ok=1; break; fi
    sleep 0.2
  done
  [ -n "$ok" ] || die "$N nodes: node 1's /pool does not show $N up: $(grep -o '<h1>[^<]*' "$d/pool0.html" 2>/dev/null)"
  up_s=$(awk -v a="$t0" -v b="$(ms_now)" 'BEGIN {printf "%.1f", (b - a) / 1000}')
  sleep "$SETTLE"

  # At rest: CPU and traffic over the window, RSS at its end.
  for k in $(seq "$N"); do echo "$k $(proc_ticks "${APID[$k]}") $(pool_bytes "$k")"; done > "$d/t0"
  for k in $(seq "$N"); do thread_ticks "${APID[$k]}"; done > "$d/threads0"
  ka0=$(( $(tree_ticks $KA1) + $(tree_ticks $KA2) ))
  kx0=$(cat "$d/ka1.log" "$d/ka2.log" | grep -c 'Control Detection Time Expired' || [ $? = 1 ])
  w0=$(ms_now)
  sleep "$WINDOW"
  for k in $(seq "$N"); do
    kill -0 "${APID[$k]}" 2>/dev/null || die "node $k exited during the window: $(tail -20 "$WORK/n$k/agent.log")"
    echo "$k $(proc_ticks "${APID[$k]}") $(pool_bytes "$k") $(rss_kib "${APID[$k]}")"
  done > "$d/t1"
  for k in $(seq "$N"); do thread_ticks "${APID[$k]}"; done > "$d/threads1"
  w1=$(ms_now)
  ka1=$(( $(tree_ticks $KA1) + $(tree_ticks $KA2) ))
  secs=$(awk -v a="$w0" -v b="$w1" 'BEGIN {print (b - a) / 1000}')
  # Per node: CPU % of a core, RSS MiB, pool traffic bytes/s.
  awk -v hz="$HZ" -v s="$secs" 'NR == FNR {c[$1] = $2; b[$1] = $3; next}
    {printf "%s %.3f %.1f %.0f\n", $1, ($2 - c[$1]) * 100 / hz / s, $4 / 1024, ($3 - b[$1]) / s}' "$d/t0" "$d/t1" > "$d/pernode"
  read -r cpu_mean cpu_max rss_mean rss_max bps_mean bps_max < <(awk '
    {c += $2; r += $3; b += $4; if ($2 > cm) cm = $2; if ($3 > rm) rm = $3; if ($4 > bm) bm = $4}
    END {printf "%.2f %.2f %.1f %.1f %.0f %.0f\n", c / NR, cm, r / NR, rm, b / NR, bm}' "$d/pernode")
  # Per thread name: mean % of a core per node over the window.
  threads=$(awk -v hz="$HZ" -v s="$secs" -v n="$N" 'NR == FNR {a[$1] = $3; next}
    ($1 in a) {t[$2] += $3 - a[$1]} END {for (k in t) printf "%s %.2f %%, ", k, t[k] * 100 / hz / s / n}' "$d/threads0" "$d/threads1")
  # Threads that started or ended within the window (the runtime's blocking pool, which
  # runs the session count and lets its thread go after 10 s idle): the process's ticks
  # less those of the threads alive at both ends.
  threads+=$(awk -v hz="$HZ" -v s="$secs" -v n="$N" 'FILENAME ~ /threads0$/ {a[$1] = $3; next}
    FILENAME ~ /threads1$/ {if ($1 in a) live += $3 - a[$1]; next}
    FILENAME ~ /t0$/ {p0 += $2; next} {p1 += $2}
    END {o = (p1 - p0 - live) * 100 / hz / s / n; if (o < 0) o = 0; printf "short-lived %.2f %%, ", o}' \
    "$d/threads0" "$d/threads1" "$d/t0" "$d/t1")
  ka_cpu=$(awk -v hz="$HZ" -v s="$secs" -v t=$((ka1 - ka0)) 'BEGIN {printf "%.1f", t * 100 / hz / s / 2}')
  # BFD detection expiries at the directors within the window.
  ka_exp=$(( $(cat "$d/ka1.log" "$d/ka2.log" | grep -c 'Control Detection Time Expired' || [ $? = 1 ]) - kx0 ))

  # Commands: director-config --pool (every node) and pool status (node 1), TIMES runs each.
  urls=""; for k in $(seq "$N"); do urls+=" --pool http://$(node_ip "$k"):8080"; done
  : > "$d/dc.ms"; : > "$d/ps.ms"
  for r in $(seq "$TIMES"); do
    a=$(ms_now)
    # shellcheck disable=SC2086
    ip netns exec "${P}d1" "$BIN" -c /nonexistent director-config $urls --bfd --bfd-source $D1 > "$d/dc.out" 2> "$d/dc.err" \
      || die "$N nodes: director-config --pool failed: $(cat "$d/dc.err")"
    echo $(( $(ms_now) - a )) >> "$d/dc.ms"
    got=$(grep -c '^bfd_instance ' "$d/dc.out" || [ $? = 1 ])
    [ "$got" = "$N" ] || die "$N nodes: director-config --pool printed $got bfd_instances: $(head -30 "$d/dc.out")"
    a=$(ms_now)
    ip netns exec "${P}n1" "$BIN" -c "$WORK/n1/node.toml" pool status > "$d/ps.out" 2> "$d/ps.err" \
      || die "$N nodes: pool status failed: $(cat "$d/ps.err") $(cat "$d/ps.out")"
    echo $(( $(ms_now) - a )) >> "$d/ps.ms"
  done
  read -r dc_med dc_max < <(stats "$d/dc.ms")
  read -r ps_med ps_max < <(stats "$d/ps.ms")

  # /pool with the history of this run (default intervals).
  : > "$d/page.ms"
  for r in $(seq "$TIMES"); do
    read -r ms bytes < <(page "$d/pool.html") || die "$N nodes: GET /pool failed"
    echo "$ms" >> "$d/page.ms"
  done
  read -r pg_med pg_max < <(stats "$d/page.ms")
  pg_bytes=$bytes
  hist_s=$(awk -v a="$t0" -v b="$(ms_now)" 'BEGIN {printf "%.0f", (b - a) / 1000}')

  # A full hour: node 1 again, with a sample every poll round (200 ms) until every node's
  # ring holds 720 samples (each weight line then has 240 points).
  fh_med=- fh_max=- fh_bytes=- fh_s=-
  if [ "$FILL" = 1 ]; then
    kill "${APID[1]}"
    for _ in $(seq 100); do kill -0 "${APID[1]}" 2>/dev/null || break; sleep 0.1; done
    kill -0 "${APID[1]}" 2>/dev/null && die "node 1 did not stop within 10 s of SIGTERM"
    node_toml 1 "$N" "interval = \"200ms\"
timeout = \"200ms\"" > "$WORK/n1/node.toml"
    a=$(ms_now)
    APID[1]=$(start_node 1 "$FIBIN" LVS_NODE_HISTORY_STEP_MS=0)
    PIDS+=("${APID[1]}"); SPIDS+=("${APID[1]}")
    full=
    for _ in $(seq 600); do
      kill -0 "${APID[1]}" 2>/dev/null || die "node 1 (fault-injection build) exited: $(tail -20 "$WORK/n1/agent.log")"
      if page "$d/full.html" > /dev/null; then
        lines=$(graph_points "$d/full.html" | awk '$1 == 240' | wc -l)
        [ "$lines" -ge "$N" ] && { full=1; break; }
      fi
      sleep 2
    done
    [ -n "$full" ] || die "$N nodes: node 1's history did not fill in 1200 s: $(graph_points "$d/full.html" | sort | uniq -c | tr '\n' ' ')"
    fh_s=$(awk -v a="$a" -v b="$(ms_now)" 'BEGIN {printf "%.0f", (b - a) / 1000}')
    : > "$d/full.ms"
    for r in $(seq "$TIMES"); do
      read -r ms bytes < <(page "$d/full.html") || die "$N nodes: GET /pool (full hour) failed"
      echo "$ms" >> "$d/full.ms"
    done
    read -r fh_med fh_max < <(stats "$d/full.ms")
    fh_bytes=$bytes
    echo "   $N nodes, full hour: $(grep -c '<tr><td>' "$d/full.html") rows, $(graph_points "$d/full.html" | awk '$1 == 240' | wc -l) weight lines of 240 points, filled in ${fh_s} s"
  fi

  echo "$N $cpu_mean $cpu_max $rss_mean $rss_max $bps_mean $bps_max $dc_med $dc_max $ps_med $ps_max $pg_med $pg_max $pg_bytes $hist_s $fh_med $fh_max $fh_bytes $ka_cpu $ka_exp $up_s $(cut -d' ' -f1 /proc/loadavg)" >> "$WORK/rows"
  echo "-- $N nodes: all Up in ${up_s} s; at rest over ${secs} s: CPU mean $cpu_mean % max $cpu_max %, RSS mean $rss_mean MiB max $rss_max MiB, pool traffic mean $bps_mean B/s max $bps_max B/s per node"
  echo "   director-config --pool ${dc_med}/${dc_max} ms, pool status ${ps_med}/${ps_max} ms, /pool ${pg_med}/${pg_max} ms $pg_bytes B (history ${hist_s} s); full hour: ${fh_med}/${fh_max} ms $fh_bytes B"
  echo "   CPU per node by thread (mean): ${threads%, }"
  echo "   directors (keepalived BFD): ${ka_cpu} % of a core each, detection expiries $ka_exp; load average $(cut -d' ' -f1-3 /proc/loadavg)"

  # The next size starts from nothing.
  for p in "${SPIDS[@]}"; do
    if kill -0 "$p" 2>/dev/null; then kill "$p"; fi
  done
  for p in "${SPIDS[@]}"; do
    for _ in $(seq 50); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done
    if kill -0 "$p" 2>/dev/null; then kill -9 "$p"; DROPPED=$((DROPPED + 1)); fi
  done
  unset APID
done

echo
echo "| nodes | CPU per node (mean / max) | RSS per node (mean / max) | pool traffic per node (mean / max) | director-config --pool (median / max) | pool status (median / max) | /pool, run's history (median / max, size) | /pool, full hour (median / max, size) | keepalived BFD per director | load |"
echo "|---|---|---|---|---|---|---|---|---|---|"
while read -r n cm cx rm rx bm bx dm dx pm px gm gx gb hs fm fx fb kc ke us la; do
  printf '| %s | %s / %s %% | %s / %s MiB | %s / %s kB/s | %s / %s ms | %s / %s ms | %s / %s ms, %s kB (%s s) | %s / %s ms, %s kB | %s %% | %s |\n' \
    "$n" "$cm" "$cx" "$rm" "$rx" "$(awk -v v="$bm" 'BEGIN {printf "%.1f", v / 1000}')" "$(awk -v v="$bx" 'BEGIN {printf "%.1f", v / 1000}')" \
    "$dm" "$dx" "$pm" "$px" "$gm" "$gx" "$(awk -v v="$gb" 'BEGIN {printf "%.0f", v / 1000}')" "$hs" \
    "$fm" "$fx" "$(awk -v v="$fb" 'BEGIN {if (v == "-") print "-"; else printf "%.0f", v / 1000}')" "$kc" "$la"
  [ "$ke" = 0 ] || echo "   ($n nodes: keepalived saw $ke BFD detection expiries)"
done < "$WORK/rows"
[ "$DROPPED" = 0 ] || echo "processes that needed SIGKILL at the end of a size: $DROPPED"
echo

fail=0
verdict() { # $1 = description, $2 = awk condition on v
  local r; r=$(awk "BEGIN {print ($2) ? \"PASS\" : \"FAIL\"}")
  echo "$1: $r"
  [ "$r" = PASS ] || fail=1
}
last=$(tail -1 "$WORK/rows")
read -r n _ cx _ rx _ _ _ dx _ _ _ gx gb _ _ fx fb _ ke _ < <(echo "$last")
verdict "$n nodes: CPU per node at rest, max $cx % <= 1 %" "$cx <= 1"
verdict "$n nodes: RSS per node at rest, max $rx MiB <= 20 MiB" "$rx <= 20"
verdict "$n nodes: director-config --pool, max $dx ms <= 1000 ms" "$dx <= 1000"
if [ "$FILL" = 1 ]; then
  verdict "$n nodes: /pool with a full hour, $fb B <= 1 MB" "$fb <= 1000000"
  verdict "$n nodes: /pool with a full hour, max $fx ms <= 100 ms" "$fx <= 100"
else
  echo "$n nodes: /pool with a full hour: not measured (FILL=0)"
  fail=1
fi
verdict "$n nodes: no BFD detection expiry at the directors ($ke)" "$ke == 0"
[ "$fail" = 0 ] || exit 3
