#!/usr/bin/env bash
# Issue 15's measurements on ML-100k, meant for an otherwise idle machine (nothing else running):
#   1. the quick FAVE run the serving results use (one epoch per stage: latency does not depend on the weights),
#      and its ONNX export verified against the library on every test user;
#   2. `fave bench` batch-1 latency of FAVE's optimised path (ONNX Runtime) beside its eager `floor`, and SASRec;
#   3. `fave loadtest` of `fave serve` with the ONNX export at 1 / 4 / 16 loopback clients, with the server on
#      1 and on 2 threads (the client shares the same cores).
# Outputs: results/serving/*-idle.{json,md}, results/bench-ml-100k-idle/. Finished steps 1 are reused.
# The server runs on what uvicorn finds installed (httptools + uvloop with `fave[serve]`; the load test records it).
#   bash scripts/serving.sh
#   BENCH=0 THREADS=1 NAME=idle-httptools bash scripts/serving.sh   # the load test only, 1 server thread
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"
F=${FAVE:-.venv/bin/fave}
RUN=${RUN:-runs/serve-fave}
if [ ! -f "$RUN/metrics.json" ]; then
  $F train --model fave --dataset ml-100k --out "$RUN" --quiet --set stage1_epochs=1 --set stage2_epochs=1 --set threads=1
fi
if [ ! -f "$RUN/model.onnx" ]; then
  $F export "$RUN" --format onnx --out "$RUN/model.onnx" --verify --verify-out results/serving/export-onnx-fave-ml-100k \
    --threads 1 --compile
fi
BENCH=${BENCH:-1}
THREADS=${THREADS:-1 2}
NAME=${NAME:-idle}
uptime
[ "$BENCH" = 0 ] || $F bench --models fave sasrec --dataset ml-100k --out results/bench-ml-100k-idle --threads 1 --batch-sizes 64 512 \
  --latency-users 200 --repeats 3 --test-repeats 1 --flop-users 64
for t in $THREADS; do
  $F loadtest "$RUN" --out "results/serving/loadtest-fave-ml-100k-onnx-$NAME-t$t" --concurrency 1,4,16 \
    --requests 4000 --seconds 20 --threads "$t" --onnx "$RUN/model.onnx"
done
uptime
