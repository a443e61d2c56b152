#!/usr/bin/env bash
# Build the image and run the seed's exploration command for one network in a container:
#   ./run_docker.sh lenet5_fashionmnist [extra main.py flags]
# Outputs (results.json, plots, the resumable study.db) go to ./runs/NETWORK/ on the host, owned
# by the calling user; rerunning the same command resumes the study. Trained checkpoints are
# cached in ./runs/.cache. Needs a Docker engine with BuildKit (Docker >= 20.10).
#   WEIGHTSHARE_IMAGE       image tag (default weightshare:latest)
#   WEIGHTSHARE_BASE_IMAGE  base image; default python:3.11-slim-bookworm when the registry
#                           answers, else the offline one scripts/docker_base.sh builds
#   WEIGHTSHARE_WHEELS_PORT loopback port serving the wheels to the build (default 18765)
#   WEIGHTSHARE_RUNS_DIR    host directory mounted as runs/ (default ./runs)
#   WEIGHTSHARE_CONTAINER   name for the container (so a caller can remove it)
#   DOCKER                  docker client (default: docker)
set -euo pipefail
if [ "$#" -lt 1 ]; then
  echo "usage: $0 NETWORK [main.py flags...]   (python main.py --help lists the networks)" >&2
  exit 2
fi
network="$1"
shift
root="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
image="${WEIGHTSHARE_IMAGE:-weightshare:latest}"
docker="${DOCKER:-docker}"
export DOCKER_BUILDKIT=1
# A client without buildx cannot build with BuildKit (Docker >= 23 moved it there); Debian's
# docker.io client (20.10) has it built in: use that one when the first on PATH lacks buildx.
if [ -z "${DOCKER:-}" ] && ! docker buildx version >/dev/null 2>&1; then
  if [ -x /usr/bin/docker ] && /usr/bin/docker version --format '{{.Client.Version}}' 2>/dev/null \
    | grep -q '^20\.'; then
    docker=/usr/bin/docker
  elif ! docker version --format '{{.Client.Version}}' 2>/dev/null | grep -q '^20\.'; then
    echo "run_docker.sh: this docker client needs the buildx plugin for BuildKit builds:" \
      "install docker-buildx, or set DOCKER to a client that has it" >&2
    exit 2
  fi
fi

# Base: the registry's python image, else the offline Debian one (built once, then reused).
base="${WEIGHTSHARE_BASE_IMAGE:-}"
if [ -z "$base" ]; then
  if $docker image inspect python:3.11-slim-bookworm >/dev/null 2>&1 \
    || timeout 60 $docker pull -q python:3.11-slim-bookworm >/dev/null 2>&1; then
    base=python:3.11-slim-bookworm
  else
    echo "run_docker.sh: no image registry: building the base offline (scripts/docker_base.sh)" >&2
    base="$(DOCKER="$docker" bash "$root/scripts/docker_base.sh")"
  fi
fi

# Wheels: downloaded once per requirements hash by the host's pip (its index, proxy and CA
# settings apply), then served on loopback to the build.
hash="$(cat "$root/requirements.txt" "$root/requirements.lock" "$root/docker/runtime-exclude.txt" \
  | sha256sum | cut -c1-12)"
wheels="${XDG_CACHE_HOME:-$HOME/.cache}/weightshare/wheels-$hash"
if [ ! -f "$wheels/.complete" ]; then
  echo "run_docker.sh: downloading the pinned wheels to $wheels (first time: a few minutes)" >&2
  mkdir -p "$wheels"
  grep -v -x -E -f "$root/docker/runtime-exclude.txt" "$root/requirements.txt" >"$wheels/runtime.txt"
  # The host's Python must be the image's (3.11, same CPU architecture) for its wheels to fit.
  python3 -m pip download -q --only-binary=:all: -d "$wheels" -r "$wheels/runtime.txt" \
    -c "$root/requirements.lock" >&2
  touch "$wheels/.complete"
fi
port="${WEIGHTSHARE_WHEELS_PORT:-18765}"
python3 -m http.server --bind 127.0.0.1 --directory "$wheels" "$port" >/dev/null 2>&1 &
server=$!
trap 'kill "$server" 2>/dev/null || true' EXIT

# A CA bundle for apt and pip in the build, as a secret (never in a layer).
ca=""
for f in "${PIP_CERT:-}" "${REQUESTS_CA_BUNDLE:-}" "${SSL_CERT_FILE:-}" \
  /etc/ssl/certs/ca-certificates.crt; do
  if [ -n "$f" ] && [ -s "$f" ]; then ca="$f" && break; fi
done
secret=()
[ -z "$ca" ] || secret=(--secret "id=ca,src=$ca")

$docker build --network=host "${secret[@]}" --build-arg "BASE=$base" \
  --build-arg "WHEELS=http://127.0.0.1:$port/" \
  -f "$root/docker/Dockerfile" -t "$image" "$root"
kill "$server" 2>/dev/null || true

runs="${WEIGHTSHARE_RUNS_DIR:-$root/runs}"
mkdir -p "$runs/$network" "$runs/.cache"
$docker run --rm ${WEIGHTSHARE_CONTAINER:+--name "$WEIGHTSHARE_CONTAINER"} --ipc=host -u "$(id -u):$(id -g)" \
  -e WEIGHTSHARE_CACHE=/workspace/runs/.cache \
  -v "$(cd "$runs" && pwd):/workspace/runs" \
  "$image" \
  --network_dataset "$network" --log_file "runs/$network" \
  --dataset_scale 0.1 --with_local_optimization 1 --mode exploration \
  --optimization two_step_optimization "$@"
