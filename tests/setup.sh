#!/usr/bin/env bash
# Installs, from Debian 12 packages, everything the lab tests and the demo use.
set -euo pipefail
export DEBIAN_FRONTEND=noninteractive
apt-get update
apt-get install -y --no-install-recommends \
  iproute2 iptables arptables nftables iputils-arping iputils-ping procps socat tcpdump \
  keepalived haproxy globus-gridftp-server-progs globus-gass-copy-progs xrootd-server xrootd-client \
  pebble certbot openssl ca-certificates curl systemd rpm dpkg-dev bc cmake python3 wrk \
  prometheus dbus libxml2-utils file binutils libc6-dev \
  qemu-system-x86 linux-image-amd64 busybox-static ipvsadm kmod xz-utils
# FRR: its bfdd is the second BFD implementation the agent is tested against, run by hand in
# a lab namespace. Masked first like firewalld below: on a host booted with systemd the
# package would start zebra and its friends on this machine's own network.
if [ -d /run/systemd/system ]; then systemctl mask frr.service; fi
apt-get install -y --no-install-recommends frr
# firewalld: the tests run their own daemon in a network namespace with a private D-Bus. On a
# host booted with systemd the package would start it and firewall this machine: mask it
# first, so its postinst cannot start it.
if [ -d /run/systemd/system ]; then systemctl mask firewalld.service; fi
apt-get install -y --no-install-recommends firewalld
# Uploads through the redirect (WebDAV server and clients), GSI (grid proxies).
apt-get install -y --no-install-recommends \
  apache2 davix globus-proxy-utils globus-gsi-cert-utils-progs
# XRootD's HTTP/WebDAV plugin (XrdHttp, xrootd-server-plugins) and its security plugins
# (sss, xrootd-plugins): the xrootd and webdav checks against the real server.
apt-get install -y --no-install-recommends xrootd-server-plugins xrootd-plugins
# The WLCG lab (wlcg_transfers.rs, wlcg_tokens.rs, wlcg_macaroons.rs): XRootD with XrdHttp,
# HTTP third-party copy, scitokens and macaroons on the nodes; scitokens-cpp's tools mint
# tokens; xrdcp, gfal-copy and davix are the clients. gfal-copy starts with
# #!/usr/bin/python (python-is-python3) and needs gfal2-plugin-file for file:// ends.
apt-get install -y --no-install-recommends \
  xrootd-scitokens-plugins xrootd-client-plugins scitokens-cpp \
  gfal2-util-scripts gfal2-plugin-http gfal2-plugin-xrootd gfal2-plugin-file python-is-python3
# The pool page in a real browser (headless, inside a lab namespace).
apt-get install -y --no-install-recommends chromium
# The workspace needs a current stable Rust (Debian 12's rustc 1.63 is too old). CI machines
# have one; elsewhere install it with rustup once.
if ! command -v cargo >/dev/null 2>&1 && [ ! -x "$HOME/.cargo/bin/cargo" ]; then
  curl --proto '=https' --tlsv1.2 -sSf https://sh.rustup.rs | sh -s -- -y --profile minimal
  echo "Rust installed in ~/.cargo/bin: run 'source ~/.cargo/env' or open a new shell"
fi
