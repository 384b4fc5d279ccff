"""AutoSeqRec: the observed matrices by hand, contract on a random batch, overfitting a chain."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from fave.data.batching import Batch
from fave.models.autoseqrec import SEEN_SCORE, AutoSeqRec, AutoSeqRecConfig

from toy import N_ITEMS, chain_data, check_loss_and_scores, first_batch, next_item_hits, overfit, random_train


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
        batch = first_batch(train, layout, np.random.default_rng(0))
        out, scores = check_loss_and_scores(model, batch)
        assert set(out.parts) == {"user", "out", "in"}
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
    losses = overfit(model, train, epochs=200, max_len=12)
    assert losses[-1] < 0.1 * losses[0]
    assert next_item_hits(model, train, targets, max_len=12) >= len(train) - 1
