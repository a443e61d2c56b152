#!/usr/bin/env bash
# Set everything up (venv, data, a throwaway PostgreSQL on loopback), then lint and run the
# whole test suite (arguments go to pytest).
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
venv="$(bash "$root/scripts/setup.sh")"
source "$root/scripts/env.sh"
WEIGHTSHARE_TEST_POSTGRES="$(bash "$root/scripts/postgres.sh")"
export WEIGHTSHARE_TEST_POSTGRES
cd "$root"
"$venv/bin/ruff" check .
"$venv/bin/ruff" format --check .
exec "$venv/bin/python" -m pytest "$@"
