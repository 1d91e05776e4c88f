#!/usr/bin/env bash
# Installs, from Debian 12 packages, everything the lab tests and the demo use.
set -euo pipefail
export DEBIAN_FRONTEND=noninteractive
apt-get update
apt-get install -y --no-install-recommends \
  iproute2 iptables arptables nftables iputils-arping iputils-ping procps socat tcpdump \
  keepalived haproxy globus-gridftp-server-progs globus-gass-copy-progs \
  pebble certbot openssl ca-certificates curl systemd rpm dpkg-dev bc cmake python3 wrk
# Uploads through the redirect (WebDAV server and clients), GSI (grid proxies), XRootD.
apt-get install -y --no-install-recommends \
  apache2 davix globus-proxy-utils globus-gsi-cert-utils-progs xrootd-server xrootd-client
# The workspace needs a current stable Rust (Debian 12's rustc 1.63 is too old). CI machines
# have one; elsewhere install it with rustup once.
if ! command -v cargo >/dev/null 2>&1 && [ ! -x "$HOME/.cargo/bin/cargo" ]; then
  curl --proto '=https' --tlsv1.2 -sSf https://sh.rustup.rs | sh -s -- -y --profile minimal
  echo "Rust installed in ~/.cargo/bin: run 'source ~/.cargo/env' or open a new shell"
fi
