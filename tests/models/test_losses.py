"""Catalog-wide cross-entropies: chunked equals full, sampled is the softmax over its candidates."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from fave.errors import FaveError
from fave.models.losses import chunked_ce, full_ce, popularity_log_q, sampled_ce
from fave.models.sasrec import SASRec

from toy import N_ITEMS, chain_data, next_item_hits, overfit

P, N, D = 7, 50, 8


def tensors():
    g = torch.Generator().manual_seed(0)
    h = torch.randn(P, D, generator=g, requires_grad=True)
    items = torch.randn(N, D, generator=g, requires_grad=True)
    target = torch.randint(1, N + 1, (P,), generator=g)
    return h, items, target


def by_hand(h, items, target, neg, log_q=None) -> float:
    """Mean over rows of the softmax loss over [target, the row's negatives that are not the target];
    ``neg`` [n] (shared by the rows) or [P, n] (one draw per row); logits minus log Q when given."""
    rows = neg.expand(len(target), -1) if neg.dim() == 1 else neg
    losses = []
    for p in range(len(target)):
        t = int(target[p]) - 1
        cand = [t] + [int(j) for j in rows[p] if int(j) != t]
        logits = h[p] @ items[cand].T - (log_q[cand] if log_q is not None else 0)
        losses.append(-F.log_softmax(logits, 0)[0])
    return torch.stack(losses).mean().item()


def test_chunked_ce_equals_full_ce_in_value_and_gradient() -> None:
    h, items, target = tensors()
    full = full_ce(h, items, target)
    g_full = torch.autograd.grad(full, (h, items))
    chunked = chunked_ce(h, items, target, chunk=3)
    g_chunk = torch.autograd.grad(chunked, (h, items))
    assert chunked.item() == pytest.approx(full.item(), rel=1e-6)
    for a, b in zip(g_full, g_chunk, strict=True):
        assert torch.allclose(a, b, atol=1e-6)


def test_sampled_ce_with_every_item_drawn_is_the_full_softmax_with_duplicates_removed() -> None:
    h, items, target = tensors()
    torch.manual_seed(1)
    neg = torch.randint(0, N, (20,))
    torch.manual_seed(1)
    got = sampled_ce(h, items, target, 20)
    assert got.item() == pytest.approx(by_hand(h, items, target, neg), rel=1e-5)


def test_popularity_sampling_subtracts_log_q_from_every_candidate() -> None:
    h, items, target = tensors()
    counts = torch.arange(N).float()
    log_q = popularity_log_q(counts)
    assert log_q.exp().sum().item() == pytest.approx(1.0, rel=1e-6)
    assert log_q[0].item() == pytest.approx(math.log(1 / (counts + 1).sum().item()), rel=1e-6)
    torch.manual_seed(2)
    neg = torch.multinomial(log_q.exp(), 30, replacement=True)
    torch.manual_seed(2)
    got = sampled_ce(h, items, target, 30, log_q)
    assert got.item() == pytest.approx(by_hand(h, items, target, neg, log_q), rel=1e-5)


@pytest.mark.parametrize(
    ("loss", "sampler", "per"),
    [
        ("sampled", "uniform", "batch"),
        ("sampled", "popularity", "batch"),
        ("sampled", "uniform", "position"),
        ("chunked", "uniform", "batch"),
    ],
)
def test_sasrec_learns_the_item_chain_with_each_loss(loss: str, sampler: str, per: str) -> None:
    train, targets = chain_data()
    torch.manual_seed(0)
    model = SASRec(
        SASRec.Config(
            hidden=16,
            heads=1,
            layers=1,
            dropout=0.0,
            max_len=12,
            loss=loss,
            negatives=8,
            sampler=sampler,
            ce_chunk=16,
            negatives_per=per,
        ),
        N_ITEMS,
    )
    model.observe(train)
    overfit(model, train, epochs=25, max_len=12, lr=3e-2)
    assert next_item_hits(model, train, targets, max_len=12) >= len(train) - 1


def test_unknown_loss_is_a_clear_error() -> None:
    with pytest.raises(FaveError, match="params.loss"):
        SASRec(SASRec.Config(loss="approx"), 10)


def test_unknown_negatives_per_is_a_clear_error() -> None:
    with pytest.raises(FaveError, match="params.negatives_per"):
        SASRec(SASRec.Config(negatives_per="user"), 10)


def test_per_position_negatives_match_the_hand_computed_softmax_on_both_paths() -> None:
    """n = 6: N = 50 > n x D = 48, logits of the gathered rows; n = 7: 50 <= 56, all N logits, then gathered."""
    h, items, target = tensors()
    for n in (6, 7):
        torch.manual_seed(4)
        neg = torch.randint(0, N, (P, n))
        torch.manual_seed(4)
        got = sampled_ce(h, items, target, n, per="position")
        assert got.item() == pytest.approx(by_hand(h, items, target, neg), rel=1e-5)
        assert len({tuple(r.tolist()) for r in neg}) > 1  # rows did get different negatives
        torch.manual_seed(4)
        shared = sampled_ce(h, items, target, n, per="batch")
        assert shared.item() != pytest.approx(got.item(), rel=1e-3)
