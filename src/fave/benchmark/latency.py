"""Wall-clock timing of scorers, interleaved round-robin so that drift (thermal, other
processes on a shared machine) hits every model alike.

Every figure times ``scorer(batch)`` for a batch already built and on the device, inside
``torch.inference_mode``; on CUDA the clock stops after a synchronisation.
"""

from __future__ import annotations

import time
from collections.abc import Sequence

import numpy as np
import torch

from fave.benchmark.flops import Scorer
from fave.data.batching import Batch, left_pad
from fave.data.dataset import EvalSet


def user_batch(eval_set: EvalSet, rows: Sequence[int], max_len: int, device: torch.device | str) -> Batch:
    """The test users ``rows`` as one left-padded batch (padded to its longest history)."""
    rows = np.asarray(rows, dtype=np.int64)
    return Batch(
        history=torch.from_numpy(left_pad([eval_set.inputs[j] for j in rows], max_len)),
        user=torch.from_numpy(eval_set.users[rows].astype(np.int64)),
        target=torch.from_numpy(eval_set.targets[rows].astype(np.int64)),
    ).to(device)


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


@torch.inference_mode()
def timed(scorer: Scorer, batch: Batch) -> float:
    """Seconds for one ``scorer(batch)``."""
    device = batch.history.device
    _sync(device)
    start = time.perf_counter()
    scorer(batch)
    _sync(device)
    return time.perf_counter() - start


def rotated(names: Sequence[str], i: int) -> list[str]:
    """The model order for round i: a rotation, so no model is always first or last."""
    k = i % max(1, len(names))
    return list(names[k:]) + list(names[:k])


def round_robin(scorers: dict[str, Scorer], batches: Sequence[Batch], rounds: int = 1) -> dict[str, list[float]]:
    """For each round and batch, time every scorer once (rotating the order).

    -> seconds per (round, batch) for every scorer, in the order measured.
    """
    names = list(scorers)
    times: dict[str, list[float]] = {n: [] for n in names}
    i = 0
    for _ in range(rounds):
        for batch in batches:
            for name in rotated(names, i):
                times[name].append(timed(scorers[name], batch))
            i += 1
    return times


def round_robin_passes(scorers: dict[str, Scorer], batches: Sequence[Batch], rounds: int) -> dict[str, list[float]]:
    """Whole passes over ``batches`` (e.g. the test set), one per model per round, rotated.

    -> the seconds of each pass for every scorer.
    """
    names = list(scorers)
    times: dict[str, list[float]] = {n: [] for n in names}
    for r in range(rounds):
        for name in rotated(names, r):
            times[name].append(sum(timed(scorers[name], b) for b in batches))
    return times


def summary_ms(seconds: Sequence[float]) -> dict[str, float]:
    """p50, p95 and mean of a list of durations, in milliseconds."""
    ms = 1000 * np.asarray(seconds, dtype=np.float64)
    return {
        "p50": float(np.percentile(ms, 50)),
        "p95": float(np.percentile(ms, 95)),
        "mean": float(ms.mean()),
        "n": len(ms),
    }
