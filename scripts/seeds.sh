#!/usr/bin/env bash
# Train one configuration with several seeds: scripts/seeds.sh MODEL DATASET LABEL [fave train args...]
# Runs land in runs/DATASET/LABEL-seedN (rerunning resumes or skips finished runs).
# SEEDS="0 1 2" by default.
set -euo pipefail
cd "$(dirname "$0")/.."
MODEL=$1 DATASET=$2 LABEL=$3; shift 3
for seed in ${SEEDS:-0 1 2}; do
  out="runs/$DATASET/$LABEL-seed$seed"
  if [ -f "$out/metrics.json" ]; then echo "done: $out"; continue; fi
  .venv/bin/fave train --model "$MODEL" --dataset "$DATASET" --out "$out" --seed "$seed" --quiet "$@"
done
