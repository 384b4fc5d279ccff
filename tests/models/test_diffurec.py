"""DiffuRec: schedule, sampler call count and output, times fed to the backbone, loss."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from fave.errors import FaveError
from fave.models.blocks import RMSNorm
from fave.models.diffurec import DDPMSchedule, DiffuRec, DiffuRecConfig
from fave.models.registry import build_model

from toy import N_ITEMS, chain, overfit, random_batch

pytestmark = pytest.mark.usefixtures("one_thread")


TINY = dict(hidden=16, heads=2, layers=2, dropout=0.0, drop_path=0.0)


def tiny(**kw) -> DiffuRec:
    torch.manual_seed(0)
    return DiffuRec(DiffuRecConfig(**{**TINY, **kw}), N_ITEMS)


def record_calls(model: DiffuRec) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """(t fed to the backbone, x0 prediction at the last position) for every call."""
    calls: list[tuple[torch.Tensor, torch.Tensor]] = []
    model.net.register_forward_hook(lambda mod, args, out: calls.append((args[2].clone(), out[0][:, -1].clone())))
    return calls


def test_schedule_matches_the_truncated_linear_betas() -> None:
    s = DDPMSchedule(32, 0.013125, 0.635)
    betas = 1 - s.abar[1:] / s.abar[:-1]
    torch.testing.assert_close(betas, torch.linspace(0.013125, 0.635, 32, dtype=torch.float64))
    assert s.chain(32) == list(range(32, 0, -1))
    assert s.chain(1) == [32] and s.chain(2) == [32, 1] and len(set(s.chain(10))) == 10
    # full chain: the posterior of DDPM (Ho et al. eq. 7)
    n = 5
    c0, cn, var = s.posterior(n, n - 1)
    b, a, a_prev = float(betas[n - 1]), float(s.abar[n]), float(s.abar[n - 1])
    assert c0 == pytest.approx(a_prev**0.5 * b / (1 - a))
    assert cn == pytest.approx((1 - b) ** 0.5 * (1 - a_prev) / (1 - a))
    assert var == pytest.approx(b * (1 - a_prev) / (1 - a))
    assert s.posterior(7, 0) == pytest.approx((1.0, 0.0, 0.0))  # last step returns x0_hat
    x0 = torch.ones(2, 3)
    torch.testing.assert_close(s.q_sample(x0, torch.tensor([0, 32]), torch.zeros(2, 3))[0], x0[0])
    with pytest.raises(FaveError):
        s.chain(33)


@pytest.mark.parametrize("steps", [1, 5, 32])
def test_sampler_calls_the_network_sample_steps_times(steps: int) -> None:
    model = tiny(sample_steps=steps).eval()
    calls = record_calls(model)
    with torch.no_grad():
        x = model.generate(random_batch("prefix").history)
    assert len(calls) == steps
    # first call at pure noise (n = T -> t = 0); the output is the last x0 prediction
    assert torch.all(calls[0][0] == 0)
    if steps > 1:
        torch.testing.assert_close(calls[-1][0], torch.full_like(calls[-1][0], 1 - 1 / 32))
    torch.testing.assert_close(x, calls[-1][1])


def test_architecture_has_no_decoder_and_pre_layernorm_blocks() -> None:
    model = tiny()
    assert model.net.decoder is None
    assert not any("decoder" in n for n, _ in model.named_parameters())
    assert not any(isinstance(m, RMSNorm) for m in model.net.encoder.modules())
    assert any(isinstance(m, RMSNorm) for m in tiny(norm="rms").net.encoder.modules())
    model = build_model("diffurec", dict(TINY, layers=1), N_ITEMS)  # decoder_block 2 > layers is fine
    assert model.default_layout == "parallel" and model.net.causal
    with pytest.raises(FaveError, match="recipe"):
        build_model("diffurec", dict(TINY, recipe="x"), N_ITEMS)


@pytest.mark.parametrize("recipe", ["parallel", "prefix"])
def test_loss_is_finite_and_backward_works(recipe: str) -> None:
    model = tiny(recipe=recipe)
    out = model.loss(random_batch(recipe))
    assert torch.isfinite(out.loss) and set(out.parts) == {"ce"}
    out.loss.backward()
    assert all(p.grad is not None for p in model.parameters())


@pytest.mark.parametrize("recipe", ["parallel", "prefix"])
def test_loss_falls_on_a_tiny_chain(recipe: str) -> None:
    model = tiny(recipe=recipe)
    losses = overfit(model, chain(num_users=6, length=8), epochs=30, max_len=8, batch_size=64, layout=recipe)
    assert np.mean(losses[-5:]) < 0.7 * np.mean(losses[:5])
