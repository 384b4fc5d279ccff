"""STOSA: the Wasserstein distance by hand, contract on a random batch, overfitting a chain."""

from __future__ import annotations

import numpy as np
import torch

from fave.data.batching import Batch, eval_batches, train_batches
from fave.models.stosa import STOSA, STOSAConfig, wasserstein2, wasserstein2_pairwise

N_ITEMS = 20


def chain_data(num_users: int = 8, length: int = 12) -> tuple[list[np.ndarray], np.ndarray]:
    """Item i is always followed by i % N + 1; user u starts at item 3u + 1.
    -> (training sequences, the next item after each)."""
    seqs = [np.array([(3 * u + k) % N_ITEMS + 1 for k in range(length)]) for u in range(num_users)]
    return [s[:-1] for s in seqs], np.array([s[-1] for s in seqs])


def random_batch(layout: str) -> Batch:
    rng = np.random.default_rng(0)
    train = [rng.integers(1, N_ITEMS + 1, size=n) for n in (2, 5, 9, 3)]
    return next(train_batches(train, layout, max_len=8, batch_size=4, rng=rng))


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
        batch = random_batch(layout)
        out = model.loss(batch)
        assert torch.isfinite(out.loss) and set(out.parts) == {"ce", "pvn"}
        model.zero_grad()
        out.loss.backward()
        assert all(p.grad is not None for p in model.parameters())
        model.eval()
        scores = model.score_all(batch)
        model.train()
        assert scores.shape == (len(batch), N_ITEMS) and torch.isfinite(scores).all()
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
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    rng = np.random.default_rng(0)
    losses = []
    for _ in range(150):
        for batch in train_batches(train, "parallel", max_len=12, batch_size=8, rng=rng):
            loss = model.loss(batch).loss
            opt.zero_grad()
            loss.backward()
            opt.step()
            losses.append(float(loss.detach()))
    assert losses[-1] < 0.1 * losses[0]
    model.eval()
    users = np.arange(len(train))
    hits = 0
    for _, batch in eval_batches(users, train, targets, max_len=12, batch_size=8):
        hits += int((model.score_all(batch).argmax(1) + 1 == batch.target).sum())
    assert hits >= len(users) - 1
