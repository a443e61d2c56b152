#!/usr/bin/env bash
# Idempotent setup: a venv keyed by the hash of requirements.txt and requirements.lock (kept
# outside the clone, so a fresh clone reuses it), the pinned packages (requirements.txt, every
# transitive version fixed by requirements.lock), and the Fashion-MNIST Debian package.
# Prints nothing but progress on stderr; the venv path on stdout. Quick (~1 s) when already done.
#   WEIGHTSHARE_VENV   use this venv directory instead of the cache one
#   WEIGHTSHARE_DATA_DIR  data already elsewhere: skip the Debian package
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
python="$(command -v python3.11 || command -v python3)"
hash="$(cat "$root/requirements.txt" "$root/requirements.lock" | sha256sum | cut -c1-12)"
venv="${WEIGHTSHARE_VENV:-${XDG_CACHE_HOME:-$HOME/.cache}/weightshare/venv-$hash}"

if [ ! -f "$venv/.weightshare-complete" ]; then
  echo "setup: creating $venv (first time: ~3-5 min, ~7.6 GB)" >&2
  rm -rf "$venv"
  "$python" -m venv "$venv"
  "$venv/bin/pip" install --quiet --disable-pip-version-check -r "$root/requirements.txt" \
    -c "$root/requirements.lock" >&2
  "$venv/bin/pip" check >&2
  touch "$venv/.weightshare-complete"
fi

data="${WEIGHTSHARE_DATA_DIR:-/usr/share/datasets/fashion-mnist}"
if [ ! -f "$data/t10k-labels-idx1-ubyte.gz" ]; then
  echo "setup: installing the Debian package dataset-fashion-mnist" >&2
  sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  $sudo apt-get update -qq >&2
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq dataset-fashion-mnist >&2
fi
echo "$venv"
