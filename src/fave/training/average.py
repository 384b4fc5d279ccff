"""Weight averaging (``train.ema_epochs``): validate, select and keep an exponential moving average of the
trainable weights instead of the last step's weights.

The average has a horizon of ``ema_epochs`` epochs of optimizer steps: each step moves it towards the new
weights by ``max(1 / horizon, 1 / steps)``, so over its first ``horizon`` steps it is the plain mean of the
weights so far (no pull towards the initial weights), then an exponential one (Polyak averaging; the same
update as ``torch.optim.swa_utils.get_ema_multi_avg_fn``, kept as tensors so that resuming is exact and the
averaged weights can be swapped into the one model that training, validation and saving share).
Parameters that do not require grad (e.g. FAVE's frozen item table in Stage 2) are not averaged.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import torch


class WeightAverage:
    """The running average of ``params`` (the stage's trainable parameters), updated after each step."""

    def __init__(
        self,
        params: list[torch.nn.Parameter],
        horizon_steps: float,
        shadow: list[torch.Tensor] | None = None,
        steps: int = 0,
    ) -> None:
        """``shadow`` and ``steps``: a resumed stage's average (``state.pt``); else it starts at ``params``."""
        self.params, self.horizon, self.steps = params, max(1.0, horizon_steps), steps
        if shadow:
            if len(shadow) != len(params) or any(s.shape != p.shape for s, p in zip(shadow, params, strict=True)):
                raise ValueError("the saved weight average does not match the stage's trainable parameters")
            self.shadow = [s.to(p.device, p.dtype).clone() for s, p in zip(shadow, params, strict=True)]
        else:
            self.shadow = [p.detach().clone() for p in params]

    @torch.no_grad()
    def update(self) -> None:
        """One optimizer step done: move the average towards the current weights."""
        self.steps += 1
        share = max(1.0 / self.horizon, 1.0 / self.steps)
        for s, p in zip(self.shadow, self.params, strict=True):
            s.lerp_(p.detach(), share)

    @contextlib.contextmanager
    def applied(self) -> Iterator[None]:
        """The averaged weights in the model for the duration (validation, saving), the raw ones after."""
        with torch.no_grad():
            raw = [p.detach().clone() for p in self.params]
            for p, s in zip(self.params, self.shadow, strict=True):
                p.copy_(s)
        try:
            yield
        finally:
            with torch.no_grad():
                for p, r in zip(self.params, raw, strict=True):
                    p.copy_(r)
