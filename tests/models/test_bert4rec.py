"""BERT4Rec: contract, sequence rebuild, cloze masking without leaks, overfitting a chain."""

from __future__ import annotations

import numpy as np
import torch

from fave.data.batching import Batch, train_batches
from fave.models.bert4rec import BERT4Rec, BERT4RecConfig

from toy import N_ITEMS, chain_data, check_loss_and_scores, first_batch, next_item_hits, overfit, random_train


def small(max_len: int = 8, **kw: float) -> BERT4Rec:
    return BERT4Rec(BERT4RecConfig(hidden=16, heads=2, layers=2, max_len=max_len, **kw), N_ITEMS)


def test_loss_and_scores_on_a_random_batch() -> None:
    torch.manual_seed(0)
    rng = np.random.default_rng(0)
    train = random_train(rng)
    model = small()
    for layout in ("parallel", "prefix"):  # the second batch draws on from the same generator
        check_loss_and_scores(model, first_batch(train, layout, rng))


def test_training_sequence_is_history_plus_last_target() -> None:
    model = small(max_len=8)
    short, long = np.array([4, 7, 1, 9, 3]), np.arange(1, 13)
    rng = np.random.default_rng(0)
    batch = next(train_batches([short, long], "parallel", max_len=8, batch_size=2, rng=rng))
    rows = {int(u): r.tolist() for u, r in zip(batch.user, model.training_sequence(batch), strict=True)}
    assert rows[0] == [0, 0, 0, 4, 7, 1, 9, 3]
    assert rows[1] == list(range(5, 13))  # the last max_len items


def test_cloze_mask_hides_only_real_items_and_at_least_one() -> None:
    model = small(mask_prob=0.3, mask_last_prob=0.25)
    seq = torch.randint(1, N_ITEMS + 1, (4000, 8))
    seq[:2000, :3] = 0  # left padding
    mask = model.cloze_mask(seq, generator=torch.Generator().manual_seed(0))
    assert not mask[seq == 0].any()
    assert mask.any(1).all()
    last_only = (mask.sum(1) == 1) & mask[:, -1]
    assert 0.2 < last_only.float().mean() < 0.4  # 0.25 last-only + rows drawing just the last
    assert 0.2 < mask[~last_only].float().mean() < 0.4


def test_a_masked_position_never_sees_its_own_item() -> None:
    torch.manual_seed(0)
    model = small().eval()
    seq = torch.tensor([[0, 0, 5, 6, 7, 8, 9, 10]])
    mask = torch.zeros_like(seq, dtype=torch.bool)
    mask[0, 4] = mask[0, 6] = True
    base = model.cloze_logits(seq, mask)
    changed = seq.clone()
    changed[0, 4], changed[0, 6] = 17, 2  # the targets at the masked positions
    torch.testing.assert_close(model.cloze_logits(changed, mask), base)
    visible = seq.clone()
    visible[0, 5] = 17  # an unmasked neighbour does change the prediction
    assert not torch.allclose(model.cloze_logits(visible, mask), base)


def test_scoring_appends_a_mask_and_drops_the_oldest_item() -> None:
    torch.manual_seed(0)
    model = small(max_len=4).eval()
    user = torch.zeros(1, dtype=torch.long)
    full = torch.tensor([[3, 4, 5, 6]])  # at max_len: item 3 must be dropped
    scores = model.score_all(Batch(full, user))
    torch.testing.assert_close(model.score_all(Batch(full[:, 1:], user)), scores)
    torch.testing.assert_close(model.score_all(Batch(torch.tensor([[0, 0, 4, 5, 6]]), user)), scores)
    mask = torch.tensor([[False, False, False, True]])
    torch.testing.assert_close(model.cloze_logits(torch.tensor([[4, 5, 6, 11]]), mask), scores)


def test_overfits_a_deterministic_chain() -> None:
    """Cloze training learns the chain; scoring (a [MASK] appended, positions right-aligned)
    predicts the next item. A user's test window is another user's training window here:
    cloze training on one fixed window per user memorises rather than generalises.
    At hidden 32 the original N(0, 0.02) init leaves attention near uniform for hundreds of
    steps (a plateau of seed-dependent length); a wider init makes the test short and stable."""
    torch.set_num_threads(1)
    torch.manual_seed(0)
    train, targets = chain_data(num_users=N_ITEMS, length=10, stride=1)  # one user starts at each item
    config = BERT4RecConfig(
        hidden=32, layers=1, max_len=8, dropout=0.0, mask_prob=0.3, mask_last_prob=0.2, init_std=0.2
    )
    model = BERT4Rec(config, N_ITEMS)
    losses = overfit(model, train, epochs=300, max_len=8, batch_size=N_ITEMS, lr=3e-3)
    assert np.mean(losses[-20:]) < 0.25 * np.mean(losses[:20])
    assert next_item_hits(model, train, targets, max_len=8, batch_size=N_ITEMS) >= len(train) - 2
