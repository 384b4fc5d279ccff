"""Diversity of top-K lists: intra-list distance (ILD) and catalog coverage."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor


def ild(topk_cols: Tensor, item_vectors: Tensor) -> Tensor:
    """Mean pairwise cosine distance within each top-K list.

    topk_cols [B, K] (0-based columns into item_vectors), item_vectors [N, D] -> [B].
    """
    v = F.normalize(item_vectors[topk_cols].float(), dim=-1)  # [B, K, D]
    sim = v @ v.transpose(1, 2)  # [B, K, K]
    k = topk_cols.shape[1]
    if k < 2:
        return torch.zeros(topk_cols.shape[0])
    off_diag = sim.sum((1, 2)) - sim.diagonal(dim1=1, dim2=2).sum(1)
    return 1.0 - off_diag / (k * (k - 1))


def coverage(topk_cols: Tensor, num_items: int) -> float:
    """Fraction of the catalog that appears in at least one user's top-K list."""
    return float(torch.unique(topk_cols).numel() / num_items)
