"""Time the evaluator's ranking step at 391,750 items: the reference (target_ranks of the scores and of
a masked copy) against ranks_both (same ranks, checked), on random scores for one chunk of users.

    OMP_NUM_THREADS=1 python results/bench-scale/eval_ranking.py
"""

import time

import numpy as np
import torch

from fave.evaluation.evaluator import mask_history, ranks_both
from fave.evaluation.metrics import target_ranks

torch.set_num_threads(1)
N = 391_750
B = max(1, (1 << 26) // N)  # the evaluator's chunk at this catalog size
gen = torch.Generator().manual_seed(0)
rng = np.random.default_rng(0)
scores = torch.randn(B, N, generator=gen)
target = torch.randint(0, N, (B,), generator=gen)
inputs = [rng.integers(1, N + 1, size=19) for _ in range(B)]


def reference():
    return target_ranks(scores, target), target_ranks(mask_history(scores, inputs, target), target)


def new():
    r = ranks_both(scores, inputs, target)
    return r["paper"], r["masked"]


a, b = reference(), new()
assert all(torch.equal(x, y) for x, y in zip(a, b, strict=True)), "ranks differ"
times = {"reference": [], "ranks_both": []}
for _ in range(3):
    for name, fn in (("reference", reference), ("ranks_both", new)):
        t0 = time.perf_counter()
        fn()
        times[name].append(time.perf_counter() - t0)
med = {k: float(np.median(v)) for k, v in times.items()}
chunks = -(-50_000 // B)
print(f"chunk of {B} users x {N:,} items, median of 3 (interleaved), one thread:")
for k, v in med.items():
    print(f"  {k}: {v:.3f} s per chunk -> {v * chunks:.0f} s for 50,000 users ({chunks} chunks)")
print(f"  ratio reference / ranks_both: {med['reference'] / med['ranks_both']:.1f}x")
