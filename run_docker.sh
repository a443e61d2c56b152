#!/usr/bin/env bash
# Build the image and run the seed's exploration command for one network in a container:
#   ./run_docker.sh lenet5_fashionmnist [extra main.py flags]
# Outputs (results.json, plots, the resumable study.db) go to ./runs/NETWORK/latest on the host;
# rerunning the same command resumes the study. Needs a Docker engine.
set -euo pipefail
if [ "$#" -lt 1 ]; then
  echo "usage: $0 NETWORK [main.py flags...]   (python main.py --help lists the networks)" >&2
  exit 2
fi
network="$1"
shift
root="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
image="${WEIGHTSHARE_IMAGE:-weightshare:latest}"
mkdir -p "$root/runs/$network"
docker build -f "$root/docker/Dockerfile" -t "$image" "$root"
docker run --rm --ipc=host -u "$(id -u):$(id -g)" \
  -v "$root/runs:/workspace/runs" \
  "$image" \
  --network_dataset "$network" --log_file "runs/$network/latest" \
  --dataset_scale 0.1 --with_local_optimization 1 --mode exploration \
  --optimization two_step_optimization "$@"
