#!/usr/bin/env bash
# Builds lvs-node and lvs-cert as static executables (glibc linked in, no interpreter, no
# shared library), so that one package runs on EL8 (glibc 2.28), EL9, EL10 and Debian:
#     packaging/build-static.sh [--profile release|debug]
# Prints the directory that holds the two binaries: TARGET_DIR/<host triple>/<profile>.
#
# How: the gnu target with `-C target-feature=+crt-static`. `--target` is given explicitly
# so that RUSTFLAGS reach only the two binaries, not the build scripts and proc-macros
# (which must stay dynamic to be loaded by cargo). No extra rustup target is needed (musl
# is not assumed to be installed); the C parts (aws-lc) are built by the cc crate, which
# sees crt-static and builds for it. glibc >= 2.34 has the `files` and `dns` NSS services
# built in, so getaddrinfo() works from /etc/hosts and DNS without loading any library.
set -euo pipefail
REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
PROFILE=release
while [ $# -gt 0 ]; do
    case "$1" in
    --profile) PROFILE=${2:-}; shift 2 ;;
    *) echo "usage: $0 [--profile release|debug]" >&2; exit 2 ;;
    esac
done
case "$PROFILE" in
release) flag=(--release) ;;
debug) flag=() ;;
*) echo "usage: $0 [--profile release|debug]" >&2; exit 2 ;;
esac
TRIPLE=$(rustc -vV | sed -n 's/^host: //p')
case "$TRIPLE" in
*-linux-gnu) ;;
*) echo "error: static builds need a *-linux-gnu host, this is $TRIPLE" >&2; exit 1 ;;
esac
(cd "$REPO" && RUSTFLAGS="${RUSTFLAGS:-} -C target-feature=+crt-static" \
    cargo build "${flag[@]}" --target "$TRIPLE" -p lvs-node -p lvs-cert >&2)
echo "${CARGO_TARGET_DIR:-$REPO/target}/$TRIPLE/$PROFILE"
