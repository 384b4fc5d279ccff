"""DDPM (Ho et al., 2020) pieces: the linear schedule, the forward noising and the posterior step.

Step convention of this module (DDPM's, not the flow time of :mod:`fave.flow.paths`): index
``n = 0`` is the clean sample ``x_0`` (``abar_0 = 1``) and ``n = T`` the noisiest; the
forward process is ``x_n = sqrt(abar_n) x_0 + sqrt(1 - abar_n) eps``. Sampling may visit a
sub-chain (strided steps ``n -> prev < n``): the posterior below holds for any such step
with ``alpha = abar_n / abar_prev`` and ``beta = 1 - alpha``, and is the plain ancestral
step when ``prev = n - 1``.
"""

from __future__ import annotations

from typing import TypeVar

import torch
from torch import Tensor

from fave.errors import FaveError

Scalar = TypeVar("Scalar", float, Tensor)


def q_sample(abar: Tensor, x_0: Tensor, eps: Tensor) -> Tensor:
    """``x_n = sqrt(abar_n) x_0 + sqrt(1 - abar_n) eps``; abar [*] (already at each sample's n), x_0, eps [*, D]."""
    a = abar.unsqueeze(-1)
    return a.sqrt() * x_0 + (1 - a).sqrt() * eps


def posterior(abar_n: Scalar, abar_prev: Scalar, alpha_from_beta: bool = False) -> tuple[Scalar, Scalar, Scalar]:
    """``q(x_prev | x_n, x_0) = N(c_0 x_0 + c_n x_n, var)`` for a step n -> prev (Ho et al. eq. 7):
    ``c_0 = sqrt(abar_prev) beta / (1 - abar_n)``, ``c_n = sqrt(alpha) (1 - abar_prev) / (1 - abar_n)``,
    ``var = beta (1 - abar_prev) / (1 - abar_n)``. On Python floats or on tensors (any shape).

    ``alpha_from_beta`` computes ``alpha`` as ``1 - beta`` instead of the ratio itself: the same
    number up to the last bit, which :class:`DDPMSchedule` keeps so that DiffuRec's samples stay
    bit for bit those of earlier versions.
    """
    beta = 1 - abar_n / abar_prev
    alpha = 1 - beta if alpha_from_beta else abar_n / abar_prev
    c_0 = abar_prev**0.5 * beta / (1 - abar_n)
    c_n = alpha**0.5 * (1 - abar_prev) / (1 - abar_n)
    return c_0, c_n, beta * (1 - abar_prev) / (1 - abar_n)


class DDPMSchedule:
    """Linear betas ``linspace(beta_start, beta_end, T)`` and their cumulative products (float64);
    posterior steps on any sub-chain. ``abar`` [T + 1] with ``abar[0] = 1`` and ``abar[T]`` ~ 0.
    """

    def __init__(self, steps: int, beta_start: float, beta_end: float) -> None:
        self.T = steps
        betas = torch.linspace(beta_start, beta_end, steps, dtype=torch.float64)
        self.abar = torch.cat([torch.ones(1, dtype=torch.float64), torch.cumprod(1 - betas, 0)])

    def q_sample(self, x0: Tensor, n: Tensor, eps: Tensor) -> Tensor:
        """:func:`q_sample` at integer steps n [*] (0..T); x0, eps [*, D]."""
        return q_sample(self.abar.to(x0.device)[n].to(x0.dtype), x0, eps)

    def chain(self, sample_steps: int) -> list[int]:
        """Evenly spaced steps from T down to 1 (all of them when sample_steps = T)."""
        if not 1 <= sample_steps <= self.T:
            raise FaveError(f"params.sample_steps={sample_steps}; must be in 1..{self.T}")
        return [int(n) for n in torch.linspace(self.T, 1, sample_steps).round().long()]

    def posterior(self, n: int, prev: int) -> tuple[float, float, float]:
        """:func:`posterior` (c_0, c_n, var) of the step n -> prev of this schedule, as floats."""
        return posterior(float(self.abar[n]), float(self.abar[prev]), alpha_from_beta=True)
