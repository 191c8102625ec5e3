#!/usr/bin/env bash
# Build a Debian bookworm root filesystem with Python 3.11 for use as the
# image's BASE_IMAGE where no registry can be reached, and print the path of
# its tarball (for `docker import`). Cached: a second run prints the cached
# tarball at once. Needs root and Debian's package mirror.
#
#   tar=$(deploy/scripts/base-image.sh) && docker import "$tar" jobq-base:bookworm
#
# JOBQ_CACHE_DIR (default ~/.cache/jobq) holds the tarball; JOBQ_DEBIAN_MIRROR
# overrides the mirror (default: the first one in apt's sources).
set -euo pipefail
# shellcheck source=deploy/scripts/lib.sh source-path=SCRIPTDIR
. "$(dirname "$0")/lib.sh"

SUITE=bookworm
INCLUDE=python3,python3-venv,ca-certificates
# Bump when the recipe below changes, so an old cached tarball is not reused.
RECIPE=1

require_root
cache="$(cache_dir)"
key="$(printf '%s|%s|%s|%s' "$SUITE" "$INCLUDE" "$RECIPE" "$(uname -m)" | sha256sum | cut -c1-12)"
tarball="$cache/base-$SUITE-$key.tar"
if [ -s "$tarball" ]; then
  log "cached: $tarball"
  printf '%s\n' "$tarball"
  exit 0
fi

ensure_packages debootstrap

mirror="${JOBQ_DEBIAN_MIRROR:-}"
if [ -z "$mirror" ]; then
  mirror="$(grep -rhoE '^(URIs:|deb) +https?://[^ ]+/debian/?' /etc/apt/sources.list /etc/apt/sources.list.d/ 2>/dev/null \
    | grep -oE 'https?://[^ ]+' | head -1 || true)"
  mirror="${mirror:-http://deb.debian.org/debian}"
fi

work="$(mktemp -d "${TMPDIR:-/tmp}/jobq-base.XXXXXX")"
root="$work/rootfs"
cleanup() {
  # debootstrap mounts /proc and /sys in the target while it runs; leave none
  # behind if it failed half-way.
  if [ -d "$root" ]; then
    findmnt -rn -o TARGET | grep -F "$root" | sort -r | xargs -r -n1 umount -l || true
  fi
  rm -rf "$work"
}
trap cleanup EXIT

log "debootstrap $SUITE ($INCLUDE) from $mirror (about a minute)"
start=$SECONDS
debootstrap --variant=minbase --include="$INCLUDE" "$SUITE" "$root" "$mirror" >"$work/debootstrap.log" 2>&1 \
  || { tail -20 "$work/debootstrap.log" >&2; die "debootstrap failed"; }

# Slim it: package caches and lists, docs and manuals are of no use in an image.
rm -rf "$root"/var/cache/apt/archives/*.deb "$root"/var/lib/apt/lists/* \
  "$root"/usr/share/doc/* "$root"/usr/share/man/* "$root"/usr/share/info/* \
  "$root"/var/log/*.log "$root"/var/cache/debconf/*-old
printf 'deb %s %s main\n' "$mirror" "$SUITE" >"$root/etc/apt/sources.list"

tar --numeric-owner --xattrs -C "$root" -cf "$work/base.tar" .
mv "$work/base.tar" "$tarball"
log "built $tarball ($(du -h "$tarball" | cut -f1)) in $((SECONDS - start)) s"
printf '%s\n' "$tarball"
