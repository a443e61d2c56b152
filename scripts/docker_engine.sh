#!/usr/bin/env bash
# Make a Docker engine answer: install Debian's docker.io when no client/daemon is present and
# start dockerd (as root) when none runs. Prints the PID of a dockerd it started (empty when one
# already ran) on stdout; exits 1 with the reason on stderr when no engine can run here.
#   DOCKER  docker client (default: /usr/bin/docker when present, else docker)
set -euo pipefail
docker="${DOCKER:-$( [ -x /usr/bin/docker ] && echo /usr/bin/docker || echo docker)}"
if $docker info >/dev/null 2>&1; then
  exit 0
fi
if [ "$(id -u)" -ne 0 ]; then
  echo "no Docker engine answers and starting dockerd needs root" >&2
  exit 1
fi
if ! command -v dockerd >/dev/null; then
  echo "docker_engine.sh: installing the Debian package docker.io" >&2
  apt-get update -qq >&2
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq docker.io >&2
  docker=/usr/bin/docker
fi
log="${TMPDIR:-/tmp}/weightshare-dockerd.log"
setsid dockerd >"$log" 2>&1 </dev/null &
pid=$!
for _ in $(seq 60); do
  if $docker info >/dev/null 2>&1; then
    echo "$pid"
    exit 0
  fi
  if ! kill -0 "$pid" 2>/dev/null; then
    echo "dockerd exited at start: $(grep -m1 -iE 'level=(fatal|error)' "$log" || tail -n 1 "$log")" >&2
    exit 1
  fi
  sleep 1
done
kill "$pid" 2>/dev/null || true
echo "dockerd did not answer within 60 s (log: $log)" >&2
exit 1
