#!/usr/bin/env bash
# Benchmarks for the upload redirector (docs/benchmarks.md, section "Uploads: redirect").
# Run as root from the workspace root:  tests/bench/redirect.sh
#   LVS_NODE=path   binary to measure (default: target/release/lvs-node, built if missing)
#   SIZE_MIB=64     upload size       RATE=200mbit  the director link's shaped rate
#   RUNS=3          uploads per mode  DURATION=10   seconds of wrk load
#
# Part 1, uploads: the same file and client, through the director to the node (baseline:
# apache2 WebDAV listening on the VIP) and with the redirect (307 from lvs-node on the VIP,
# then straight to the node's real IP). The director's egress is shaped with tc to stand
# for a director busier than the nodes. The director is the nftables MAC-rewrite
# EMULATION of LVS-DR (the machine's kernel has no IPVS); it forwards exactly like IPVS-DR
# for one real server, and its nft counter gives the bytes it carried.
# Part 2, the redirector alone: requests per second and latency on one core (wrk on the
# other), side by side with HAProxy's `http-request redirect prefix` on the same core.
# Everything runs in private network namespaces; the host's network is not touched.
set -euo pipefail
cd "$(dirname "$0")/../.."
BIN=${LVS_NODE:-target/release/lvs-node}
SIZE_MIB=${SIZE_MIB:-64}
RATE=${RATE:-200mbit}
RUNS=${RUNS:-3}
DURATION=${DURATION:-10}
if [ ! -x "$BIN" ]; then cargo build --release -p lvs-node; fi
P=lvrb$$
WORK=$(mktemp -d /tmp/lvrbench.XXXXXX)
chmod 755 "$WORK"   # apache2 runs as www-data
PIDS=()
cleanup() {
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
  sleep 0.3
  for n in cl dir rs br; do ip netns del "$P$n" 2>/dev/null || true; done
  rm -rf "$WORK"
}
trap cleanup EXIT
VIP=192.0.2.100
ip netns add "${P}br"; ip netns exec "${P}br" ip link add br0 type bridge; ip netns exec "${P}br" ip link set br0 up
i=0
for spec in cl:192.0.2.1:02:00:00:00:01:01 dir:192.0.2.2:02:00:00:00:01:02 rs:192.0.2.11:02:00:00:00:01:11; do
  i=$((i+1)); n=${spec%%:*}; rest=${spec#*:}; ip=${rest%%:*}; mac=${rest#*:}
  ip netns add "$P$n"
  ip netns exec "$P$n" ip link set lo up
  ip netns exec "$P$n" sysctl -qw net.ipv6.conf.all.disable_ipv6=1
  ip link add name eth0 netns "$P$n" address "$mac" type veth peer name p$i netns "${P}br"
  ip netns exec "${P}br" ip link set p$i master br0 up
  ip netns exec "$P$n" ip addr add "$ip/24" dev eth0
  ip netns exec "$P$n" ip link set eth0 up
done
CL() { ip netns exec "${P}cl" "$@"; }
DIR() { ip netns exec "${P}dir" "$@"; }
RS() { ip netns exec "${P}rs" "$@"; }
DIR ip addr add $VIP/32 dev eth0
DIR nft -f - <<NFT
table netdev lvsdr {
  chain in {
    type filter hook ingress device "eth0" priority 0; policy accept;
    ip daddr $VIP tcp dport { 8000, 8001 } counter ether saddr set 02:00:00:00:01:02 ether daddr set 02:00:00:00:01:11 fwd to "eth0"
  }
}
NFT
DIR tc qdisc add dev eth0 root tbf rate "$RATE" burst 256kb latency 100ms

# The node: lvs-node puts the VIP on lo (sysctl ARP method) and redirects VIP:8000;
# apache2 WebDAV listens on the real IP (redirect target) and on the VIP:8001 (baseline).
mkdir -p "$WORK/data" "$WORK/run"; chown www-data:www-data "$WORK/data" "$WORK/run"
cat > "$WORK/node.toml" <<TOML
interface = "eth0"
real_ip = "192.0.2.11"
state_dir = "$WORK/state"
[[vip]]
address = "$VIP"
ports = [8000, 8001]
[daemon]
control_socket = "$WORK/control.sock"
[report]
http = "192.0.2.11:8080"
[[redirect]]
listen = "$VIP:8000"
target = "http://192.0.2.11:8002"
TOML
RS taskset -c 0 "$BIN" -c "$WORK/node.toml" run 2>"$WORK/agent.log" &
PIDS+=($!)
cat > "$WORK/httpd.conf" <<CONF
ServerRoot $WORK
ServerName rs.bench
LoadModule mpm_event_module /usr/lib/apache2/modules/mod_mpm_event.so
LoadModule authz_core_module /usr/lib/apache2/modules/mod_authz_core.so
LoadModule dav_module /usr/lib/apache2/modules/mod_dav.so
LoadModule dav_fs_module /usr/lib/apache2/modules/mod_dav_fs.so
User www-data
Group www-data
Listen 192.0.2.11:8002
Listen $VIP:8001
PidFile $WORK/run/httpd.pid
ErrorLog $WORK/error.log
DAVLockDB $WORK/run/davlock
DocumentRoot $WORK/data
<Directory $WORK/data>
  DAV On
  Require all granted
</Directory>
CONF
for _ in $(seq 100); do RS ip -o addr show dev lo | grep -q "$VIP" && break; sleep 0.05; done
RS apache2 -f "$WORK/httpd.conf" -DFOREGROUND &
PIDS+=($!)
for _ in $(seq 100); do CL curl -s -o /dev/null -m 1 http://192.0.2.11:8002/ && break; sleep 0.1; done
CL head -c $((SIZE_MIB << 20)) /dev/urandom > "$WORK/payload"

dir_bytes() { DIR nft list table netdev lvsdr | sed -n 's/.*counter packets [0-9]* bytes \([0-9]*\).*/\1/p'; }
echo "== upload redirect benchmarks ($(date -u +%F), $(nproc) cores, $("$BIN" --version))"
echo "-- uploads of $SIZE_MIB MiB, director egress shaped to $RATE (median of $RUNS; measured)"
for mode in through redirect; do
  times=()
  b0=$(dir_bytes)
  for r in $(seq "$RUNS"); do
    if [ $mode = through ]; then url="http://$VIP:8001/t$r"; else url="http://$VIP:8000/r$r"; fi
    out=$(CL curl -sS -L -T "$WORK/payload" -o "$WORK/reply" -w '%{http_code} %{time_total}' "$url")
    t=${out#* }
    cmp -s "$WORK/payload" "$WORK/data/${url##*/}" || {
      echo "upload $url not intact (HTTP ${out% *}): $(head -c 300 "$WORK/reply"); $(tail -3 "$WORK/error.log")" >&2; exit 1; }
    times+=("$t")
  done
  b1=$(dir_bytes)
  med=$(printf '%s\n' "${times[@]}" | sort -n | sed -n "$(( (RUNS + 1) / 2 ))p")
  mbps=$(echo "scale=1; $SIZE_MIB * 8 * 1.048576 / $med" | bc)
  per=$(( (b1 - b0) / RUNS ))
  printf '%-9s median %6.2f s  %7s Mbit/s  director bytes per upload %12d\n' "$mode" "$med" "$mbps" "$per"
done

# wrk from the node's namespace on CPU 1 against URL, its summary prefixed with LABEL; fails
# loudly when wrk fails or reports no throughput.
run_wrk() {
  if ! RS taskset -c 1 wrk -t1 -c50 -d"${DURATION}s" --latency "$2" >"$WORK/wrk.txt" 2>&1; then
    echo "error: wrk against $2 failed:" >&2; cat "$WORK/wrk.txt" >&2; exit 1
  fi
  if ! grep -q "Requests/sec" "$WORK/wrk.txt"; then
    echo "error: wrk against $2 printed no Requests/sec:" >&2; cat "$WORK/wrk.txt" >&2; exit 1
  fi
  grep -E "Requests/sec|50%|99%|Non-2xx|Socket errors" "$WORK/wrk.txt" | sed "s/^/$1 /"
}
echo "-- the redirector alone: wrk -t1 -c50 ${DURATION}s against VIP:8000 (server on CPU 0, wrk on CPU 1; measured)"
run_wrk "lvs-node " "http://$VIP:8000/store/file?x=1"
cat > "$WORK/haproxy.cfg" <<HCFG
global
  maxconn 4096
defaults
  mode http
  timeout client 5s
  timeout connect 5s
  timeout server 5s
  option httpclose
frontend redir
  bind $VIP:8003
  http-request redirect prefix http://192.0.2.11:8002 code 307
HCFG
RS taskset -c 0 haproxy -f "$WORK/haproxy.cfg" -db >/dev/null 2>&1 &
PIDS+=($!)
for _ in $(seq 100); do RS curl -s -o /dev/null "http://$VIP:8003/" && break; sleep 0.05; done
run_wrk "haproxy  " "http://$VIP:8003/store/file?x=1"
echo "(wrk counts 3xx as Non-2xx: every answer is a 307 in both runs)"
