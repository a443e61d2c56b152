#!/usr/bin/env bash
# Set everything up, then run the main job (arguments are passed to main.py).
# Default: the seed's exploration command on LeNet-5 / Fashion-MNIST (embedded SQLite study,
# local Ray workers); outputs in runs/lenet5_fashionmnist/.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
venv="$(bash "$root/scripts/setup.sh")"
source "$root/scripts/env.sh"
cd "$root"
if [ "$#" -eq 0 ]; then
  set -- --network_dataset lenet5_fashionmnist --log_file runs/lenet5_fashionmnist \
    --dataset_scale 0.1 --with_local_optimization 1 --mode exploration \
    --optimization two_step_optimization
fi
exec "$venv/bin/python" main.py "$@"
