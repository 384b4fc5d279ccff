"""Caser: contract on a random batch, windows, parallel = prefix, overfitting a chain."""

from __future__ import annotations

import numpy as np
import torch

from fave.data.batching import Batch, train_batches
from fave.models.caser import Caser, CaserConfig

from toy import N_ITEMS, chain_data, check_loss_and_scores, next_item_hits, overfit, random_batch


def small() -> Caser:
    return Caser(CaserConfig(hidden=8, window=3, vertical=2, horizontal=4, user_slots=16), N_ITEMS)


def test_loss_and_scores_on_a_random_batch() -> None:
    torch.manual_seed(0)
    model = small()
    for layout in ("parallel", "prefix"):
        check_loss_and_scores(model, random_batch(layout))
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
    losses = overfit(model, train, epochs=150, max_len=10)
    assert losses[-1] < 0.1 * losses[0]
    assert next_item_hits(model, train, targets, max_len=10) >= len(train) - 1
