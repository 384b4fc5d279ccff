"""WeightAverage: the running mean, then the exponential average, and swapping it into the model."""

from __future__ import annotations

import pytest
import torch

from fave.training.average import WeightAverage


def test_plain_mean_over_the_horizon_then_exponential() -> None:
    p = torch.nn.Parameter(torch.zeros(3))
    avg = WeightAverage([p], horizon_steps=4)
    values = [1.0, 2.0, 3.0, 4.0, 5.0, 6.0]
    for v in values[:4]:
        with torch.no_grad():
            p.fill_(v)
        avg.update()
    assert torch.allclose(avg.shadow[0], torch.full((3,), 2.5))  # mean of 1..4: the start (0) is forgotten
    expected = 2.5
    for v in values[4:]:
        with torch.no_grad():
            p.fill_(v)
        avg.update()
        expected += (v - expected) / 4  # share 1/horizon from then on
    assert torch.allclose(avg.shadow[0], torch.full((3,), expected))
    assert avg.steps == 6


def test_applied_swaps_the_average_in_and_restores_the_raw_weights_exactly() -> None:
    torch.manual_seed(0)
    model = torch.nn.Linear(4, 2)
    params = list(model.parameters())
    avg = WeightAverage(params, horizon_steps=10)
    with torch.no_grad():
        for p in params:
            p.add_(torch.randn_like(p))
    avg.update()
    raw = [p.detach().clone() for p in params]
    with avg.applied():
        for p, s in zip(params, avg.shadow, strict=True):
            assert torch.equal(p, s)
    for p, r in zip(params, raw, strict=True):
        assert torch.equal(p, r)


def test_a_saved_average_resumes_and_a_mismatched_one_is_refused() -> None:
    p = torch.nn.Parameter(torch.ones(2))
    saved = [torch.full((2,), 7.0)]
    avg = WeightAverage([p], horizon_steps=2, shadow=saved, steps=5)
    assert torch.equal(avg.shadow[0], saved[0]) and avg.steps == 5
    with pytest.raises(ValueError, match="does not match"):
        WeightAverage([p], horizon_steps=2, shadow=[torch.zeros(3)], steps=1)
