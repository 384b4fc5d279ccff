"""AutoSeqRec: the observed matrices by hand, contract on a random batch, overfitting a chain."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from fave.data.batching import Batch, eval_batches, train_batches
from fave.models.autoseqrec import SEEN_SCORE, AutoSeqRec, AutoSeqRecConfig

N_ITEMS = 20


def chain_data(num_users: int = 8, length: int = 12) -> tuple[list[np.ndarray], np.ndarray]:
    """Item i is always followed by i % N + 1; user u starts at item 3u + 1.
    -> (training sequences, the next item after each)."""
    seqs = [np.array([(3 * u + k) % N_ITEMS + 1 for k in range(length)]) for u in range(num_users)]
    return [s[:-1] for s in seqs], np.array([s[-1] for s in seqs])


def random_train() -> list[np.ndarray]:
    rng = np.random.default_rng(0)
    return [rng.integers(1, N_ITEMS + 1, size=n) for n in (2, 5, 9, 3)]


def test_observe_builds_counts_and_transitions() -> None:
    model = AutoSeqRec(AutoSeqRecConfig(hidden=8), num_items=4)
    model.observe([np.array([1, 2, 3]), np.array([2, 3]), np.array([4])])
    torch.testing.assert_close(model.R.to_dense(), torch.tensor([[1.0, 1, 1, 0], [0, 1, 1, 0], [0, 0, 0, 1]]))
    expected_t = torch.zeros(4, 4)
    expected_t[0, 1], expected_t[1, 2] = 1.0, 2.0  # 1 -> 2 once, 2 -> 3 twice
    torch.testing.assert_close(model.T.to_dense(), expected_t)
    torch.testing.assert_close(model.T_in.to_dense(), expected_t.T)
    assert model.state_dict().keys().isdisjoint({"R", "T", "T_in"})  # data, not weights


def test_needs_observe_first() -> None:
    model = AutoSeqRec(AutoSeqRecConfig(hidden=8), N_ITEMS)
    batch = Batch(history=torch.tensor([[1, 2]]), user=torch.tensor([0]))
    with pytest.raises(RuntimeError, match="observe"):
        model.score_all(batch)


def test_loss_and_scores_on_a_random_batch() -> None:
    torch.manual_seed(0)
    model = AutoSeqRec(AutoSeqRecConfig(hidden=16), N_ITEMS)
    train = random_train()
    model.observe(train)
    for layout in ("parallel", "prefix"):
        batch = next(train_batches(train, layout, max_len=8, batch_size=4, rng=np.random.default_rng(0)))
        out = model.loss(batch)
        assert torch.isfinite(out.loss) and set(out.parts) == {"user", "out", "in"}
        model.zero_grad()
        out.loss.backward()
        assert all(p.grad is not None for p in model.parameters())
        model.eval()
        scores = model.score_all(batch)
        model.train()
        assert scores.shape == (len(batch), N_ITEMS) and torch.isfinite(scores).all()
        # every item the user interacted with is at the bottom
        seen = torch.zeros(len(batch), N_ITEMS, dtype=torch.bool)
        for row, u in enumerate(batch.user.tolist()):
            seen[row, torch.as_tensor(train[u]) - 1] = True
        assert (scores[seen] == SEEN_SCORE).all() and (scores[~seen] > SEEN_SCORE).all()


def test_overfits_a_deterministic_chain() -> None:
    torch.set_num_threads(1)
    torch.manual_seed(0)
    train, targets = chain_data()
    model = AutoSeqRec(AutoSeqRecConfig(hidden=32, enc_dropout=0.0, dec_dropout=0.0), N_ITEMS)
    model.observe(train)
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    rng = np.random.default_rng(0)
    losses = []
    for _ in range(200):
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
