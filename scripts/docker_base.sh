#!/usr/bin/env bash
# Build, offline, a base image equivalent to python:3.11-slim-bookworm for docker/Dockerfile:
# a minimal Debian bookworm (debootstrap, Python 3.11 from Debian) from the Debian mirror apt
# already uses on this host (read from its sources at run time), imported with `docker import`.
# Idempotent: an existing image with that tag is kept. Prints the tag on stdout.
#   WEIGHTSHARE_BASE_IMAGE  tag to build (default weightshare-base:bookworm)
#   WEIGHTSHARE_DEBIAN_MIRROR  mirror URL (default: the first bookworm URI in apt's sources)
set -euo pipefail
tag="${WEIGHTSHARE_BASE_IMAGE:-weightshare-base:bookworm}"
docker="${DOCKER:-docker}"
if $docker image inspect "$tag" >/dev/null 2>&1; then
  echo "$tag"
  exit 0
fi
[ "$(id -u)" -eq 0 ] || { echo "docker_base.sh: debootstrap needs root" >&2; exit 2; }
mirror_from_apt() {  # first Debian (not -security) URI in deb822 or one-line sources
  { cat /etc/apt/sources.list.d/*.sources 2>/dev/null | sed -n 's/^URIs:[[:space:]]*//p'
    cat /etc/apt/sources.list /etc/apt/sources.list.d/*.list 2>/dev/null \
      | sed -n 's/^deb[[:space:]]\+\(\[[^]]*\][[:space:]]\+\)\?\([^[:space:]]\+\).*/\2/p'
  } | tr ' ' '\n' | grep -E '/debian/?$' | grep -v security | head -n 1 || true
}
mirror="${WEIGHTSHARE_DEBIAN_MIRROR:-$(mirror_from_apt)}"
if [ -z "$mirror" ]; then
  echo "docker_base.sh: no Debian mirror in /etc/apt/sources*: set WEIGHTSHARE_DEBIAN_MIRROR" >&2
  exit 2
fi
if ! command -v debootstrap >/dev/null; then
  echo "docker_base.sh: installing the Debian package debootstrap" >&2
  apt-get update -qq >&2
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq debootstrap >&2
fi
rootfs="$(mktemp -d "${TMPDIR:-/tmp}/weightshare-rootfs.XXXXXX")"
trap 'rm -rf "$rootfs"' EXIT
echo "docker_base.sh: debootstrap bookworm from $mirror (a few minutes)" >&2
debootstrap --variant=minbase --include=python3,python3-venv,ca-certificates \
  bookworm "$rootfs" "$mirror" >&2
# As the slim image: no apt lists, no docs or man pages, the mirror apt used.
echo "deb $mirror bookworm main" >"$rootfs/etc/apt/sources.list"
rm -rf "$rootfs"/var/lib/apt/lists/* "$rootfs"/var/cache/apt/archives/*.deb \
  "$rootfs"/usr/share/doc/* "$rootfs"/usr/share/man/* "$rootfs"/usr/share/locale/*
tar -C "$rootfs" -c . | $docker import \
  -c 'ENV LANG=C.UTF-8 PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
  -c 'CMD ["python3"]' - "$tag" >&2
echo "$tag"
