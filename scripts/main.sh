#!/usr/bin/env bash
# The main job: set up, train and evaluate FAVE on ML-100k, show recommendations and metrics.
# Extra arguments go to `fave train` (e.g. --set epochs=5).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
OUT=${OUT:-runs/fave-ml-100k}
.venv/bin/fave data stats ml-100k
.venv/bin/fave train --model fave --dataset ml-100k --out "$OUT" "$@"
.venv/bin/fave recommend "$OUT" --user 1 --user 2 --user 3 --k 10
.venv/bin/fave evaluate "$OUT"
