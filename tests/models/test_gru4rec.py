"""GRU4Rec: contract on a random batch, padding invariance, overfitting a deterministic chain."""

from __future__ import annotations

import numpy as np
import torch

from fave.data.batching import Batch, eval_batches, train_batches
from fave.models.gru4rec import GRU4Rec, GRU4RecConfig

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


def test_loss_and_scores_on_a_random_batch() -> None:
    torch.manual_seed(0)
    model = GRU4Rec(GRU4RecConfig(embedding=16, hidden=24, layers=2), N_ITEMS)
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


def test_left_padding_does_not_change_the_scores() -> None:
    """The GRU reads only real items, however much padding the batch adds."""
    torch.manual_seed(0)
    model = GRU4Rec(GRU4RecConfig(embedding=16, hidden=24), N_ITEMS).eval()
    history = torch.tensor([[0, 0, 3, 4, 5], [1, 2, 3, 4, 5]])
    wider = torch.cat([torch.zeros(2, 4, dtype=torch.long), history], 1)
    user = torch.arange(2)
    short = model.score_all(Batch(history, user))
    padded = model.score_all(Batch(wider, user))
    torch.testing.assert_close(short, padded)
    # every position of the parallel encoding equals encoding the prefix alone
    h = model.encode(history[1:])
    for k in range(1, 6):
        torch.testing.assert_close(h[0, k - 1], model.encode(history[1:, :k])[0, -1])


def test_overfits_a_deterministic_chain() -> None:
    torch.set_num_threads(1)
    torch.manual_seed(0)
    train, targets = chain_data()
    model = GRU4Rec(GRU4RecConfig(embedding=16, hidden=32, dropout=0.0), N_ITEMS)
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
