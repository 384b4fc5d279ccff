"""Average-velocity (MeanFlow) training targets for a network f that predicts x_1.

The total time derivative of f along the path, ``df/dt = (d f/d x_t) v + d f/d t`` (with
``dr/dt = 0``), is one forward-mode JVP with tangent ``(v, 1, 0)`` on ``(x_t, t, r)``.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor
from torch.func import jvp

from fave.flow.paths import expand_time

FlowFn = Callable[[Tensor, Tensor, Tensor], Tensor]


def time_derivative(fn: FlowFn, x_t: Tensor, t: Tensor, r: Tensor, v: Tensor) -> tuple[Tensor, Tensor]:
    """-> (f(x_t, t, r), df/dt along the tangent (v, 1, 0)), computed in fp32 in one call."""
    with torch.autocast(device_type=x_t.device.type, enabled=False):
        return jvp(fn, (x_t.float(), t.float(), r.float()), (v.float(), torch.ones_like(t), torch.zeros_like(r)))


def consistent_target(x_1: Tensor, f: Tensor, df_dt: Tensor, t: Tensor, r: Tensor, eps: float = 1e-4) -> Tensor:
    """MeanFlow target for an x_1-predicting network (FAVE-NOTES sec. 4).

    With ``f := x_t + (1 - t) u`` the identity ``u = v + (r - t) du/dt`` becomes
    ``f_tgt = (1 - rho) x_1 + rho f + (r - t) df/dt`` with ``rho = (r - t) / (1 - t)``.
    It is x_1 when r = t and asks df/dt = 0 when r = 1. Returned detached.
    """
    tt, rr = expand_time(t, f), expand_time(r, f)
    rho = (rr - tt) / (1 - tt).clamp_min(eps)
    return ((1 - rho) * x_1 + rho * f + (rr - tt) * df_dt).detach()
