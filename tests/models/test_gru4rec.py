"""GRU4Rec: contract on a random batch, padding invariance, overfitting a deterministic chain."""

from __future__ import annotations

import torch

from fave.data.batching import Batch
from fave.models.gru4rec import GRU4Rec, GRU4RecConfig

from toy import N_ITEMS, chain_data, check_loss_and_scores, next_item_hits, overfit, random_batch


def test_loss_and_scores_on_a_random_batch() -> None:
    torch.manual_seed(0)
    model = GRU4Rec(GRU4RecConfig(embedding=16, hidden=24, layers=2), N_ITEMS)
    for layout in ("parallel", "prefix"):
        check_loss_and_scores(model, random_batch(layout))


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
    losses = overfit(model, train, epochs=150, max_len=10)
    assert losses[-1] < 0.1 * losses[0]
    assert next_item_hits(model, train, targets, max_len=10) >= len(train) - 1
