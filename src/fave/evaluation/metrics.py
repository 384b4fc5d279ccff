"""Ranking metrics for one relevant item per user, as pure functions of the rank.

Ranks are 1-based. Ties are broken deterministically: rank = 1 + #items with a higher
score + #items with an equal score and a lower id (so a constant scorer is not rewarded).
"""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor

KS = (5, 10, 20)


def target_ranks(scores: Tensor, target_col: Tensor) -> Tensor:
    """scores [B, N] (column j = item j+1), target_col [B] (0-based column) -> ranks [B]."""
    scores = scores.nan_to_num(nan=float("-inf"))  # a NaN score never ranks above anything
    target_score = scores.gather(1, target_col[:, None])  # [B, 1]
    cols = torch.arange(scores.shape[1], device=scores.device)[None, :]
    higher = (scores > target_score).sum(1)
    tied_before = ((scores == target_score) & (cols < target_col[:, None])).sum(1)
    return 1 + higher + tied_before


def hit_rate(ranks: np.ndarray, k: int) -> np.ndarray:
    return (ranks <= k).astype(np.float64)


def ndcg(ranks: np.ndarray, k: int) -> np.ndarray:
    """One relevant item: NDCG@K = 1 / log2(rank + 1) when rank <= K, else 0."""
    return np.where(ranks <= k, 1.0 / np.log2(ranks + 1.0), 0.0)


def mrr(ranks: np.ndarray, k: int) -> np.ndarray:
    return np.where(ranks <= k, 1.0 / ranks, 0.0)


def summarize(ranks: np.ndarray, ks: tuple[int, ...] = KS) -> dict[str, float]:
    """Per-user averages of HR, NDCG and MRR at every K (fractions, not percent)."""
    ranks = np.asarray(ranks, dtype=np.float64)
    out: dict[str, float] = {}
    for name, fn in (("HR", hit_rate), ("NDCG", ndcg), ("MRR", mrr)):
        for k in ks:
            out[f"{name}@{k}"] = float(fn(ranks, k).mean()) if len(ranks) else 0.0
    return out
