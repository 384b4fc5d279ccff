#!/usr/bin/env bash
# The commands behind results/. Each block is idempotent (finished runs are skipped), so the
# script can be rerun after an interruption. One training at a time (2-core machine).
# Blocks converted to experiment files (experiments/*.yaml: ml-100k, beauty, table1, ablations, switches,
# sasrec-beauty-loss, sampling, alpha, epochs, beauty-recipe,
# stage2-prefix, stage2-epochs, ema, fmrec-recipe, dreamrec-steps, dreamrec, beauty-seeds, sasrec-beauty-wide, sasrec-ml-100k-wide,
# switches-one-at-a-time, shuffled, fmrec-beauty-recipe, beauty-balanced, beauty-dropout, sasrec-ml-100k-order,
# sasrec-beauty-order, fmrec-shuffled, beauty-stage2-wd, beauty-stage2-screens) call `fave experiment FILE`, with the same run directories.
#   bash scripts/reproduce.sh ml-100k | beauty | sasrec-beauty | ablations | recipes | baselines | baselines-beauty | fmrec-beauty-lr
#     | table1 | table1-seeds | table1-beauty | longer | delta | delta-fmrec | evaltime | bench | bench-beauty | steps | probes | newcomer
#     | switches | sasrec-beauty-loss | sampling | alpha | epochs | stage2-epochs | ema | fmrec-recipe | stage2-prefix | dreamrec-steps | dreamrec | beauty-seeds | sasrec-beauty-wide | sasrec-ml-100k-wide
#     | switches-1by1 | shuffled | fmrec-beauty-recipe | beauty-recipe | beauty-fast | eval-seeds | report
#     | beauty-balanced | beauty-dropout | sasrec-ml-100k-order | sasrec-beauty-order | fmrec-shuffled | beauty-stage2-wd | beauty-stage2-screens
#   on a CUDA machine: gpu-tests | bench-gpu | gpu-train (DATASET=ml-100k|beauty)
# SEEDS='0 1 2' selects seeds where a block says so.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
[ -f "$ROOT/pyproject.toml" ] || ROOT=$PWD  # run from a copy of this script: use the current directory
cd "$ROOT"
F=${FAVE:-.venv/bin/fave}  # on a GPU machine without the venv: FAVE="python3 -m fave.cli" PYTHONPATH=src
train() {  # train OUT ARGS... (skip when finished)
  local out=$1; shift
  if [ -f "$out/metrics.json" ]; then echo "done: $out"; return; fi
  $F train --out "$out" --quiet "$@"
}
case "${1:-ml-100k}" in
  ml-100k)  # seeds 0-2 (SEEDS is not read)
    $F experiment experiments/ml-100k.yaml ;;
  beauty)
    $F experiment experiments/beauty.yaml ${SEEDS:+--seeds $SEEDS} ;;
  sasrec-beauty)  # SASRec on Beauty, seeds 0-2
    for s in 0 1 2; do train "runs/beauty/sasrec-seed$s" --model sasrec --dataset beauty --seed "$s"; done ;;
  ablations)  # Stage-2 variants from the same Stage-1 run (runs/ml-100k/fave-stage1-seedS), 2 Stage-2 epochs each
    $F experiment experiments/ablations.yaml ${SEEDS:+--seeds $SEEDS} ;;
  recipes)  # the paper's prefix recipe vs the parallel recipe, same Stage-1 wall-clock budget
    train runs/ml-100k-recipes/prefix-stage1-seed0 --model fave --dataset ml-100k --seed 0 --set stage=1 \
      --set recipe=prefix --set batch_size=512
    # the first runs of this project: only each user's last window (train.windows=last)
    train runs/ml-100k-recipes/lastwindow-stage1-seed0 --model fave --dataset ml-100k --seed 0 --set stage=1 \
      --set windows=last
    train runs/ml-100k-recipes/lastwindow-seed0 --model fave --dataset ml-100k --seed 0 --set stage=2 \
      --set windows=last --set stage2_epochs=6 --set init_from=runs/ml-100k-recipes/lastwindow-stage1-seed0 ;;
  baselines)  # FMRec and DiffuRec on ML-100k (SEEDS, default 0), with FAVE's Stage-1 budget (their ml-100k configs)
    for s in ${SEEDS:-0}; do for m in fmrec diffurec; do
      train "runs/ml-100k/$m-seed$s" --model "$m" --dataset ml-100k --seed "$s"
    done; done ;;
  baselines-beauty)  # FMRec and DiffuRec on Beauty (SEEDS, default 0; their beauty configs)
    for s in ${SEEDS:-0}; do for m in fmrec diffurec; do
      train "runs/beauty/$m-seed$s" --model "$m" --dataset beauty --seed "$s"
    done; done ;;
  table1)  # the other Table-1 models on ML-100k (SEEDS, default 0), each with its CPU recipe (configs/<model>.yaml)
    $F experiment experiments/table1.yaml ${SEEDS:+--seeds $SEEDS} ;;
  beauty-seeds)  # the six one-seed Beauty baselines at seeds 0-2 (issue 16)
    $F experiment experiments/beauty-seeds.yaml ;;
  table1-seeds)  # Table 1 on DATASET (ml-100k or beauty), every model at SEEDS (default 0 1 2), paired tests
    DATASET=${DATASET:-ml-100k} SEEDS=${SEEDS:-0 1 2} FAVE=$F bash scripts/table1.sh ;;
  table1-beauty)  # the same on Beauty (configs/<model>.beauty.yaml)
    for s in ${SEEDS:-0}; do for m in gru4rec caser bert4rec stosa autoseqrec dreamrec; do
      train "runs/beauty/$m-seed$s" --model "$m" --dataset beauty --seed "$s"
    done; done ;;
  longer)  # FAVE on ML-100k with a longer Stage-1 budget (14 min instead of 5.5; both stages within 20 min), seed 0
    train runs/ml-100k-longer/fave-stage1-seed0 --model fave --dataset ml-100k --seed 0 --set stage=1 \
      --set time_budget_s=840
    train runs/ml-100k-longer/fave-seed0 --model fave --dataset ml-100k --seed 0 --set stage=2 \
      --set init_from=runs/ml-100k-longer/fave-stage1-seed0 ;;
  delta)  # the flow input made to matter: lambda ~ N(1, 1) instead of N(0.001, 0.001), ML-100k, seed 0
    D=(--dataset ml-100k --seed 0 --set delta=1.0)
    train runs/ml-100k-delta/fave-delta1-stage1-seed0 --model fave "${D[@]}" --set stage=1
    train runs/ml-100k-delta/fave-delta1-seed0 --model fave "${D[@]}" --set stage=2 \
      --set init_from=runs/ml-100k-delta/fave-delta1-stage1-seed0
    $F report runs/ml-100k/{fmrec,fave}-seed0 runs/ml-100k-delta/*-seed0 --out results/ml-100k-delta \
      --title "ML-100k: the input-modulation scale delta (paper 0.001) against 1.0, seed 0" \
      --command "bash scripts/reproduce.sh delta" ;;
  delta-fmrec)  # the same for FMRec, with its accuracy against sampling steps (after delta)
    train runs/ml-100k-delta/fmrec-delta1-seed0 --model fmrec --dataset ml-100k --seed 0 --set delta=1.0
    $F bench-steps runs/ml-100k-delta/fmrec-delta1-seed0 --fave runs/ml-100k-delta/fave-delta1-seed0 \
      --out results/steps-ml-100k-delta1 ;;
  newcomer)  # the README's main command from a fresh clone and an empty data dir (log: runs/newcomer.log)
    rm -rf /tmp/fave-newcomer /tmp/fave-newcomer-data && git clone -q "$ROOT" /tmp/fave-newcomer
    (cd /tmp/fave-newcomer && FAVE_DATA_DIR=/tmp/fave-newcomer-data bash scripts/main.sh) > runs/newcomer.log 2>&1
    tail -n 30 runs/newcomer.log ;;
  evaltime)  # wall time of the whole test evaluation (both protocols) of trained runs
    $F bench-eval runs/ml-100k/sasrec-seed0 runs/ml-100k/fave-seed0 runs/beauty/sasrec-seed0 \
      runs/beauty/fave-seed0 --out results/eval-time ;;
  bench)  # efficiency: FLOPs and latency of all four architectures (fresh weights: cost does not depend on them)
    $F bench --models fave fmrec diffurec sasrec --dataset ml-100k --out results/bench-ml-100k --threads 2 \
      --batch-sizes 64 512 --latency-users 50 --repeats 2 --test-repeats 1 --flop-users 64 ;;
  fmrec-beauty-lr)  # FMRec on Beauty under its 8-minute CPU budget: the paper's learning rate 1e-3 against 3e-3,
    # seed 0, compared on validation. The recipe (fmrec.beauty.yaml) took 3e-3, so baselines-beauty's seed 0 has
    # the second run's config.
    for lr in 0.001 0.003; do
      train "runs/beauty-fmrec-lr/fmrec-lr$lr-seed0" --model fmrec --dataset beauty --seed 0 --set lr="$lr"
    done
    $F report runs/beauty-fmrec-lr/*-seed0 --out results/beauty-fmrec-lr \
      --title "Beauty: FMRec's CPU recipe, learning rate under the 8-minute budget (seed 0)" \
      --command "bash scripts/reproduce.sh fmrec-beauty-lr" ;;
  bench-beauty)  # the trained Beauty runs (seed 0; needs beauty, sasrec-beauty, baselines-beauty)
    $F bench --runs runs/beauty/{fave,fmrec,diffurec,sasrec}-seed0 --out results/bench-beauty --threads 2 \
      --batch-sizes 64 512 --latency-users 50 --repeats 2 --test-repeats 1 --flop-users 64 ;;
  steps)  # accuracy against sampling steps: trained FMRec (1..30 steps) beside FAVE's one step (needs baselines)
    $F bench-steps runs/ml-100k/fmrec-seed0 --fave runs/ml-100k/fave-seed0 --out results/steps-ml-100k ;;
  probes)  # what the flow input contributes at inference: the same weights with delta = 0
    # (the paper's delta = 0.001 runs, seeds 0-2, and the delta = 1 run of the `delta` block when it exists)
    mkdir -p results/probes
    probe() {  # RUN NAME
      $F evaluate "$1" --json > "results/probes/$2.json"
      $F evaluate "$1" --set params.delta=0 --json > "results/probes/$2-delta0.json"
    }
    for s in 0 1 2; do probe "runs/ml-100k/fave-seed$s" "fave-ml-100k-seed$s"; done
    D1=runs/ml-100k-delta/fave-delta1-seed0
    if [ -f "$D1/metrics.json" ]; then probe "$D1" fave-delta1-ml-100k-seed0; fi
    ${PYTHON:-.venv/bin/python} scripts/probes_table.py results/probes
    ;;
  gpu-tests)  # on a CUDA machine: every registered model trains and evaluates on the GPU (skipped on CPU)
    python3 -m pytest -q -p no:cacheprovider tests/models/test_contract.py -k cuda ;;
  bench-gpu)  # on a CUDA machine: Table 3 on a GPU, as the paper measured it (fresh weights), both datasets
    for d in ml-100k beauty; do
      $F bench --models fave fmrec diffurec sasrec --dataset "$d" --device cuda --out "results/bench-$d-gpu" \
        --batch-sizes 64 512 --latency-users 100 --repeats 3 --test-repeats 2 --flop-users 64
    done ;;
  gpu-train)  # on a CUDA machine: is the CPU budget what limits accuracy? The same recipes with a GPU's compute
    # (epoch caps lifted to the paper's 200, early stopping ends them), plus FAVE with the paper's own prefix recipe.
    # Per seed (SEEDS, default 0), five trainings share the GPU at once; a safety budget per stage keeps a seed
    # under 5 minutes.
    D=${DATASET:-ml-100k} R=runs-gpu/${DATASET:-ml-100k}
    for s in ${SEEDS:-0}; do
      G=(--dataset "$D" --seed "$s" --set device=cuda --set threads=2 --set time_budget_s=240)
      E=(--set stage1_epochs=200 --set stage2_epochs=200)
      P=(--set recipe=prefix --set batch_size=512 --set eval_every=1 --set stage1_eval_steps=30)
      gpu_fave() {  # NAME ARGS...: Stage 1, then Stage 2 from it (Stage 2 gets half the safety budget)
        local n=$1; shift
        train "$R/$n-stage1-seed$s" --model fave "${G[@]}" "${E[@]}" "$@" --set stage=1
        train "$R/$n-seed$s" --model fave "${G[@]}" "${E[@]}" "$@" --set stage=2 --set time_budget_s=120 \
          --set init_from="$R/$n-stage1-seed$s"
      }
      gpu_fave fave & gpu_fave fave-prefix "${P[@]}" &
      for m in fmrec diffurec sasrec; do train "$R/$m-seed$s" --model "$m" "${G[@]}" --set epochs=200 & done
      wait
    done
    $F report "$R"/*-seed* --out "results/gpu-$D" --command "SEEDS='${SEEDS:-0}' DATASET=$D bash scripts/reproduce.sh gpu-train" \
      --title "$D on a GPU: the CPU recipes without their CPU budget, and FAVE's paper recipe" ;;
  switches)  # issue 13: FAVE Stage 1 on ML-100k, one change at a time, 20 epochs (no wall-clock budget), one thread
    $F experiment experiments/switches.yaml ;;
  sasrec-beauty-wide)  # issue 13: SASRec on Beauty 256 wide, one block: sampled (shared / per position) or full softmax
    $F experiment experiments/sasrec-beauty-wide.yaml ;;
  sasrec-ml-100k-wide)  # issue 13: the same shape on ML-100k beside the packaged recipe, 3 seeds
    $F experiment experiments/sasrec-ml-100k-wide.yaml ${SEEDS:+--seeds $SEEDS} ;;
  switches-1by1)  # issue 13: FAVE Stage 1 on ML-100k, each public-code difference alone (SEEDS, default 0-2)
    $F experiment experiments/switches-one-at-a-time.yaml ${SEEDS:+--seeds $SEEDS} ;;
  shuffled)  # issue 13: FAVE on ML-100k, both stages, shuffled batches instead of length buckets, 3 seeds
    $F experiment experiments/shuffled.yaml ${SEEDS:+--seeds $SEEDS} ;;
  beauty-balanced)  # issue 13: FAVE on Beauty, both stages, batches balanced by target count
    $F experiment experiments/beauty-balanced.yaml ${SEEDS:+--seeds $SEEDS} ;;
  beauty-dropout)  # issue 13: FAVE on Beauty with dropout 0.2 in the flow backbone, both stages
    $F experiment experiments/beauty-dropout.yaml ${SEEDS:+--seeds $SEEDS} ;;
  fmrec-shuffled)  # issue 13: FMRec on ML-100k with plain shuffled batches, 3 seeds
    $F experiment experiments/fmrec-shuffled.yaml ${SEEDS:+--seeds $SEEDS} ;;
  beauty-stage2-wd)  # issue 13: FAVE on Beauty with Stage 2 trained without weight decay
    $F experiment experiments/beauty-stage2-wd.yaml ${SEEDS:+--seeds $SEEDS} ;;
  beauty-stage2-screens)  # issue 13: Stage-2 values on Beauty, Stage 2 only from beauty-stage2-wd's Stage-1 model
    $F experiment experiments/beauty-stage2-screens.yaml ;;
  sasrec-ml-100k-order)  # issue 13: SASRec on ML-100k with bucketed, balanced or shuffled batches, 3 seeds
    $F experiment experiments/sasrec-ml-100k-order.yaml ${SEEDS:+--seeds $SEEDS} ;;
  sasrec-beauty-order)  # issue 13: SASRec on Beauty, balanced batches or Adam beta2 0.98 (seed 0)
    $F experiment experiments/sasrec-beauty-order.yaml ${SEEDS:+--seeds $SEEDS} ;;
  fmrec-beauty-recipe)  # issue 13: FMRec on Beauty with FAVE's Beauty Stage-1 recipe (seed 0)
    $F experiment experiments/fmrec-beauty-recipe.yaml ${SEEDS:+--seeds $SEEDS} ;;
  sasrec-beauty-loss)  # issue 13/14: SASRec on Beauty, sampled softmax against the full one, to early stopping
    $F experiment experiments/sasrec-beauty-loss.yaml ;;
  sampling)  # issue 14: SASRec on ML-100k with the sampled softmax of large catalogs (256 uniform) vs full, 3 seeds
    $F experiment experiments/sampling.yaml ${SEEDS:+--seeds $SEEDS} ;;
  alpha)  # issue 13: FAVE on ML-100k with alpha = 0.9 (paper 0.5), 3 seeds (seed 0 is Figure 5's run)
    $F experiment experiments/alpha.yaml ${SEEDS:+--seeds $SEEDS} ;;
  epochs)  # issue 13: FAVE on ML-100k with Stage 1 up to 40 epochs (early stopping), 3 seeds
    $F experiment experiments/epochs.yaml ${SEEDS:+--seeds $SEEDS} ;;
  stage2-epochs)  # issue 13: FAVE on ML-100k, Stage 2 up to 12 epochs with early stopping (3 seeds)
    $F experiment experiments/stage2-epochs.yaml ${SEEDS:+--seeds $SEEDS} ;;
  ema)  # issue 13: FAVE on ML-100k with weight averaging over 2 epochs (train.ema_epochs=2), 3 seeds
    $F experiment experiments/ema.yaml ${SEEDS:+--seeds $SEEDS} ;;
  fmrec-recipe)  # issue 13: FMRec on ML-100k with FAVE's Stage-1 recipe (CE weight 0.9, <= 40 epochs), 3 seeds
    $F experiment experiments/fmrec-recipe.yaml ${SEEDS:+--seeds $SEEDS} ;;
  stage2-prefix)  # issue 13: FAVE on ML-100k, Stage 2 in the prefix layout from the parallel Stage 1 (SEEDS, default 0 1 2)
    $F experiment experiments/stage2-prefix.yaml ${SEEDS:+--seeds $SEEDS} ;;
  dreamrec-steps)  # issue 16: DreamRec on ML-100k, the faithful recipe beside more updates, CE, w = 0, init 0.1 (seed 0)
    $F experiment experiments/dreamrec-steps.yaml ;;
  dreamrec)  # issue 16: DreamRec on ML-100k with its packaged recipe, seeds 0-2
    $F experiment experiments/dreamrec.yaml ${SEEDS:+--seeds $SEEDS} ;;
  beauty-recipe)  # issue 13: FAVE on Beauty, gathered reconstruction, Stage 1 up to 20 epochs, alpha 0.5 and 0.9
    $F experiment experiments/beauty-recipe.yaml ${SEEDS:+--seeds $SEEDS} ;;
  beauty-fast)  # issue 13/14: FAVE on Beauty with sampled target CE + gathered reconstruction + cosine, seed 0
    X=(--model fave --dataset beauty --seed 0 --set threads=1 --set time_budget_s=0 --set lr_schedule=cosine
       --set warmup_epochs=1 --set params.ce_loss=sampled --set params.recon=gathered --set stage1_epochs=15
       --set batch_order=bucketed)  # buckets: the Beauty recipe then
    train runs/beauty-fast/fave-stage1-seed0 "${X[@]}" --set stage=1 --set patience=100 --set eval_every=3
    train runs/beauty-fast/fave-seed0 "${X[@]}" --set stage=2 --set patience=100 --set eval_every=3 \
      --set init_from=runs/beauty-fast/fave-stage1-seed0
    $F report runs/beauty-fast/*-seed* --out results/beauty-fast --command "bash scripts/reproduce.sh beauty-fast" \
      --title "Beauty: FAVE with sampled target CE (1,024 negatives), gathered reconstruction, cosine lr; 15 + 3 epochs, seed 0" ;;
  eval-seeds)  # issue 13: how much FAVE's test score moves with the inference draws (needs the switches block)
    R=runs/ml-100k-switches
    train "$R/cosine-stage2-from-seed0" --model fave --dataset ml-100k --seed 0 --set threads=1 --set time_budget_s=0 \
      --set lr_schedule=cosine --set warmup_epochs=1 --set stage=2 --set stage1_epochs=20 --set patience=100 \
      --set init_from="$R/cosine-seed0"
    .venv/bin/python scripts/eval_seeds.py "$R/cosine-stage2-from-seed0" --seeds 10 --out results/fave-eval-seeds ;;
  report)
    $F report runs/ml-100k/*-seed* --out results/ml-100k --title "ML-100k: every model (Table 1)" \
      --command "bash scripts/reproduce.sh ml-100k; bash scripts/reproduce.sh baselines; bash scripts/reproduce.sh table1"
    $F report runs/beauty/*-seed* --out results/beauty --title "Beauty: every model (Table 1)" \
      --command "SEEDS='0 1 2' bash scripts/reproduce.sh beauty; bash scripts/reproduce.sh sasrec-beauty; \
bash scripts/reproduce.sh baselines-beauty; bash scripts/reproduce.sh table1-beauty"
    $F report runs/ml-100k/fave-stage1-seed* runs/ml-100k-ablations/*-seed* --out results/ml-100k-ablations \
      --title "ML-100k: FAVE ablations and authors'-code switches (2 Stage-2 epochs from each seed's Stage-1 run)" \
      --command "SEEDS='0 1 2' bash scripts/reproduce.sh ablations"
    $F report runs/ml-100k/fave-stage1-seed0 runs/ml-100k-recipes/*-seed0 --out results/ml-100k-recipes \
      --title "ML-100k: parallel (CPU) vs prefix (paper) recipe, Stage 1, same wall-clock budget" \
      --command "bash scripts/reproduce.sh recipes" ;;
esac
