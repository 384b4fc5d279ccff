"""Distances to a target and the 2-D t-SNE map shared by the figures.

The pictures show l2-normalised vectors, so the distances that go with them are the cosine
distance ``1 - cos(x, e)`` and the l2 distance of the unit vectors
``||x/|x| - e/|e|||`` (= ``sqrt(2 (1 - cos))``); the raw l2 distance ``||x - e||`` is kept
beside them because it also sees the vectors' lengths.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor

DISTANCES = ("cosine", "l2_unit", "l2")


def unit(x: Tensor, eps: float = 1e-12) -> Tensor:
    """x / ||x|| along the last axis (a zero vector stays zero). [..., D] -> [..., D]."""
    return x / x.norm(dim=-1, keepdim=True).clamp_min(eps)


def distances(x: Tensor, target: Tensor) -> dict[str, Tensor]:
    """Cosine distance, unit-vector l2 and raw l2 of x to target. [..., D] x [..., D] -> [...] each."""
    u, v = unit(x), unit(target)
    return {
        "cosine": 1.0 - (u * v).sum(-1),
        "l2_unit": (u - v).norm(dim=-1),
        "l2": (x - target).norm(dim=-1),
    }


def mean_std(values: Tensor, dim: int = -1) -> dict[str, list[float] | float]:
    """Mean and (population) standard deviation over ``dim``, as plain floats or lists."""
    mean, std = values.double().mean(dim), values.double().std(dim, unbiased=False)
    return {"mean": mean.tolist(), "std": std.tolist()}


def path_length(states: Tensor) -> Tensor:
    """Length of the polyline through the unit vectors of ``states`` [S, B, D] -> [B]."""
    u = unit(states)
    return (u[1:] - u[:-1]).norm(dim=-1).sum(0)


def tsne_2d(points: np.ndarray, seed: int) -> np.ndarray:
    """t-SNE (scikit-learn, PCA init, seeded) of the unit vectors of ``points`` [n, D] -> [n, 2].

    Perplexity is ``min(30, (n - 1) / 3)`` so that small point sets work too; coordinates are
    only comparable within one map.
    """
    from sklearn.manifold import TSNE

    x = unit(torch.as_tensor(points, dtype=torch.float64)).numpy()
    perplexity = float(min(30.0, max(1.0, (len(x) - 1) / 3)))
    tsne = TSNE(n_components=2, perplexity=perplexity, init="pca", random_state=seed, n_jobs=1)
    return tsne.fit_transform(x)
