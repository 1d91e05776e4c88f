#!/usr/bin/env bash
# Benchmark: the planes of `lvs-node run` under a client flood (docs/benchmarks.md, section
# "Planes under a client flood"). One run, three conditions per round, side by side:
#   idle     no load (reference);
#   agent    the flood aimed at the measured agent: TLS handshakes on its `[[redirect]]`
#            listener (openssl s_time -new, several processes), new connections to its ACME
#            responder (wrk, Connection: close), GET /pool in a loop with 256 peers;
#   control  the same flood aimed at a second `lvs-node run` in another namespace that serves
#            the same listeners (redirect with TLS, ACME responder, /pool of the same 256
#            peers), while the measured agent's listeners are idle: the same CPU pressure
#            from another process.
# Measured in each: every BFD packet the agent sends, captured by tcpdump in the peer's
# (the director's) namespace (largest transmit gap, p99); BFD timeouts (keepalived's
# "Local diagnostic - Control Detection Time Expired" lines, its own detection, and the
# agent's bfd_transitions cause="timeout"); the peer's own largest transmit gap (an agent
# timeout after a silence of the peer's is the peer's);
# /health and agent-check latency (p50/p99) from a probe loop at the director's address;
# the measured agent's CPU per thread. Each loaded condition floods from a fresh client
# namespace, so no condition inherits the previous one's TIME_WAIT sockets.
# The BFD peer is keepalived's own BFD process (50 ms x 3, as `director-config --bfd`).
# keepalived and the probe stand for the director, another machine: they run at nice -10
# so the flood's clients on this machine do not starve them.
# The 256 peers are one small static server (python3) answering on 256 addresses with a
# /status document the measured agent itself served: they are load, not the subject.
#
# Usage (root, workspace root):  tests/bench/planes.sh
#   DURATION=30     seconds per condition        RUNS=1        rounds of the three conditions
#                   (idle first; agent and control alternate their order from round to round)
#   TLS_PROCS=3     openssl s_time processes     ACME_CONNS=16 wrk connections to the responder
#   POOL_LOOPS=1    clients requesting /pool in a loop
#   LVS_NODE=path   binary to measure instead of the release build (a debug build is no figure)
# Exit: 0 every goal met; 3 a goal missed (the table says which); 1 the lab, a tool or a
# load failed. Everything runs in namespaces it creates; the host's network is not touched.
set -euo pipefail
cd "$(dirname "$0")/../.."
DURATION=${DURATION:-30}
RUNS=${RUNS:-1}
TLS_PROCS=${TLS_PROCS:-3}
ACME_CONNS=${ACME_CONNS:-16}
POOL_LOOPS=${POOL_LOOPS:-1}
PEERS=256
die() { echo "planes.sh: $*" >&2; exit 1; }
[ "$(id -u)" = 0 ] || die "run as root (it builds network namespaces)"
for t in ip keepalived tcpdump openssl wrk python3 curl top nice awk sort; do
  command -v "$t" >/dev/null || die "$t is missing (tests/setup.sh installs it)"
done
if [ -n "${LVS_NODE:-}" ]; then
  BIN=$(realpath "$LVS_NODE")
  [ -x "$BIN" ] || die "LVS_NODE=$LVS_NODE is not an executable"
else
  cargo build --release -q -p lvs-node || die "cargo build --release -p lvs-node failed"
  BIN=$PWD/target/release/lvs-node
fi

P=lvpl$$
WORK=$(mktemp -d /tmp/lvplanes.XXXXXX)
PIDS=()
NSS=()
cleanup() {
  local rc=$?
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
  sleep 0.3
  for p in "${PIDS[@]}"; do kill -9 "$p" 2>/dev/null || true; done
  for n in "${NSS[@]}"; do ip netns del "$n" 2>/dev/null || true; done
  if [ "$rc" != 0 ]; then
    echo "planes.sh: exit $rc; logs and captures kept in $WORK" >&2
  else
    rm -rf "$WORK"
  fi
}
trap cleanup EXIT

VIP=192.0.2.100
CL_IP=10.77.0.1 DIR_IP=10.77.0.2 RS_IP=10.77.0.11 CTL_IP=10.77.0.12
# Lab: a bridge in its own namespace, five hosts on it (client, director, the measured node,
# the control node, the peers), 10.77.0.0/16.
ip netns add "${P}br" || die "cannot create namespace ${P}br"
NSS+=("${P}br")
ip netns exec "${P}br" ip link add br0 type bridge
ip netns exec "${P}br" ip link set br0 up
i=0
for spec in cl:$CL_IP dir:$DIR_IP rs:$RS_IP ctl:$CTL_IP peer:10.77.1.1; do
  i=$((i + 1)); n=${spec%%:*}; addr=${spec#*:}
  ip netns add "$P$n"; NSS+=("$P$n")
  ip netns exec "$P$n" ip link set lo up
  ip netns exec "$P$n" sysctl -qw net.ipv6.conf.all.disable_ipv6=1
  ip link add name eth0 netns "$P$n" address "02:00:00:00:77:0$i" type veth peer name p$i netns "${P}br"
  ip netns exec "${P}br" ip link set p$i master br0 up
  ip netns exec "$P$n" ip addr add "$addr/16" dev eth0
  ip netns exec "$P$n" ip link set eth0 up
done
# For commands run to completion. Background processes are started with `ip netns exec`
# itself, so that $! is the process's own PID and the cleanup kills the process.
CL() { ip netns exec "${P}cl" "$@"; }
DIR() { ip netns exec "${P}dir" "$@"; }
RS() { ip netns exec "${P}rs" "$@"; }
CTL() { ip netns exec "${P}ctl" "$@"; }
PEER() { ip netns exec "${P}peer" "$@"; }
# The peers: 10.77.1.1 .. 10.77.2.0 (256 addresses) on one interface.
for k in $(seq 2 $PEERS); do
  echo "addr add 10.77.$((1 + k / 256)).$((k % 256))/16 dev eth0"
done | PEER ip -batch - || die "cannot add the peers' addresses"
PEER_URLS=$(for k in $(seq 1 $PEERS); do printf '"http://10.77.%d.%d:8080", ' $((1 + k / 256)) $((k % 256)); done)
PEER_URLS="[${PEER_URLS%, }]"
# Each loaded condition floods from a client namespace of its own (10.77.0.101, ...): the
# tens of thousands of TIME_WAIT sockets one flood leaves behind must not slow the next.
FLOOD_IPS=$(for k in $(seq 1 $((2 * RUNS))); do printf '"10.77.0.%d", ' $((100 + k)); done)
FLOOD_IPS=${FLOOD_IPS%, }
NCLIENT=0
new_client() { # prints the new client namespace's name; its VIP route goes via $1
  NCLIENT=$((NCLIENT + 1))
  local ns="${P}c$NCLIENT" ip="10.77.0.$((100 + NCLIENT))"
  ip netns add "$ns" || die "cannot create namespace $ns"
  NSS+=("$ns")
  ip netns exec "$ns" ip link set lo up
  ip netns exec "$ns" sysctl -qw net.ipv6.conf.all.disable_ipv6=1
  ip link add name eth0 netns "$ns" address "02:00:00:00:78:$(printf %02x $NCLIENT)" type veth peer name q$NCLIENT netns "${P}br"
  ip netns exec "${P}br" ip link set q$NCLIENT master br0 up
  ip netns exec "$ns" ip addr add "$ip/16" dev eth0
  ip netns exec "$ns" ip link set eth0 up
  ip netns exec "$ns" ip route add $VIP/32 via "$1" dev eth0
}

# TLS key and certificate of the redirector (RSA 2048, as grid host certificates), the ACME
# webroot with one token.
openssl req -x509 -newkey rsa:2048 -nodes -keyout "$WORK/key.pem" -out "$WORK/cert.pem" \
  -subj /CN=gridftp.bench -days 2 2>/dev/null || die "openssl cannot make the test certificate"
chmod 0400 "$WORK/key.pem"
mkdir -p "$WORK/webroot/.well-known/acme-challenge"
echo "benchtoken.thumbprint" > "$WORK/webroot/.well-known/acme-challenge/benchtoken"

edge_toml() { # $1 = real IP, $2 = its directory
  cat <<TOML
interface = "eth0"
real_ip = "$1"
state_dir = "$2/state"
[[vip]]
address = "$VIP"
ports = [80, 8443]
[daemon]
control_socket = "$2/control.sock"
TOML
}
edge_tables() { # $1 = real IP
  cat <<TOML
[[redirect]]
listen = "$VIP:8443"
tls_cert = "$WORK/cert.pem"
tls_key = "$WORK/key.pem"
target = "https://$1:8443"
[acme]
webroot = "$WORK/webroot"
on = ["vip"]
[pool]
peers = $PEER_URLS
interval = "2s"
timeout = "1s"
TOML
}
mkdir -p "$WORK/rs" "$WORK/ctl"
{
  edge_toml $RS_IP "$WORK/rs"
  cat <<TOML
[[check]]
name = "hostcert"
kind = "certificate"
cert = "$WORK/cert.pem"
min_days = 1
interval = "500ms"
timeout = "300ms"
[report]
http = "$RS_IP:8080"
agent_check = "$RS_IP:8081"
allow = ["$DIR_IP", "$CL_IP", $FLOOD_IPS]
[bfd]
directors = ["$DIR_IP"]
min_tx = "50ms"
min_rx = "50ms"
multiplier = 3
TOML
  edge_tables $RS_IP
} > "$WORK/rs/node.toml"
{
  edge_toml $CTL_IP "$WORK/ctl"
  cat <<TOML
[report]
http = "$CTL_IP:8080"
allow = ["$DIR_IP", "$CL_IP", $FLOOD_IPS]
TOML
  edge_tables $CTL_IP
} > "$WORK/ctl/node.toml"

# The director's BFD speaker: keepalived's BFD process alone, 50 ms x 3.
cat > "$WORK/keepalived.conf" <<KA
global_defs {
    router_id planes
}
bfd_instance node {
    neighbor_ip $RS_IP
    source_ip $DIR_IP
    min_rx 50
    min_tx 50
    multiplier 3
}
KA
ip netns exec "${P}dir" nice -n -10 keepalived -f "$WORK/keepalived.conf" -n -l -D -p "$WORK/ka.pid" -c "$WORK/ka-c.pid" \
  -r "$WORK/ka-r.pid" -b "$WORK/ka-b.pid" > "$WORK/keepalived.log" 2>&1 &
PIDS+=($!)

ip netns exec "${P}rs" "$BIN" -c "$WORK/rs/node.toml" run > "$WORK/rs/agent.log" 2>&1 &
APID=$!; PIDS+=($APID)
ip netns exec "${P}ctl" "$BIN" -c "$WORK/ctl/node.toml" run > "$WORK/ctl/agent.log" 2>&1 &
CPID=$!; PIDS+=($CPID)

metric() { # $1 = metric line prefix (name{labels}); prints the value or nothing
  DIR curl -s -m 2 "http://$RS_IP:8080/metrics" | awk -v m="$1" 'index($0, m " ") == 1 {print $2}'
}
up=
for _ in $(seq 200); do
  if [ "$(metric "lvs_realserver_bfd_session_state{director=\"$DIR_IP\"}")" = 3 ]; then up=1; break; fi
  kill -0 $APID 2>/dev/null || break
  sleep 0.1
done
[ -n "$up" ] || die "the BFD session with keepalived did not come Up in 20 s
$(DIR curl -s -m 2 "http://$RS_IP:8080/status")
$(DIR curl -s -m 2 "http://$RS_IP:8080/metrics" | grep bfd)
$(tail -20 "$WORK/rs/agent.log")
$(tail -20 "$WORK/keepalived.log")"
for _ in $(seq 100); do CTL curl -s -o /dev/null -m 1 "http://$CTL_IP:8080/health" && break; sleep 0.1; done
kill -0 $CPID 2>/dev/null || die "the control agent did not start: $(tail -20 "$WORK/ctl/agent.log")"
for ns in rs ctl; do
  ip netns exec "$P$ns" ip -o addr show dev lo | grep -q "$VIP" || die "the VIP is not on lo in $ns"
done

# The peers: a /status document the measured agent served, answered on 256 addresses.
DIR curl -sf -m 2 -o "$WORK/status.json" "http://$RS_IP:8080/status" || die "cannot read the agent's /status"
cat > "$WORK/peers.py" <<'PY'
import asyncio, sys, time
body = open(sys.argv[1], 'rb').read()
count_file = sys.argv[2]
head = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n" % len(body)
served = 0
async def conn(r, w):
    global served
    try:
        while True:
            req = await r.readuntil(b"\r\n\r\n")
            if not req:
                break
            w.write(head + body)
            await w.drain()
            served += 1
    except (asyncio.IncompleteReadError, ConnectionError, asyncio.LimitOverrunError):
        pass
    w.close()
async def report():
    while True:
        await asyncio.sleep(1)
        with open(count_file + ".tmp", "w") as f:
            f.write(str(served))
        import os; os.replace(count_file + ".tmp", count_file)
async def main():
    srv = await asyncio.start_server(conn, "0.0.0.0", 8080, backlog=1024)
    await asyncio.gather(srv.serve_forever(), report())
asyncio.run(main())
PY
ip netns exec "${P}peer" python3 "$WORK/peers.py" "$WORK/status.json" "$WORK/peers.count" > "$WORK/peers.log" 2>&1 &
PIDS+=($!)
ok=
for _ in $(seq 100); do
  [ "$(cat "$WORK/peers.count" 2>/dev/null || echo 0)" -ge $((2 * PEERS)) ] && { ok=1; break; }
  sleep 0.1
done
[ -n "$ok" ] || die "the pools did not poll the 256 peers: $(cat "$WORK/peers.log")"
sleep 2.5   # one more poll interval: every peer fresh in both views
for h in $RS_IP $CTL_IP; do
  CL curl -sf -m 20 -o "$WORK/pool.html" "http://$h:8080/pool" || die "GET /pool on $h failed"
  n=$(grep -o '10\.77\.[12]\.[0-9]*' "$WORK/pool.html" | sort -u | wc -l)
  [ "$n" -ge $PEERS ] || die "/pool on $h names $n of the $PEERS peers"
  echo "/pool on $h: $(stat -c %s "$WORK/pool.html") bytes, $n peers named"
done

# The director's probe: /health (HTTP/1.1, one connection per request, as keepalived's
# HTTP_GET) and the agent-check (connect, read the line), one of each every 20 ms.
cat > "$WORK/probe.py" <<'PY'
import socket, sys, time
ip, secs = sys.argv[1], float(sys.argv[2])
def health():
    s = socket.create_connection((ip, 8080), timeout=2)
    s.sendall(b"GET /health HTTP/1.1\r\nHost: %s\r\nConnection: close\r\n\r\n" % ip.encode())
    data = b""
    while True:
        c = s.recv(4096)
        if not c: break
        data += c
    s.close()
    return data.startswith(b"HTTP/1.1 200")
def agent():
    s = socket.create_connection((ip, 8081), timeout=2)
    data = b""
    while True:
        c = s.recv(4096)
        if not c: break
        data += c
    s.close()
    return data.startswith(b"up")
lat = {"health": [], "agent": []}
fail = {"health": 0, "agent": 0}
end = time.monotonic() + secs
nxt = time.monotonic()
while time.monotonic() < end:
    for name, f in (("health", health), ("agent", agent)):
        t = time.monotonic()
        try:
            ok = f()
        except OSError:
            ok = False
        if ok:
            lat[name].append((time.monotonic() - t) * 1000)
        else:
            fail[name] += 1
    nxt += 0.02
    time.sleep(max(0.0, nxt - time.monotonic()))
def pct(v, p):
    v = sorted(v)
    return v[min(len(v) - 1, int(len(v) * p / 100))] if v else float("nan")
for name in ("health", "agent"):
    v = lat[name]
    print(f"{name} {len(v)} {fail[name]} {pct(v, 50):.2f} {pct(v, 99):.2f} {max(v) if v else float('nan'):.2f}")
PY

thread_ticks() { # per-thread utime+stime of PID $1: "tid name ticks" lines
  for t in /proc/"$1"/task/*; do
    [ -r "$t/stat" ] || continue
    printf '%s %s %s\n' "${t##*/}" "$(cat "$t/comm")" "$(sed 's/.*) //' "$t/stat" | awk '{print $12 + $13}')"
  done
}
proc_ticks() { sed 's/.*) //' /proc/"$1"/stat | awk '{print $12 + $13}'; }
HZ=$(getconf CLK_TCK)
ka_expired() { awk '/Local diagnostic - Control Detection Time Expired/ {n++} END {print n + 0}' "$WORK/keepalived.log"; }
TIMEOUT_M="lvs_realserver_bfd_transitions_total{director=\"$DIR_IP\",to=\"down\",cause=\"timeout\"}"
agent_timeouts() { local v; v=$(metric "$TIMEOUT_M"); echo "${v:-0}"; }

# One condition: $1 = idle | agent | control; $2 = round. Appends a row to $WORK/rows.
condition() {
  local cond=$1 round=$2 target d="$WORK/r$2-$1"
  mkdir -p "$d"
  case $cond in agent) target=$RS_IP ;; control) target=$CTL_IP ;; *) target= ;; esac
  local cns=
  if [ -n "$target" ]; then new_client "$target"; cns="${P}c$NCLIENT"; fi
  local ka0 at0 c0 cp0; ka0=$(ka_expired); at0=$(agent_timeouts); cp0=$(proc_ticks $CPID)
  local ap0 ap1; ap0=$(proc_ticks $APID)
  thread_ticks $APID > "$d/ticks0"
  ip netns exec "${P}dir" tcpdump -i eth0 -n -s 96 -w "$d/bfd.pcap" "udp and dst port 3784 and (src host $RS_IP or src host $DIR_IP)" > "$d/tcpdump.log" 2>&1 &
  local tdp=$! lpids=()
  PIDS+=($tdp)
  sleep 0.5
  if [ -n "$target" ]; then
    for k in $(seq "$TLS_PROCS"); do
      ip netns exec "$cns" openssl s_time -connect $VIP:8443 -new -time "$DURATION" > "$d/stime$k.log" 2>&1 &
      lpids+=($!)
    done
    ip netns exec "$cns" wrk -t1 -c"$ACME_CONNS" -d"${DURATION}s" -H 'Connection: close' \
      "http://$VIP/.well-known/acme-challenge/benchtoken" > "$d/wrk.log" 2>&1 &
    lpids+=($!)
    for k in $(seq "$POOL_LOOPS"); do
      ip netns exec "$cns" bash -c 'end=$((SECONDS + $2)); while [ $SECONDS -lt $end ]; do curl -s -o /dev/null -m 20 -w "%{http_code} %{size_download}\n" "http://$1:8080/pool"; done; exit 0' \
        _ "$target" "$DURATION" > "$d/pool$k.log" 2>&1 &
      lpids+=($!)
    done
    PIDS+=("${lpids[@]}")
  fi
  ip netns exec "${P}dir" nice -n -10 python3 "$WORK/probe.py" $RS_IP "$DURATION" > "$d/probe.txt" 2> "$d/probe.err" &
  local pp=$!; PIDS+=($pp)
  sleep $((DURATION / 2))
  top -H -b -n2 -d1 -w 200 > "$d/top.txt"   # the second frame: CPU over that second
  wait $pp || die "the probe failed: $(cat "$d/probe.err")"
  local p; for p in "${lpids[@]}"; do wait "$p" || die "a load process failed in $cond (logs in $d)"; done
  local tw=0
  if [ -n "$cns" ]; then tw=$(ip netns exec "$cns" ss -Htan state time-wait | wc -l); fi
  sleep 2   # the machine settles; BFD events until here count for this condition
  kill -INT $tdp
  wait $tdp || die "tcpdump in the director's namespace failed: $(cat "$d/tcpdump.log")"
  thread_ticks $APID > "$d/ticks1"
  ap1=$(proc_ticks $APID)
  local cp1; cp1=$(proc_ticks $CPID)
  local ka1 at1; ka1=$(ka_expired); at1=$(agent_timeouts)

  # Loads: count what completed and refuse a condition whose load did not run.
  local hs=0 acme=0 acme_err=0 pools=0 pool_bad=0 pool_bytes=0
  if [ -n "$target" ]; then
    for k in $(seq "$TLS_PROCS"); do
      local n; n=$(awk '/connections in [0-9.]+ real seconds/ {print $1; exit}' "$d/stime$k.log")
      [ -n "$n" ] || die "openssl s_time #$k did not report: $(tail -5 "$d/stime$k.log")"
      hs=$((hs + n))
    done
    acme=$(awk '/requests in/ {print $1}' "$d/wrk.log")
    acme_err=$(awk '/Non-2xx|Socket errors/ {print}' "$d/wrk.log" | tr '\n' ' ')
    pools=$(cat "$d"/pool*.log | awk '$1 == 200' | wc -l)
    pool_bad=$(cat "$d"/pool*.log | awk '$1 != 200' | wc -l)
    pool_bytes=$(cat "$d"/pool*.log | awk '$1 == 200 {print $2; exit}')
    pool_bytes=${pool_bytes:-0} acme=${acme:-0}   # the row's columns must all be there
    [ "$hs" -ge $((10 * DURATION)) ] || die "$cond: only $hs TLS handshakes completed in ${DURATION}s"
    [ "${acme:-0}" -ge $((10 * DURATION)) ] || die "$cond: only ${acme:-0} ACME responder requests completed: $(cat "$d/wrk.log")"
    case $acme_err in *Non-2xx*) die "$cond: the ACME responder did not serve the token: $(cat "$d/wrk.log")" ;; esac
    [ "$pools" -ge 1 ] || die "$cond: no /pool render completed: $(head -3 "$d"/pool1.log)"
  fi

  # BFD on the director's wire: the gaps between the agent's consecutive packets.
  tcpdump -r "$d/bfd.pcap" -n -tt 2>/dev/null > "$d/bfd.txt"
  awk -v s="$RS_IP." 'index($3, s) == 1 {print $1}' "$d/bfd.txt" > "$d/bfd.ts"
  awk -v s="$DIR_IP." 'index($3, s) == 1 {print $1}' "$d/bfd.txt" > "$d/peer.ts"
  # The peer's (keepalived's) own largest transmit gap: above 150 ms, the agent's timeout
  # is the peer's silence, not the agent's.
  local pgmax; pgmax=$(awk 'NR > 1 {g = ($1 - prev) * 1000; if (g > m) m = g} {prev = $1} END {printf "%.3f", m}' "$d/peer.ts")
  local pk; pk=$(wc -l < "$d/bfd.ts")
  [ "$pk" -ge $((10 * DURATION)) ] || die "$cond: only $pk BFD packets captured from the agent"
  awk 'NR > 1 {printf "%.3f\n", ($1 - prev) * 1000} {prev = $1}' "$d/bfd.ts" | sort -n > "$d/gaps"
  local gmax gp99
  gmax=$(tail -1 "$d/gaps")
  # Where the largest gap began, in seconds from the first packet captured.
  local gat; gat=$(awk 'NR == 1 {t0 = $1} NR > 1 {g = $1 - prev; if (g > m) {m = g; at = prev - t0}} {prev = $1} END {printf "%.1f", at}' "$d/bfd.ts")
  gp99=$(awk '{a[NR] = $1} END {i = int(NR * 0.99); if (i < 1) i = 1; print a[i]}' "$d/gaps")
  local h a; h=$(grep '^health ' "$d/probe.txt"); a=$(grep '^agent ' "$d/probe.txt")
  [ -n "$h" ] && [ -n "$a" ] || die "the probe printed nothing: $(cat "$d/probe.err")"
  # Agent CPU by thread over the condition, % of one core.
  local secs; secs=$((DURATION + 3))
  # Threads that ended within the condition (tokio's blocking pools let idle threads go)
  # leave their time only in the process's total: shown as "exited".
  # Per thread id, summed by thread name.
  local cpu; cpu=$(awk -v hz="$HZ" -v s="$secs" -v tot=$((ap1 - ap0)) '
    NR == FNR {t0[$1] = $3; next}
    {d = $3 - t0[$1]; live += d; by[$2] += d}
    END {
      for (n in by) if (by[n] > 0) printf "%s %.0f%% ", n, by[n] * 100 / hz / s
      if (tot > live) printf "exited %.0f%% ", (tot - live) * 100 / hz / s
      printf "(all %.0f%%) ", tot * 100 / hz / s
    }' "$d/ticks0" "$d/ticks1")
  local ccpu; ccpu=$(awk -v hz="$HZ" -v s="$secs" -v d=$((cp1 - cp0)) 'BEGIN {printf "%.0f%%", d * 100 / hz / s}')
  echo "$round $cond $hs $acme $pools $pool_bytes $pk $gmax $gp99 $((ka1 - ka0)) $(awk -v a="$at1" -v b="$at0" 'BEGIN {print a - b}') $(echo "$h" | cut -d' ' -f2-) $(echo "$a" | cut -d' ' -f2-) $ccpu $pgmax | $cpu" >> "$WORK/rows"
  {
    echo "-- round $round, $cond: handshakes $hs, ACME requests $acme ${acme_err:+($acme_err)}, /pool renders $pools (failed $pool_bad), BFD packets $pk, gap max $gmax ms (at +${gat} s) p99 $gp99 ms"
    echo "   probe (n fail p50 p99 max, ms): $h | $a"
    echo "   keepalived's own largest transmit gap: $pgmax ms; client TIME_WAIT sockets at the end: $tw"
    echo "   measured agent CPU by thread: $cpu; control agent: $ccpu"
    if [ -n "$target" ]; then
      echo "   top -H at mid-condition (busiest threads):"
      awk '/^ *PID/ {s = NR} {l[NR] = $0} END {for (i = s; i <= s + 10 && i <= NR; i++) print "     " l[i]}' "$d/top.txt"
    fi
  }
  if [ -n "$cns" ]; then ip netns del "$cns"; fi
}

echo "== planes under a client flood ($(date -u '+%F %H:%M UTC'), $(nproc) cores, $("$BIN" --version), load average $(cut -d' ' -f1-3 /proc/loadavg))"
echo "   DURATION=${DURATION}s per condition, RUNS=$RUNS, TLS_PROCS=$TLS_PROCS, ACME_CONNS=$ACME_CONNS, POOL_LOOPS=$POOL_LOOPS, $PEERS peers"
: > "$WORK/rows"
KA_START=$(ka_expired) AT_START=$(agent_timeouts)
for r in $(seq "$RUNS"); do
  # The two loaded conditions alternate their order from round to round.
  if [ $((r % 2)) = 1 ]; then order="idle agent control"; else order="idle control agent"; fi
  for c in $order; do condition $c "$r"; done
done

echo
echo "| round | condition | TLS handshakes/s | ACME req/s | /pool renders | BFD pkts | BFD gap max | BFD gap p99 | timeouts (keepalived / agent) | keepalived's gap max | /health p50 / p99 | agent-check p50 / p99 | agent CPU by thread | control agent CPU |"
echo "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"
while read -r rd cond hs acme pools pbytes pk gmax gp99 kat agt hn hf h50 h99 hmax an af a50 a99 amax ccpu pgmax _ cpu; do
  printf '| %s | %s | %s | %s | %s | %s | %s ms | %s ms | %s / %s | %s ms | %s / %s ms | %s / %s ms | %s| %s |\n' \
    "$rd" "$cond" "$((hs / DURATION))" "$((${acme:-0} / DURATION))" "$pools" "$pk" "$gmax" "$gp99" "$kat" "$agt" "$pgmax" \
    "$h50" "$h99" "$a50" "$a99" "$cpu" "$ccpu"
  [ "$hf" = 0 ] && [ "$af" = 0 ] || echo "   (round $rd $cond: probe failures: /health $hf, agent-check $af)"
done < "$WORK/rows"

echo "BFD timeouts over the whole run (between conditions too): keepalived $(( $(ka_expired) - KA_START )), agent $(awk -v a="$(agent_timeouts)" -v b="$AT_START" 'BEGIN {print a - b}')"
echo
fail=0
for r in $(seq "$RUNS"); do
  read -r _ _ _ _ _ _ _ agmax _ akat aagt _ _ _ ah99 _ < <(awk -v r="$r" '$1 == r && $2 == "agent"' "$WORK/rows")
  read -r _ _ _ _ _ _ _ cgmax _ _ _ _ _ _ ch99 _ < <(awk -v r="$r" '$1 == r && $2 == "control"' "$WORK/rows")
  v1=$(awk -v a="$akat" -v b="$aagt" 'BEGIN {print (a == 0 && b == 0) ? "PASS" : "FAIL"}')
  v2=$(awk -v a="$agmax" -v c="$cgmax" 'BEGIN {print (a <= 1.2 * c) ? "PASS" : "FAIL"}')
  v3=$(awk -v a="$ah99" -v c="$ch99" 'BEGIN {print (a <= 1.5 * c) ? "PASS" : "FAIL"}')
  echo "round $r: no BFD timeouts under the flood (keepalived $akat, agent $aagt): $v1"
  echo "round $r: largest BFD gap $agmax ms <= 1.2 x control's $cgmax ms ($(awk -v c="$cgmax" 'BEGIN {printf "%.1f", 1.2 * c}') ms): $v2"
  echo "round $r: /health p99 $ah99 ms <= 1.5 x control's $ch99 ms ($(awk -v c="$ch99" 'BEGIN {printf "%.2f", 1.5 * c}') ms): $v3"
  case "$v1$v2$v3" in *FAIL*) fail=1 ;; esac
done
[ "$fail" = 0 ] || exit 3
