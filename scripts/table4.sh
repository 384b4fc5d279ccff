#!/usr/bin/env bash
# Table 4 (diversity) on ML-100k: Caser, SASRec, AutoSeqRec, DiffuRec, FMRec and FAVE at SEEDS (default 0 1 2),
# then results/ml-100k-diversity.{md,json} (ILD@20, N@20, coverage@20, mean ± std, beside the paper's values),
# and results/ml-100k-seeds.{md,json} (`scripts/table1.sh`'s report: Table 1 from every finished run of these seeds).
# Runs are named and trained as scripts/reproduce.sh does (runs/ml-100k/<model>-seed<N>, each model's packaged
# config; FAVE's two stages in one run, as `fave train` does by default); finished runs are skipped, so existing
# runs are reused. The ML-100k configs cap epochs instead of wall-clock time, so results do not depend on load.
# One training at a time (about 2-11 CPU minutes each; about 95 minutes for 3 seeds on an idle 2-core CPU). The report alone:
#   REPORT_ONLY=1 bash scripts/table4.sh
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"
F=${FAVE:-.venv/bin/fave}
SEEDS=${SEEDS:-0 1 2}
SIX="caser sasrec autoseqrec diffurec fmrec fave"
# the trainings (finished runs skipped; REPORT_ONLY=1 trains nothing) and the Table-1 report over every finished
# run of these seeds (these six models and the others of scripts/table1.sh), with paired tests of FAVE against each
MODELS="$SIX" SEEDS="$SEEDS" FAVE="$F" bash scripts/table1.sh
RUNS=()
for m in $SIX; do
  for s in $SEEDS; do [ -f "runs/ml-100k/$m-seed$s/metrics.json" ] && RUNS+=("runs/ml-100k/$m-seed$s"); done
done
if [ ${#RUNS[@]} -eq 0 ]; then echo "no finished runs under runs/ml-100k for these models and seeds" >&2; exit 1; fi
$F report "${RUNS[@]}" --diversity --out results/ml-100k-diversity \
  --title "ML-100k: diversity of the top-20 lists (Table 4)" \
  --command "SEEDS='$SEEDS' bash scripts/table4.sh"
