#!/usr/bin/env bash
# Make a minimal Debian bookworm base image from Debian's packages and `docker import` it.
# There is no image registry on the development machines, so the local smoke build uses this
# as BASE_IMAGE instead of the CUDA runtime image that GPU hosts pull.
#
#   scripts/make-base.sh TAG [deb,packages,to,include]
#   scripts/make-base.sh local/bookworm:base
set -euo pipefail

TAG=${1:?usage: make-base.sh TAG [deb,packages,to,include]}
INCLUDE=${2:-}

# The host's own Debian mirror, so this works wherever apt already works.
SOURCES=/etc/apt/sources.list.d/debian.sources
MIRROR=$(awk '/^URIs:/{print $2; exit}' "$SOURCES")
SECURITY=$(awk '/^URIs:/{u=$2} /^Suites:.*security/{print u; exit}' "$SOURCES")

ROOT=$(mktemp -d)
trap 'rm -rf "$ROOT"' EXIT

debootstrap --variant=minbase ${INCLUDE:+--include="$INCLUDE"} bookworm "$ROOT" "$MIRROR" >/dev/null
# debootstrap writes only "bookworm main"; security updates matter in a service image.
printf 'deb %s bookworm main\ndeb %s bookworm-updates main\ndeb %s bookworm-security main\n' \
  "$MIRROR" "$MIRROR" "$SECURITY" >"$ROOT/etc/apt/sources.list"

# Keep docs, man pages and locales out of this and every later layer (the slim images do the same).
printf '%s\n' 'path-exclude /usr/share/doc/*' 'path-include /usr/share/doc/*/copyright' \
  'path-exclude /usr/share/man/*' 'path-exclude /usr/share/info/*' 'path-exclude /usr/share/locale/*' \
  >"$ROOT/etc/dpkg/dpkg.cfg.d/01-nodoc"
find "$ROOT/usr/share/doc" -mindepth 2 ! -name copyright -delete
rm -rf "$ROOT"/usr/share/{man,info,locale}/*

# Without this every `apt-get install` layer keeps ~86 MB of package cache.
CLEAN='rm -f /var/cache/apt/archives/*.deb /var/cache/apt/archives/partial/*.deb /var/cache/apt/*.bin || true'
printf 'DPkg::Post-Invoke { "%s"; };\nAPT::Update::Post-Invoke { "%s"; };\nDir::Cache::pkgcache "";\nDir::Cache::srcpkgcache "";\n' \
  "$CLEAN" "$CLEAN" >"$ROOT/etc/apt/apt.conf.d/docker-clean"
echo 'APT::Install-Recommends "false";' >"$ROOT/etc/apt/apt.conf.d/no-recommends"
# No package may start a daemon inside a build.
printf '#!/bin/sh\nexit 101\n' >"$ROOT/usr/sbin/policy-rc.d"
chmod +x "$ROOT/usr/sbin/policy-rc.d"

chroot "$ROOT" apt-get clean
rm -rf "$ROOT"/var/lib/apt/lists/* "$ROOT"/var/log/apt/* "$ROOT"/var/log/*.log
# debootstrap copied the host's resolver and name; docker supplies both at run time.
: >"$ROOT/etc/resolv.conf"
echo localhost >"$ROOT/etc/hostname"

tar --numeric-owner -C "$ROOT" -c . |
  docker import -c 'ENV LANG=C.UTF-8' -c 'CMD ["/bin/bash"]' - "$TAG" >/dev/null
echo "made $TAG"
