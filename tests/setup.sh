#!/usr/bin/env bash
# Installs, from Debian 12 packages, everything the lab tests and the demo use.
set -euo pipefail
export DEBIAN_FRONTEND=noninteractive
apt-get update
apt-get install -y --no-install-recommends \
  iproute2 iptables arptables nftables iputils-arping iputils-ping procps socat tcpdump \
  keepalived haproxy globus-gridftp-server-progs globus-gass-copy-progs \
  pebble certbot openssl ca-certificates curl systemd rpm dpkg-dev bc cmake python3 wrk
