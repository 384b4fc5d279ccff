"""Average-velocity (MeanFlow) training targets for a network f that predicts x_1, and the
Stage-2 objectives of FAVE built on them.

The total time derivative of f along the path, ``df/dt = (d f/d x_t) v + d f/d t`` (with
``dr/dt = 0``), is one forward-mode JVP with tangent ``(v, 1, 0)`` on ``(x_t, t, r)``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

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


# -- Stage-2 objectives (FAVE-NOTES sec. 4) ------------------------------------------------
# Each reads the network output ``out`` and its time derivative ``d_out`` (from
# :func:`time_derivative`) at a :class:`MeanFlowSample`, averaged over the states where
# ``mask`` [*] holds, and returns the flow part of the loss with the x_1 estimate ``f`` that
# further losses read.


@dataclass
class MeanFlowSample:
    """A training point: ``x_t`` [*, D] on the linear path to ``x_1`` at time ``t`` [*], with
    velocity ``v = x_1 - x_0`` and end time ``r`` [*] (r >= t)."""

    x_1: Tensor
    x_t: Tensor
    v: Tensor
    t: Tensor
    r: Tensor


@dataclass
class FlowObjective:
    """The flow part of a loss: ``loss`` to minimise, its ``match`` and ``cons`` terms (for the
    log) and ``f``, the x_1 estimate [*, D] the network's output stands for."""

    loss: Tensor
    match: Tensor
    cons: Tensor
    f: Tensor


def masked_mean_square(x: Tensor, mask: Tensor) -> Tensor:
    """Mean over the last dim of ``x**2`` [*, D], then over the positions where ``mask`` [*] holds."""
    return (x**2).mean(-1)[mask].mean()


def _regression(
    out: Tensor, d_out: Tensor, target: Tensor, mask: Tensor, gamma: float, use_match: bool, use_cons: bool, f: Tensor
) -> FlowObjective:
    """``||out - target||^2 + gamma ||d out/dt||^2``, either term switched off by its flag."""
    zero = out.new_zeros(())
    match = masked_mean_square(out - target, mask) if use_match else zero
    cons = masked_mean_square(d_out, mask) if use_cons else zero
    return FlowObjective(match + gamma * cons, match, cons, f)


def paper_objective(
    out: Tensor, d_out: Tensor, s: MeanFlowSample, mask: Tensor, gamma: float, use_match: bool, use_cons: bool
) -> FlowObjective:
    """FAVE eqs. 21, 23: ``||f - x_1||^2 + gamma ||df/dt||^2`` for an x_1 predictor ``f = out``."""
    return _regression(out, d_out, s.x_1, mask, gamma, use_match, use_cons, f=out)


def velocity_objective(
    out: Tensor, d_out: Tensor, s: MeanFlowSample, mask: Tensor, gamma: float, use_match: bool, use_cons: bool
) -> FlowObjective:
    """The authors' code: ``out`` read as a velocity u, ``||u - v||^2 + gamma ||du/dt||^2``,
    with ``f = x_t + (1 - t) u``."""
    f = s.x_t + (1 - expand_time(s.t, out)) * out
    return _regression(out, d_out, s.v, mask, gamma, use_match, use_cons, f=f)


def consistent_objective(
    out: Tensor, d_out: Tensor, s: MeanFlowSample, mask: Tensor, use_match: bool, use_cons: bool
) -> FlowObjective:
    """``||f - sg(f_tgt)||^2`` with the MeanFlow target of :func:`consistent_target` for ``f = out``;
    without ``use_cons`` the target is x_1, without ``use_match`` only its r = 1 part (df/dt = 0).
    ``cons`` (logged, not trained) is ``||df/dt||^2``."""
    if not use_cons:
        f_tgt = s.x_1
    elif not use_match:
        f_tgt = (out + (1 - expand_time(s.t, out)) * d_out).detach()
    else:
        f_tgt = consistent_target(s.x_1, out, d_out.detach(), s.t, s.r)
    match = masked_mean_square(out - f_tgt, mask)
    return FlowObjective(match, match, masked_mean_square(d_out.detach(), mask), out)
