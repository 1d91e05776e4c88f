#!/usr/bin/env bash
# Benchmark: `lvs-node up` + `down` wall time for 1, 16 and 256 VIPs against the seeds' hand
# procedure as a shell script (ip addr add per VIP, then sysctl -w or arptables rules +
# arptables-save), side by side in the same run, inside a throwaway network namespace.
# Usage: tests/bench/dataplane.sh [RUNS]     (needs root; builds the release binary)
#   LINK=static (default)  the build the packages ship (packaging/build-static.sh)
#   LINK=dynamic           the plain `cargo build --release` binary, for comparison
#   LVS_NODE=PATH          measure that binary instead (nothing is built)
# After the table: the process-start floor, the same clock on single commands.
set -euo pipefail
cd "$(dirname "$0")/../.."
RUNS=${1:-20}
LINK=${LINK:-static}
if [ -n "${LVS_NODE:-}" ]; then
  BIN=$(realpath "$LVS_NODE"); LINK="given ($LVS_NODE)"; export BIN LINK
elif [ -z "${LVS_BENCH_INNER:-}" ]; then
  case "$LINK" in
  static) BIN=$(packaging/build-static.sh --profile release)/lvs-node ;;
  dynamic) cargo build --release -q -p lvs-node; BIN=$PWD/target/release/lvs-node ;;
  *) echo "error: LINK must be static or dynamic, not '$LINK'" >&2; exit 2 ;;
  esac
  export BIN LINK
fi
NS=lvsbench$$
if [ -n "${LVS_BENCH_INNER:-}" ]; then WORK=$LVS_BENCH_WORK; else
WORK=$(mktemp -d)
cleanup() { ip netns del "$NS" 2>/dev/null || true; rm -rf "$WORK"; }
trap cleanup EXIT
ip netns add "$NS"
ip -n "$NS" link set lo up
ip -n "$NS" link add eth0 type veth peer name eth1; ip -n "$NS" link set eth1 up
ip -n "$NS" addr add 192.0.2.11/24 dev eth0
ip -n "$NS" link set eth0 up
fi
# Timed commands run inside the namespace the way an admin runs them on a host: the
# `ip netns exec` cost is paid once for the whole loop, not per command.
X() { "$@"; }
if [ -z "${LVS_BENCH_INNER:-}" ]; then
  export LVS_BENCH_INNER=1 LVS_BENCH_WORK=$WORK
  ip netns exec "$NS" bash "$0" "$RUNS"
  exit $?
fi

vips() { # N -> list of VIPs 10.1.x.y (inside the namespace only)
  local n=$1 i
  for ((i = 0; i < n; i++)); do echo "10.1.$((i / 250)).$((i % 250 + 1))"; done
}

write_cfg() { # N method device
  local f=$WORK/node-$1-$2.toml
  { echo "interface = \"eth0\""; echo "state_dir = \"$WORK/state\""; echo "[arp]"; echo "method = \"$2\"";
    for v in $(vips "$1"); do printf '[[vip]]\naddress = "%s"\ndevice = "%s"\n' "$v" "$3"; done; } > "$f"
  echo "$f"
}

# The seeds' procedure (INFN sysctl variant / OSG arptables variant), as a script.
write_script() { # N method device
  local up=$WORK/up-$1-$2.sh down=$WORK/down-$1-$2.sh v
  { echo "set -e"
    if [ "$2" = sysctl ]; then
      echo "sysctl -qw net.ipv4.conf.all.arp_ignore=1 >/dev/null; sysctl -qw net.ipv4.conf.all.arp_announce=2 >/dev/null"
      echo "sysctl -qw net.ipv4.conf.eth0.arp_ignore=1 >/dev/null; sysctl -qw net.ipv4.conf.eth0.arp_announce=2 >/dev/null"
    else
      for v in $(vips "$1"); do echo "arptables -A INPUT -d $v -j DROP"; echo "arptables -A OUTPUT -s $v -j mangle --mangle-ip-s 192.0.2.11"; done
      echo "arptables-save > $WORK/arptables.saved"
    fi
    for v in $(vips "$1"); do echo "ip addr add $v/32 dev $3"; done; } > "$up"
  { echo "set -e"
    for v in $(vips "$1"); do echo "ip addr del $v/32 dev $3"; done
    if [ "$2" = sysctl ]; then
      echo "sysctl -qw net.ipv4.conf.all.arp_ignore=0 >/dev/null; sysctl -qw net.ipv4.conf.all.arp_announce=0 >/dev/null"
      echo "sysctl -qw net.ipv4.conf.eth0.arp_ignore=0 >/dev/null; sysctl -qw net.ipv4.conf.eth0.arp_announce=0 >/dev/null"
    else
      for v in $(vips "$1"); do echo "arptables -D INPUT -d $v -j DROP"; echo "arptables -D OUTPUT -s $v -j mangle --mangle-ip-s 192.0.2.11"; done
    fi; } > "$down"
  echo "$up $down"
}

median() { sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }

echo "lvs-node: $BIN ($LINK build; $("$BIN" --version)), $RUNS runs per cell"
printf '%-10s %5s | %12s %12s | %12s %12s | %7s %7s\n' method vips "lvs-node up" "script up" "lvs-node down" "script down" "up x" "down x"
# nftables installs the same ARP rules as the OSG arptables procedure, so that script is
# its baseline.
for method in sysctl nftables arptables; do
  smethod=$method; [ $method = nftables ] && smethod=arptables
  dev=lo
  for n in 1 16 256; do
    cfg=$(write_cfg $n $method $dev); read -r sup sdown < <(write_script $n $smethod $dev)
    tu=(); td=(); su=(); sd=()
    for ((r = 0; r < RUNS; r++)); do
      a=${EPOCHREALTIME/./}; X "$BIN" -q --config "$cfg" up >/dev/null; b=${EPOCHREALTIME/./}; X "$BIN" -q --config "$cfg" down >/dev/null; c=${EPOCHREALTIME/./}
      tu+=($((b - a))); td+=($((c - b)))
      a=${EPOCHREALTIME/./}; X sh "$sup"; b=${EPOCHREALTIME/./}; X sh "$sdown"; c=${EPOCHREALTIME/./}
      su+=($((b - a))); sd+=($((c - b)))
    done
    mu=$(printf '%s\n' "${tu[@]}" | median); md=$(printf '%s\n' "${td[@]}" | median)
    ms=$(printf '%s\n' "${su[@]}" | median); msd=$(printf '%s\n' "${sd[@]}" | median)
    printf '%-10s %5d | %10.2fms %10.2fms | %10.2fms %10.2fms | %6.1fx %6.1fx\n' $method $n \
      "$(echo "$mu/1000" | bc -l)" "$(echo "$ms/1000" | bc -l)" "$(echo "$md/1000" | bc -l)" "$(echo "$msd/1000" | bc -l)" \
      "$(echo "$ms/$mu" | bc -l)" "$(echo "$msd/$md" | bc -l)"
  done
done

# The floor: what one process start costs, with the same clock (median of RUNS).
floor() { # label command...
  local t=() r a b
  for ((r = 0; r < RUNS; r++)); do
    a=${EPOCHREALTIME/./}; "${@:2}" >/dev/null; b=${EPOCHREALTIME/./}; t+=($((b - a)))
  done
  printf '%-40s %8.2f ms\n' "$1" "$(echo "$(printf '%s\n' "${t[@]}" | median)/1000" | bc -l)"
}
echo "-- process start floor (median of $RUNS, $LINK build of lvs-node)"
floor "/bin/true" /bin/true
floor "sysctl -n net.ipv4.conf.all.arp_ignore" sysctl -n net.ipv4.conf.all.arp_ignore
floor "ip -V" ip -V
floor "lvs-node --version" "$BIN" --version
cfg=$(write_cfg 16 sysctl lo)
X "$BIN" -q --config "$cfg" up >/dev/null
floor "lvs-node status (16 VIPs up, sysctl)" "$BIN" -q --config "$cfg" status
X "$BIN" -q --config "$cfg" down >/dev/null
# The nftables costs the notes in docs/benchmarks.md cite: one `nft` process that only
# lists, one `nft -f` that creates an ARP table (what `up` does when none exists), and
# the delete of that table, which waits for the kernel's RCU grace period.
echo "-- nftables costs (median of $RUNS)"
floor "nft list tables" nft list tables
nftfile=$WORK/arp.nft
printf 'table arp lvsbench_floor {\n  chain input { type filter hook input priority 0; }\n}\n' >"$nftfile"
t_add=() t_del=()
for ((r = 0; r < RUNS; r++)); do
  a=${EPOCHREALTIME/./}; nft -f "$nftfile"; b=${EPOCHREALTIME/./}
  nft delete table arp lvsbench_floor; c=${EPOCHREALTIME/./}
  t_add+=($((b - a))); t_del+=($((c - b)))
done
printf '%-40s %8.2f ms\n' "nft -f (create an arp table)" "$(echo "$(printf '%s\n' "${t_add[@]}" | median)/1000" | bc -l)"
printf '%-40s %8.2f ms\n' "nft delete table (RCU grace period)" "$(echo "$(printf '%s\n' "${t_del[@]}" | median)/1000" | bc -l)"
