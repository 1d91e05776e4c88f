#!/usr/bin/env bash
# Builds the lvs-node RPM for EL8, EL9 and EL10 (same files as the .deb):
#     packaging/build-rpm.sh                      # release build -> target/packages/
#     packaging/build-rpm.sh --profile debug --no-build --out DIR
# Needs: cargo, rpmbuild (Debian: apt-get install rpm; EL: dnf install rpm-build),
# binutils (strip). The binaries are static (packaging/build-static.sh): one RPM, built
# anywhere, runs on EL8 (glibc 2.28) and later. With --link dynamic they need the build
# host's glibc, and rpm records that (libc.so.6(GLIBC_2.34) from Debian 12 or EL9).
. "$(dirname "$0")/common.sh"
parse_args "$@"
build

WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
stage "$WORK/stage" /usr/share/zsh/site-functions
# /run is a tmpfs: the package only owns /run/lvs-node as a %ghost; tmpfiles creates it.
install -d -m 0700 "$WORK/stage/run/lvs-node"

ARCH=$(uname -m)
# _topdir in the temp dir: nothing lands in ~/rpmbuild. _build_id_links none: no
# /usr/lib/.build-id symlinks, which EL packages own per binary and would conflict.
rpmbuild -bb --quiet --target "$ARCH" \
    --define "_topdir $WORK/rpmbuild" \
    --define "_rpmdir $WORK/out" \
    --define "_build_id_links none" \
    --define "stagedir $WORK/stage" \
    --define "pkgversion $VERSION" \
    --define "use_source_date_epoch_as_buildtime 1" \
    --define "clamp_mtime_to_source_date_epoch 1" \
    "$REPO/packaging/lvs-node.spec" >&2
RPM=$(find "$WORK/out" -name 'lvs-node-*.rpm' | head -n1)
[ -n "$RPM" ] || { echo "error: rpmbuild produced no package" >&2; exit 1; }
mv "$RPM" "$OUT/"
echo "$OUT/$(basename "$RPM")"
