#!/usr/bin/env bash
# make deb: a Debian package of what `make install` installs, laid out as Debian wants it
# (/usr, the multiarch library directory, gzipped man pages, doc/fspf/copyright), built with
# dpkg-deb. Its Depends are the packages of the shared libraries the binaries need; the packaging
# test (PackagingTests) checks that ldd finds nothing outside them and installs the package with
# apt into a clean debootstrap chroot.
# Usage: scripts/build-deb.sh OUTDIR   (after make release and make man)
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
out=$(mkdir -p "${1:?output directory}" && cd "$1" && pwd)
arch=$(dpkg --print-architecture)
multiarch=$(dpkg-architecture -qDEB_HOST_MULTIARCH)
version=$("$root/.build/release/fspf" --version | cut -d' ' -f2)
maintainer=${DEB_MAINTAINER:-FSPF maintainers <maintainers@users.noreply.r-seed-cd302754.example>}

stage=$(mktemp -d)
trap 'rm -rf "$stage"' EXIT
pkg=$stage/fspf
DESTDIR=$pkg PREFIX=/usr LIBDIR=/usr/lib/$multiarch MOUNTHELPERDIR=/usr/sbin SYSTEMDUNITDIR=/usr/lib/systemd/system \
  "$root/scripts/install.sh" install > /dev/null
# dpkg keeps the list of what it installed; the install manifest is for make uninstall only.
rm -r "$pkg/usr/share/fspf"
strip --strip-unneeded "$pkg/usr/bin/fspf" "$pkg/usr/bin/fspf-mount" "$pkg/usr/lib/$multiarch/libfspf.so"
gzip -9n "$pkg"/usr/share/man/man1/*.1
gzip -9n "$pkg/usr/share/doc/fspf/CHANGELOG.md"
rm "$pkg/usr/share/doc/fspf/LICENSE"
cat > "$pkg/usr/share/doc/fspf/copyright" <<EOF
Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/
Upstream-Name: fspf
Source: the fspf source tree this package was built from (fspf $version)

Files: *
Copyright: FSPF contributors
License: Apache-2.0
 Licensed under the Apache License, Version 2.0 (the "License"); you may not
 use this file except in compliance with the License. You may obtain a copy of
 the License at http://www.apache.org/licenses/LICENSE-2.0
 .
 On Debian systems, the complete text of the Apache License, Version 2.0, is in
 /usr/share/common-licenses/Apache-2.0.
 .
 The binaries contain the Swift runtime and libraries (Apache-2.0 with the
 Runtime Library Exception), swift-argument-parser, swift-log, swift-nio,
 swift-collections, swift-atomics (Apache-2.0), swift-nio-ssl (which includes
 BoringSSL: OpenSSL and ISC licences) and Yams (MIT), linked statically.
EOF

mkdir -p "$pkg/DEBIAN"
cat > "$pkg/DEBIAN/control" <<EOF
Package: fspf
Version: $version
Architecture: $arch
Maintainer: $maintainer
Installed-Size: $(du -sk --exclude=DEBIAN "$pkg" | cut -f1)
Depends: libc6 (>= 2.36), libfuse3-3 (>= 3.14), fuse3, libssl3 (>= 3.0), libsodium23 (>= 1.0.18), libstdc++6, libgcc-s1
Section: utils
Priority: optional
Description: protected volumes for confidential computing
 fspf encrypts and authenticates directory trees into protected volumes whose
 tag pins the exact version in an attestation policy; fspf-mount serves a
 volume to unmodified programs through FUSE once its key came through
 attestation, read-only or as a writable output volume sealed in versions.
 libfspf reads volumes inside a process (C ABI). fspf takes the place of
 SCONE's "scone fspf" in build scripts; an attested key server is included.
EOF
# The shared library's SONAME is libfspf.so: ldconfig learns about it.
printf 'activate-noawait ldconfig\n' > "$pkg/DEBIAN/triggers"
(cd "$pkg" && find . -path ./DEBIAN -prune -o -type f -printf '%P\n' | sort | xargs -d '\n' md5sum) > "$pkg/DEBIAN/md5sums"
deb=$out/fspf_${version}_$arch.deb
dpkg-deb --root-owner-group -Zxz --build "$pkg" "$deb" > /dev/null
echo "$deb"
