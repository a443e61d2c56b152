#!/usr/bin/env bash
# Install (when missing) and start a throwaway PostgreSQL server for the tests, listening on
# 127.0.0.1 only, with its data under /tmp; print its Optuna storage URL on stdout.
# Idempotent: a server already running there is reused.
#   WEIGHTSHARE_PG_PORT  port (default 54329)     WEIGHTSHARE_PG_DATA  data dir
set -euo pipefail
port="${WEIGHTSHARE_PG_PORT:-54329}"
data="${WEIGHTSHARE_PG_DATA:-${TMPDIR:-/tmp}/weightshare-pg-$port}"
sudo=""
[ "$(id -u)" -eq 0 ] || sudo="sudo"
if ! ls /usr/lib/postgresql/*/bin/pg_ctl >/dev/null 2>&1; then
  echo "postgres: installing the Debian package postgresql" >&2
  $sudo apt-get update -qq >&2
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq postgresql >&2
fi
bin="$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -n 1)"
as_owner() {  # PostgreSQL refuses to run as root: use its system user then
  if [ "$(id -u)" -eq 0 ]; then su postgres -s /bin/bash -c "$*"; else bash -c "$*"; fi
}
if [ ! -f "$data/PG_VERSION" ]; then
  mkdir -p "$data"
  [ "$(id -u)" -ne 0 ] || chown postgres "$data"
  as_owner "'$bin/initdb' -D '$data' -U postgres --auth=trust" >/dev/null
fi
if ! as_owner "'$bin/pg_ctl' -D '$data' status" >/dev/null 2>&1; then
  as_owner "'$bin/pg_ctl' -D '$data' -l '$data/server.log' -w \
    -o \"-p $port -k /tmp -c listen_addresses=127.0.0.1\" start" >/dev/null
fi
psql="psql -h 127.0.0.1 -p $port -U postgres -q -t"
$psql -c "SELECT 1 FROM pg_database WHERE datname = 'weightshare_test'" | grep -q 1 \
  || $psql -c "CREATE DATABASE weightshare_test" >/dev/null
echo "postgresql://postgres@127.0.0.1:$port/weightshare_test"
