"""FMRec: sampler call count, Euler state = mean of predictions, loss in both recipes, overfit."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from fave.errors import FaveError
from fave.models.fmrec import FMRec, FMRecConfig
from fave.models.registry import build_model

from toy import N_ITEMS, chain, overfit, random_batch

pytestmark = pytest.mark.usefixtures("one_thread")


TINY = dict(hidden=16, heads=2, layers=2, decoder_hidden=(8, 8), dropout=0.0, drop_path=0.0)


def tiny(**kw) -> FMRec:
    torch.manual_seed(0)
    return FMRec(FMRecConfig(**{**TINY, **kw}), N_ITEMS)


def record_calls(model: FMRec) -> list[torch.Tensor]:
    """Every call of the backbone appends its x_1 prediction at the last position."""
    outputs: list[torch.Tensor] = []
    model.net.register_forward_hook(lambda mod, args, out: outputs.append(out[0][:, -1].clone()))
    return outputs


@pytest.mark.parametrize("steps", [1, 4, 30])
def test_sampler_calls_the_network_sample_steps_times(steps: int) -> None:
    model = tiny(sample_steps=steps).eval()
    calls = record_calls(model)
    with torch.no_grad():
        model.score_all(random_batch("prefix"))
    assert len(calls) == steps


def test_euler_state_is_the_mean_of_the_predictions() -> None:
    model = tiny(sample_steps=7).eval()
    history = random_batch("prefix").history
    preds = record_calls(model)
    with torch.no_grad():
        x = model.generate(history)
    assert len(preds) == 7
    torch.testing.assert_close(x, torch.stack(preds).mean(0), atol=1e-5, rtol=1e-5)
    # and the predictions differ (the state moves), so the check is not trivially true
    assert (preds[0] - preds[-1]).abs().max() > 1e-4


def test_default_config_follows_the_notes() -> None:
    c = FMRecConfig()
    assert (c.dual_time, c.alpha, c.beta, c.sample_steps, c.recipe) == (
        False,
        0.2,
        0.4,
        30,
        "parallel",
    )
    model = build_model("fmrec", dict(TINY, recipe="prefix"), N_ITEMS)
    assert isinstance(model, FMRec) and model.default_layout == "prefix" and not model.net.causal
    with pytest.raises(FaveError, match="recipe"):
        build_model("fmrec", dict(TINY, recipe="both"), N_ITEMS)
    with pytest.raises(FaveError, match="sample_steps"):
        build_model("fmrec", dict(TINY, sample_steps=0), N_ITEMS)


@pytest.mark.parametrize("recipe", ["parallel", "prefix"])
def test_loss_is_finite_and_backward_reaches_every_parameter(recipe: str) -> None:
    model = tiny(recipe=recipe)
    out = model.loss(random_batch(recipe))
    assert torch.isfinite(out.loss) and set(out.parts) == {"fm", "ce", "src"}
    out.loss.backward()
    missing = [n for n, p in model.named_parameters() if p.grad is None]
    assert not missing  # flow loss, CE and the decoder's reconstruction all train


@pytest.mark.parametrize("recipe", ["parallel", "prefix"])
def test_loss_falls_on_a_tiny_chain(recipe: str) -> None:
    model = tiny(recipe=recipe)
    losses = overfit(model, chain(num_users=6, length=8), epochs=30, max_len=8, batch_size=64, layout=recipe)
    assert np.mean(losses[-5:]) < 0.7 * np.mean(losses[:5])
