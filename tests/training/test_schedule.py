"""Learning-rate schedules: endpoints, warm-up, steps."""

from __future__ import annotations

import math

import pytest

from fave.config import TrainConfig
from fave.training.schedule import lr_factor


def test_constant_is_one() -> None:
    t = TrainConfig()
    assert {lr_factor(t, e, s, 10, 5) for e in range(5) for s in range(10)} == {1.0}


def test_step_decays_every_step_epochs() -> None:
    t = TrainConfig(lr_schedule="step", lr_step_epochs=3, lr_gamma=0.1)
    assert [lr_factor(t, e, 0, 10, 9) for e in (0, 2, 3, 5, 6)] == pytest.approx([1, 1, 0.1, 0.1, 0.01])


def test_cosine_warms_up_peaks_and_ends_at_zero() -> None:
    t = TrainConfig(lr_schedule="cosine", warmup_epochs=2)
    steps, epochs = 10, 12
    f = [lr_factor(t, e, s, steps, epochs) for e in range(epochs) for s in range(steps)]
    assert f[0] == pytest.approx(1 / 20)  # first step of the warm-up
    assert f[19] == pytest.approx(1.0)  # end of the warm-up: the full lr
    assert all(a <= b + 1e-12 for a, b in zip(f[:20], f[1:20], strict=False))  # rising
    assert all(a >= b - 1e-12 for a, b in zip(f[19:], f[20:], strict=False))  # then falling
    assert f[-1] == pytest.approx(0.0, abs=1e-12)
    mid = lr_factor(t, 6, steps - 1, steps, epochs)  # 7 of 12 epochs: half-way through the cosine
    assert mid == pytest.approx(0.5 * (1 + math.cos(math.pi * 0.5)))
