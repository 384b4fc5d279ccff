"""STOSA: the Wasserstein distance by hand, contract on a random batch, overfitting a chain."""

from __future__ import annotations

import torch

from fave.data.batching import Batch
from fave.models.stosa import STOSA, STOSAConfig, wasserstein2, wasserstein2_pairwise

from toy import N_ITEMS, chain_data, check_loss_and_scores, next_item_hits, overfit, random_batch


def test_wasserstein_distance_by_hand() -> None:
    # N([0, 0], diag[1, 4]) vs N([3, 4], diag[4, 1]): |mu|^2 = 9 + 16; sqrt-cov: (1-2)^2 + (2-1)^2
    m1, c1 = torch.tensor([0.0, 0.0]), torch.tensor([1.0, 4.0])
    m2, c2 = torch.tensor([3.0, 4.0]), torch.tensor([4.0, 1.0])
    assert float(wasserstein2(m1, c1, m2, c2)) == 27.0
    assert float(wasserstein2(m1, c1, m1, c1)) == 0.0
    # the pairwise (matmul) form agrees with the elementwise one
    g = torch.Generator().manual_seed(0)
    a_m, b_m = torch.randn(2, 3, 5, 8, generator=g), torch.randn(2, 4, 8, generator=g)
    a_c, b_c = torch.rand(2, 3, 5, 8, generator=g) + 0.1, torch.rand(2, 4, 8, generator=g) + 0.1
    pair = wasserstein2_pairwise(a_m, a_c, b_m.unsqueeze(1), b_c.unsqueeze(1))  # [2, 3, 5, 4]
    each = wasserstein2(a_m[..., :, None, :], a_c[..., :, None, :], b_m[:, None, None], b_c[:, None, None])
    torch.testing.assert_close(pair, each, rtol=1e-4, atol=1e-4)


def test_loss_and_scores_on_a_random_batch() -> None:
    torch.manual_seed(0)
    model = STOSA(STOSAConfig(hidden=16, heads=2, layers=2, max_len=8), N_ITEMS)
    for layout in ("parallel", "prefix"):
        out, scores = check_loss_and_scores(model, random_batch(layout))
        assert set(out.parts) == {"ce", "pvn"}
        assert (scores <= 1e-4).all()  # scores are negative distances


def test_causal_and_padding_invariant() -> None:
    torch.manual_seed(0)
    model = STOSA(STOSAConfig(hidden=16, heads=2, layers=2, max_len=8), N_ITEMS).eval()
    history = torch.tensor([[1, 2, 3, 4, 5]])
    changed = torch.tensor([[1, 2, 3, 9, 7]])
    (m1, c1), (m2, c2) = model.encode(history), model.encode(changed)
    torch.testing.assert_close(m1[:, :3], m2[:, :3])
    torch.testing.assert_close(c1[:, :3], c2[:, :3])
    assert (c1 > 0).all()
    # left padding changes nothing: padding keys are masked, positions are right-aligned
    padded = torch.cat([torch.zeros(1, 3, dtype=torch.long), history], 1)
    user = torch.zeros(1, dtype=torch.long)
    torch.testing.assert_close(model.score_all(Batch(history, user)), model.score_all(Batch(padded, user)))


def test_overfits_a_deterministic_chain() -> None:
    torch.set_num_threads(1)
    torch.manual_seed(0)
    train, targets = chain_data()
    model = STOSA(STOSAConfig(hidden=32, heads=2, layers=1, dropout=0.0, max_len=12), N_ITEMS)
    losses = overfit(model, train, epochs=150, max_len=12)
    assert losses[-1] < 0.1 * losses[0]
    assert next_item_hits(model, train, targets, max_len=12) >= len(train) - 1
