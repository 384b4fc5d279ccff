"""Learning-rate schedules as pure functions of training progress (stateless, so resume is exact).

``constant``: the stage's lr throughout. ``step``: multiplied by ``lr_gamma`` every
``lr_step_epochs`` epochs (the authors' code: StepLR(100, 0.1), FAVE-NOTES sec. 9). ``cosine``:
linear warm-up over ``warmup_epochs``, then a half cosine to 0 at the stage's last planned epoch.
"""

from __future__ import annotations

import math

from fave.config import TrainConfig


def lr_factor(tc: TrainConfig, epoch: int, step: int, steps_per_epoch: int, epochs: int) -> float:
    """Multiplier of the stage's lr at ``step`` (0-based) of ``epoch`` (0-based) of ``epochs`` planned."""
    if tc.lr_schedule == "constant":
        return 1.0
    if tc.lr_schedule == "step":
        return tc.lr_gamma ** (epoch // tc.lr_step_epochs)
    progress = epoch + (step + 1) / max(1, steps_per_epoch)  # epochs done after this step, in (0, epochs]
    if progress <= tc.warmup_epochs:
        return progress / tc.warmup_epochs
    span = max(1e-9, epochs - tc.warmup_epochs)
    return 0.5 * (1.0 + math.cos(math.pi * min(1.0, (progress - tc.warmup_epochs) / span)))
