#!/usr/bin/env bash
# Run blocks of scripts/reproduce.sh one after another, each from a snapshot of the script
# (so editing it meanwhile is safe), after any running training has finished.
#   nohup bash scripts/queue.sh ml-100k beauty@1,2 ablations > queue.log 2>&1 &
# BLOCK@S1,S2 runs BLOCK with SEEDS="S1 S2".
set -uo pipefail
cd "$(dirname "$0")/.."
while pgrep -f "fave train" > /dev/null; do sleep 10; done
for block in "$@"; do
  snap=$(mktemp /tmp/reproduce.XXXXXX.sh)
  cp scripts/reproduce.sh "$snap"
  echo "== $block $(date +%H:%M:%S)"
  seeds=""; [[ $block == *@* ]] && seeds=${block#*@} && block=${block%@*}
  SEEDS="${seeds//,/ }" bash "$snap" "$block" || echo "== $block failed"
  rm -f "$snap"
done
echo "== queue done $(date +%H:%M:%S)"
