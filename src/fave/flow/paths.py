"""The linear (rectified) probability path."""

from __future__ import annotations

from torch import Tensor


def expand_time(t: Tensor, like: Tensor) -> Tensor:
    """Broadcast times [*] to the shape of ``like`` [*, D]."""
    return t.reshape(*t.shape, *([1] * (like.dim() - t.dim())))


def linear_path(x_0: Tensor, x_1: Tensor, t: Tensor) -> tuple[Tensor, Tensor]:
    """-> (x_t, v): ``x_t = (1 - t) x_0 + t x_1`` and ``v = dx_t/dt = x_1 - x_0``."""
    tt = expand_time(t, x_0)
    return (1 - tt) * x_0 + tt * x_1, x_1 - x_0
