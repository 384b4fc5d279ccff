"""Samplers for x_1-predicting flows: multi-step Euler and one step."""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor

X1Fn = Callable[[Tensor, Tensor], Tensor]  # (x_t [B, D], t [B]) -> x_1 prediction [B, D]


def euler_x1(fn: X1Fn, x_0: Tensor, steps: int) -> Tensor:
    """Euler with the x_1-parameterised velocity ``v = f(x_t, t) - x_0`` (FAVE eq. 10,
    FMRec): the final state equals the mean of the ``steps`` predictions of x_1."""
    x = x_0
    for k in range(steps):
        t = torch.full((x_0.shape[0],), k / steps, device=x_0.device)
        x = x + (fn(x, t) - x_0) / steps
    return x


def one_step(fn: X1Fn, x_0: Tensor) -> Tensor:
    """FAVE eq. 25: ``x_1 = x_0 + u(x_0, 0, 1) = f(x_0, 0, 1)``: one network call."""
    return fn(x_0, torch.zeros(x_0.shape[0], device=x_0.device))


def euler_x1_states(fn: X1Fn, x_0: Tensor, steps: int) -> Tensor:
    """Every state of :func:`euler_x1`: ``[steps + 1, B, D]``, row k at ``t = k / steps``
    (row 0 is ``x_0``, the last row is :func:`euler_x1`'s result, computed the same way)."""
    states = [x_0]
    x = x_0
    for k in range(steps):
        t = torch.full((x_0.shape[0],), k / steps, device=x_0.device)
        x = x + (fn(x, t) - x_0) / steps
        states.append(x)
    return torch.stack(states)
