#!/usr/bin/env bash
# Builds the lvs-node .deb (both binaries, units, example config, man pages, completions):
#     packaging/build-deb.sh                      # release build -> target/packages/
#     packaging/build-deb.sh --profile debug --no-build --out DIR
# The binaries are static (packaging/build-static.sh) unless --link dynamic.
# Needs: cargo, dpkg-dev (dpkg-deb, dpkg-shlibdeps), binutils (strip). No fakeroot:
# `dpkg-deb --root-owner-group` records every file as root:root whoever builds it.
. "$(dirname "$0")/common.sh"
parse_args "$@"
build

WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
# debian/lvs-node/ is the layout dpkg-shlibdeps expects for the package's own files.
PKG="$WORK/debian/lvs-node"
stage "$PKG" /usr/share/zsh/vendor-completions

ARCH=$(dpkg --print-architecture)
# dpkg-shlibdeps finds the package root by its DEBIAN/ directory.
install -d -m 0755 "$PKG/DEBIAN"
# Library dependencies computed from the binaries (libc6 (>= 2.34), libgcc-s1, ...); static
# binaries (the default) have none.
DEPENDS=iproute2
if [ "$LINK" = dynamic ]; then
    printf 'Source: lvs-node\n\nPackage: lvs-node\nArchitecture: any\n' >"$WORK/debian/control"
    SHLIBS=$(cd "$WORK" && dpkg-shlibdeps -O debian/lvs-node/usr/bin/lvs-node debian/lvs-node/usr/bin/lvs-cert | sed -n 's/^shlibs:Depends=//p')
    [ -n "$SHLIBS" ] || { echo "error: dpkg-shlibdeps found no dependencies" >&2; exit 1; }
    rm "$WORK/debian/control"
    DEPENDS="$SHLIBS, iproute2"
fi

sed -e "s/@VERSION@/$VERSION-1/" -e "s/@ARCH@/$ARCH/" -e "s/@DEPENDS@/$DEPENDS/" \
    -e "s/@SIZE@/$(du -sk --exclude=DEBIAN "$PKG" | cut -f1)/" \
    "$REPO/packaging/deb/control" >"$PKG/DEBIAN/control"
# node.toml is the admin's file: dpkg keeps their edits on upgrade and asks on conflicts.
echo /etc/lvs-node/node.toml >"$PKG/DEBIAN/conffiles"
for s in postinst prerm postrm; do install -m 0755 "$REPO/packaging/deb/$s" "$PKG/DEBIAN/$s"; done
install -m 0644 "$REPO/packaging/deb/copyright" "$PKG/usr/share/doc/lvs-node/copyright"
(cd "$PKG" && find . -path ./DEBIAN -prune -o -type f -printf '%P\0' | sort -z | xargs -0 md5sum) \
    >"$PKG/DEBIAN/md5sums"
chmod 0644 "$PKG/DEBIAN/md5sums" "$PKG/DEBIAN/control" "$PKG/DEBIAN/conffiles"

DEB="$OUT/lvs-node_${VERSION}-1_${ARCH}.deb"
dpkg-deb --build --root-owner-group "$PKG" "$DEB" >/dev/null
echo "$DEB"
