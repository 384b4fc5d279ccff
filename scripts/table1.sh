#!/usr/bin/env bash
# Table 1 on DATASET (ml-100k, the default, or beauty): every model of the paper's Table 1 plus popularity, at SEEDS
# (default 0 1 2), each with its packaged recipe for the dataset (epoch caps, no wall-clock budget, so results do
# not depend on load), then results/ml-100k-seeds.{md,json} (Beauty: results/beauty-table1.{md,json}): test and
# validation, both protocols, mean ± std over the seeds, and per-user paired t-tests and Wilcoxon tests of FAVE
# against each model (Holm-corrected over all comparisons).
# Runs are runs/DATASET/<model>-seed<N> (the names scripts/table4.sh and scripts/reproduce.sh use); finished runs
# are skipped, so the Table-4 runs are reused. One training at a time: about 3-11 CPU minutes each on an idle 2-core
# CPU (ML-100k: about 2.5 h for all models at 3 seeds; Beauty: about 3.5 h, FAVE 17 min and SASRec 10 min a seed).
# MODELS chooses a subset to train; the report takes every finished run.
#   SEEDS='0 1 2' bash scripts/table1.sh
#   DATASET=beauty SEEDS='0 1 2' bash scripts/table1.sh
#   MODELS='gru4rec bert4rec' bash scripts/table1.sh
#   REPORT_ONLY=1 bash scripts/table1.sh
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"
F=${FAVE:-.venv/bin/fave}
SEEDS=${SEEDS:-0 1 2}
DATASET=${DATASET:-ml-100k}
case "$DATASET" in
  ml-100k) OUT=results/ml-100k-seeds ;;
  beauty) OUT=results/beauty-table1 ;;
  *) echo "DATASET: unknown dataset '$DATASET'; allowed: ml-100k beauty" >&2; exit 2 ;;
esac
ALL="pop gru4rec caser sasrec bert4rec stosa autoseqrec dreamrec diffurec fmrec fave"
MODELS=${MODELS:-$ALL}
for m in $MODELS; do
  case " $ALL " in *" $m "*) ;; *) echo "MODELS: unknown model '$m'; allowed: $ALL" >&2; exit 2 ;; esac
done
if [ -z "${REPORT_ONLY:-}" ]; then
  for s in $SEEDS; do
    for m in $MODELS; do
      out="runs/$DATASET/$m-seed$s"
      if [ -f "$out/metrics.json" ]; then echo "done: $out"; continue; fi
      $F train --out "$out" --quiet --model "$m" --dataset "$DATASET" --seed "$s"  # FAVE: both stages, the default
    done
  done
fi
RUNS=()
for m in $ALL; do
  for s in $SEEDS; do [ -f "runs/$DATASET/$m-seed$s/metrics.json" ] && RUNS+=("runs/$DATASET/$m-seed$s"); done
done
if [ ${#RUNS[@]} -eq 0 ]; then echo "no finished runs under runs/$DATASET for these seeds" >&2; exit 1; fi
if [ "$DATASET" = ml-100k ]; then TITLE="ML-100k"; PREFIX=""; else TITLE="Beauty"; PREFIX="DATASET=$DATASET "; fi
$F report "${RUNS[@]}" --out "$OUT" \
  --title "$TITLE: Table 1 with the epoch-capped recipes (every model)" \
  --command "${PREFIX}SEEDS='$SEEDS' bash scripts/table1.sh"
