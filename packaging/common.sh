# Shared by build-deb.sh and build-rpm.sh (sourced, not run): option parsing, the cargo
# build and the staged file tree. Both packages install the same tree, so it is built once,
# here, and the .deb and the RPM cannot drift apart.

set -euo pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
PROFILE=release
BUILD=yes
LINK=static
OUT="$REPO/target/packages"

usage() {
    cat >&2 <<EOF
usage: $0 [--profile release|debug] [--link static|dynamic] [--no-build] [--out DIR]
  --profile P   which cargo profile's binaries to package (default: release)
  --link L      static (default): the binaries of packaging/build-static.sh, which run on
                EL8, EL9, EL10 and Debian alike; dynamic: the plain cargo build's, which
                need the build host's glibc or newer
  --no-build    package the binaries already in the target dir (the tests use this, after
                the workspace build, so no cargo process runs inside \`cargo test\`)
  --out DIR     where the package goes (default: target/packages)
EOF
    exit 2
}

parse_args() {
    while [ $# -gt 0 ]; do
        case "$1" in
        --profile) PROFILE=${2:-}; shift 2 ;;
        --link) LINK=${2:-}; shift 2 ;;
        --no-build) BUILD=no; shift ;;
        --out) OUT=${2:-}; shift 2 ;;
        *) usage ;;
        esac
    done
    case "$PROFILE" in release | debug) ;; *) usage ;; esac
    case "$LINK" in static | dynamic) ;; *) usage ;; esac
    [ -n "$OUT" ] || usage
    mkdir -p "$OUT"
    OUT=$(cd "$OUT" && pwd)
    TARGET_DIR=${CARGO_TARGET_DIR:-$REPO/target}
    # xtask (man pages, completions) runs here at build time only: the plain dev build, which
    # the workspace build already made (a release build of it would compile both crates a
    # third time).
    XTASK="$TARGET_DIR/debug/xtask"
    if [ "$LINK" = static ]; then
        BIN="$TARGET_DIR/$(rustc -vV | sed -n 's/^host: //p')/$PROFILE"
    else
        BIN="$TARGET_DIR/$PROFILE"
    fi
}

# Builds the two binaries (static unless --link dynamic) and the man/completion generator.
build() {
    if [ "$BUILD" = yes ]; then
        local flag=()
        [ "$PROFILE" = release ] && flag=(--release)
        if [ "$LINK" = static ]; then
            "$REPO/packaging/build-static.sh" --profile "$PROFILE" >/dev/null
            (cd "$REPO" && cargo build -p xtask)
        else
            (cd "$REPO" && cargo build "${flag[@]}" -p lvs-node -p lvs-cert && cargo build -p xtask)
        fi
    fi
    for b in "$BIN/lvs-node" "$BIN/lvs-cert" "$XTASK"; do
        [ -x "$b" ] || {
            local how="cargo build"
            [ "$LINK" = static ] && [ "$b" != "$XTASK" ] && how="packaging/build-static.sh --profile $PROFILE"
            echo "error: $b missing: run $how first, or drop --no-build" >&2
            exit 1
        }
    done
    if [ "$LINK" = static ]; then
        # A static package with a dynamic binary inside would break on EL8: refuse it.
        for b in lvs-node lvs-cert; do
            if objdump -p "$BIN/$b" | grep -qE '^ *(NEEDED|INTERP)'; then
                echo "error: $BIN/$b is not static (objdump -p shows NEEDED/INTERP): rebuild with packaging/build-static.sh" >&2
                exit 1
            fi
        done
    fi
    # The package version is the binary's own (`lvs-node 0.1.0`), not a second copy.
    VERSION=$("$BIN/lvs-node" --version | awk '{print $2}')
    [ -n "$VERSION" ] || { echo "error: cannot read the version from lvs-node --version" >&2; exit 1; }
    # Reproducible dates in man pages and archives: the last commit's time.
    SOURCE_DATE_EPOCH=$(git -C "$REPO" log -1 --format=%ct 2>/dev/null || date +%s)
    export SOURCE_DATE_EPOCH
}

# stage DEST ZSH_DIR: the installed tree (uses the caller's temp dir $WORK). ZSH_DIR differs: Debian's zsh reads
# /usr/share/zsh/vendor-completions, Fedora/EL's /usr/share/zsh/site-functions.
stage() {
    # Generated into the caller's $WORK, which its EXIT trap removes even on failure.
    local dest=$1 zshdir=$2 assets="$WORK/assets"
    "$XTASK" assets "$assets"

    install -d -m 0755 "$dest/usr/bin" "$dest/usr/lib/systemd/system" "$dest/usr/lib/tmpfiles.d" \
        "$dest/etc/lvs-node" "$dest/usr/share/man/man1" "$dest/usr/share/doc/lvs-node" \
        "$dest/usr/share/bash-completion/completions" "$dest$zshdir" \
        "$dest/usr/share/fish/vendor_completions.d"
    # State directories are root-only (tmpfiles.d creates them the same way at boot).
    install -d -m 0700 "$dest/var/lib/lvs-node" "$dest/var/lib/lvs-cert"

    # Debug info stripped: a debug build's 80 MB binary packs to a few MB.
    for b in lvs-node lvs-cert; do
        install -m 0755 "$BIN/$b" "$dest/usr/bin/$b"
        strip --strip-debug "$dest/usr/bin/$b"
    done
    install -m 0644 "$REPO"/systemd/lvs-node.service "$REPO"/systemd/lvs-cert-renew.service \
        "$REPO"/systemd/lvs-cert-renew.timer "$dest/usr/lib/systemd/system/"
    install -m 0644 "$REPO/systemd/lvs-node.tmpfiles" "$dest/usr/lib/tmpfiles.d/lvs-node.conf"
    # GridFTP and XRootD start after the agent has converged (docs/packaging.md): a vendor
    # drop-in for each, in /usr/lib so that a file of the same name in /etc masks it.
    for u in globus-gridftp-server.service xrootd@.service cmsd@.service; do
        install -d -m 0755 "$dest/usr/lib/systemd/system/$u.d"
        install -m 0644 "$REPO/systemd/after-lvs-node.conf" "$dest/usr/lib/systemd/system/$u.d/lvs-node.conf"
    done
    install -m 0644 "$REPO/packaging/node.toml.example" "$dest/etc/lvs-node/node.toml"
    install -m 0644 "$REPO/docs/packaging.md" "$dest/usr/share/doc/lvs-node/packaging.md"
    install -m 0644 "$REPO/docs/monitoring.md" "$REPO/docs/metrics.md" "$dest/usr/share/doc/lvs-node/"
    # Prometheus alert rules (docs/monitoring.md) and the firewalld services (docs/packaging.md):
    # shipped, never loaded or enabled by the package.
    install -d -m 0755 "$dest/usr/share/lvs-node/prometheus" "$dest/usr/lib/firewalld/services"
    install -m 0644 "$REPO/packaging/prometheus/lvs-node.rules.yml" "$dest/usr/share/lvs-node/prometheus/"
    install -m 0644 "$REPO/packaging/firewalld/lvs-node-gridftp.xml" \
        "$REPO/packaging/firewalld/lvs-node-report.xml" "$dest/usr/lib/firewalld/services/"

    # gzip -n: no name or time stamp in the header, so rebuilds are identical.
    for m in "$assets"/man/*.1; do
        gzip -9n <"$m" >"$dest/usr/share/man/man1/$(basename "$m").gz"
        chmod 0644 "$dest/usr/share/man/man1/$(basename "$m").gz"
    done
    for f in "$assets"/completions/bash/*; do install -m 0644 "$f" "$dest/usr/share/bash-completion/completions/"; done
    for f in "$assets"/completions/zsh/*; do install -m 0644 "$f" "$dest$zshdir/"; done
    for f in "$assets"/completions/fish/*; do install -m 0644 "$f" "$dest/usr/share/fish/vendor_completions.d/"; done
}
