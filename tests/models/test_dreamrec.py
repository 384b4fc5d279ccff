"""DreamRec: contract on a random batch, the sampler's call count and schedule, overfitting."""

from __future__ import annotations

import numpy as np
import torch

from fave.models.dreamrec import DreamRec, DreamRecConfig, linear_alpha_bars

from toy import N_ITEMS, chain_data, check_loss_and_scores, next_item_hits, overfit, random_batch


def small(**kw: object) -> DreamRecConfig:
    return DreamRecConfig(**{"hidden": 16, "heads": 2, "steps": 10, "max_len": 8, **kw})


def test_loss_and_scores_on_a_random_batch() -> None:
    torch.manual_seed(0)
    for kind, ce in (("mlp1", 0.0), ("mlp2", 0.5)):
        model = DreamRec(small(denoiser=kind, ce_weight=ce), N_ITEMS)
        for layout in ("parallel", "prefix"):
            out, _ = check_loss_and_scores(model, random_batch(layout))
            assert ("ce" in out.parts) == (ce > 0)


def test_sampler_calls_the_denoiser_once_per_configured_step() -> None:
    torch.manual_seed(0)
    batch = random_batch("prefix")
    for steps, sample_steps, expected in ((10, 0, 10), (10, 4, 4), (10, 1, 1), (7, 7, 7)):
        model = DreamRec(small(steps=steps, sample_steps=sample_steps), N_ITEMS).eval()
        calls: list[int] = []
        model.denoiser.register_forward_hook(lambda m, args, out, calls=calls: calls.append(int(args[2][0])))
        model.score_all(batch)
        assert len(calls) == expected
        assert calls == sorted(calls, reverse=True) and calls[-1] == 0  # noisiest first, ends at 0
        if sample_steps in (0, steps):
            assert calls == list(range(steps - 1, -1, -1))


def test_sampler_returns_the_guided_prediction_of_a_constant_denoiser() -> None:
    """If f(x_k, h, k) = c for every input, (1 + w) c - w c = c whatever the noise."""
    torch.manual_seed(0)
    model = DreamRec(small(sample_steps=4, guidance=3.0), N_ITEMS).eval()
    c = torch.arange(16.0) / 16
    model.denoiser.forward = lambda x_k, h, k: c.expand_as(x_k)  # type: ignore[method-assign]
    torch.testing.assert_close(model.sample(torch.randn(5, 16)), c.expand(5, 16))


def test_sampling_is_reproducible_with_a_generator() -> None:
    torch.manual_seed(0)
    model = DreamRec(small(), N_ITEMS).eval()
    batch = random_batch("prefix")
    a = model.score_all(batch, torch.Generator().manual_seed(3))
    b = model.score_all(batch, torch.Generator().manual_seed(3))
    torch.testing.assert_close(a, b)


def test_schedule_ends_near_the_prior_for_any_number_of_steps() -> None:
    for steps in (10, 100, 1000):
        abar = linear_alpha_bars(steps, 1e-4, 0.02)
        assert abar.shape == (steps,) and (abar[1:] < abar[:-1]).all()
        assert abar[0] > 0.9 and abar[-1] < 1e-3


def test_overfits_a_deterministic_chain() -> None:
    torch.set_num_threads(1)
    torch.manual_seed(0)
    train, targets = chain_data()
    cfg = DreamRecConfig(hidden=32, heads=2, dropout=0.0, steps=20, sample_steps=5, max_len=12)
    model = DreamRec(cfg, N_ITEMS)
    losses = overfit(model, train, epochs=300, max_len=12)
    assert np.mean(losses[-20:]) < 0.2 * np.mean(losses[:5])
    assert next_item_hits(model, train, targets, max_len=12, sample_seed=0) >= len(train) - 1


def test_step_embedding_computed_once_per_distinct_step_changes_nothing() -> None:
    from fave.models.blocks import sinusoidal

    torch.manual_seed(0)
    model = DreamRec(small(), N_ITEMS)
    d = model.denoiser
    x, h, k = torch.randn(7, 16), torch.randn(7, 16), torch.tensor([3, 0, 3, 9, 1, 0, 3])
    direct = d.net(torch.cat([x, h, d.step_mlp(sinusoidal(k, 16))], dim=-1))
    torch.testing.assert_close(d(x, h, k), direct)


def test_item_embedding_init_scale() -> None:
    torch.manual_seed(0)
    for std in (1.0, 0.1):
        w = DreamRec(small(hidden=64, emb_std=std), 500).item_emb.weight[1:]
        assert abs(float(w.std()) - std) < 0.05 * std
