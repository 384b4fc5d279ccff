"""Time samplers: the heavy-tailed "mode" sampler of Esser et al. (SD3), uniform, and
the end-time mixture of FAVE eq. 20."""

from __future__ import annotations

import math

import torch
from torch import Tensor


def mode_times(
    shape: tuple[int, ...], scale: float = 1.0, eps: float = 1e-3, generator: torch.Generator | None = None
) -> Tensor:
    """``t = 1 - u - s (cos^2(pi u / 2) - 1 + u)``, u ~ U(0, 1), then ``t (1 - eps) + eps``."""
    u = torch.rand(shape, generator=generator)
    t = 1 - u - scale * (torch.cos(math.pi * u / 2) ** 2 - 1 + u)
    return t * (1 - eps) + eps


def uniform_times(shape: tuple[int, ...], generator: torch.Generator | None = None) -> Tensor:
    return torch.rand(shape, generator=generator)


def end_times(t: Tensor, p_end: float, generator: torch.Generator | None = None) -> Tensor:
    """Eq. 20: ``r ~ p_end * delta_1 + (1 - p_end) * U(t, 1)``."""
    at_end = torch.rand(t.shape, generator=generator) < p_end
    inside = t + (1 - t) * torch.rand(t.shape, generator=generator)
    return torch.where(at_end, torch.ones_like(t), inside)
