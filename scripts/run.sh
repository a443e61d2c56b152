#!/usr/bin/env bash
# Set everything up, then run the main job (arguments are passed to main.py).
# Default: evaluate the committed LeNet-5 baseline on Fashion-MNIST with k = 16 per layer.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
venv="$(bash "$root/scripts/setup.sh")"
source "$root/scripts/env.sh"
cd "$root"
if [ "$#" -eq 0 ]; then
  set -- --mode evaluate --network_dataset lenet5_fashionmnist --k 16 --log_file runs/lenet5_fashionmnist
fi
exec "$venv/bin/python" main.py "$@"
