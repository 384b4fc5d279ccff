"""Caser: contract on a random batch, windows, parallel = prefix, overfitting a chain."""

from __future__ import annotations

import numpy as np
import torch

from fave.data.batching import Batch, eval_batches, train_batches
from fave.models.caser import Caser, CaserConfig

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


def small() -> Caser:
    return Caser(CaserConfig(hidden=8, window=3, vertical=2, horizontal=4, user_slots=16), N_ITEMS)


def test_loss_and_scores_on_a_random_batch() -> None:
    torch.manual_seed(0)
    model = small()
    for layout in ("parallel", "prefix"):
        batch = random_batch(layout)
        out = model.loss(batch)
        assert torch.isfinite(out.loss)
        model.zero_grad()
        out.loss.backward()
        assert all(p.grad is not None for p in model.parameters())
        model.eval()
        scores = model.score_all(batch)
        model.train()
        assert scores.shape == (len(batch), N_ITEMS) and torch.isfinite(scores).all()
    # a user index beyond the table wraps around instead of failing
    far = Batch(torch.tensor([[1, 2, 3]]), torch.tensor([16 * 7 + 3]))
    near = Batch(far.history, torch.tensor([3]))
    model.eval()
    torch.testing.assert_close(model.score_all(far), model.score_all(near))


def test_windows_end_at_every_position() -> None:
    model = small()  # window L = 3
    history = torch.tensor([[0, 0, 4, 5, 6, 7]])
    w = model.windows(history)
    assert w.shape == (1, 6, 3)
    assert w[0, 2].tolist() == [0, 0, 4]
    assert w[0, 4].tolist() == [4, 5, 6]
    assert w[0, 5].tolist() == [5, 6, 7]


def test_parallel_loss_equals_the_mean_of_prefix_losses() -> None:
    """Unfolded windows give the same samples as one prefix per target (no truncation)."""
    torch.manual_seed(0)
    model = small().eval()  # no dropout
    seq = np.array([3, 9, 4, 11, 2, 7])
    parallel = next(train_batches([seq], "parallel", max_len=8, batch_size=8, rng=np.random.default_rng(0)))
    prefixes = next(train_batches([seq], "prefix", max_len=8, batch_size=8, rng=np.random.default_rng(0)))
    torch.testing.assert_close(model.loss(parallel).loss, model.loss(prefixes).loss)


def test_overfits_a_deterministic_chain() -> None:
    torch.set_num_threads(1)
    torch.manual_seed(0)
    train, targets = chain_data()
    model = Caser(CaserConfig(hidden=16, window=3, dropout=0.0, user_slots=8), N_ITEMS)
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    rng = np.random.default_rng(0)
    losses = []
    for _ in range(150):
        for batch in train_batches(train, "parallel", max_len=10, batch_size=8, rng=rng):
            loss = model.loss(batch).loss
            opt.zero_grad()
            loss.backward()
            opt.step()
            losses.append(float(loss.detach()))
    assert losses[-1] < 0.1 * losses[0]
    model.eval()
    users = np.arange(len(train))
    hits = 0
    for _, batch in eval_batches(users, train, targets, max_len=10, batch_size=8):
        hits += int((model.score_all(batch).argmax(1) + 1 == batch.target).sum())
    assert hits >= len(users) - 1
