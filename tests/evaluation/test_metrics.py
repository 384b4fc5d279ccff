"""Ranking metrics on hand-computed ranks: the tie rule, K boundaries, NDCG = 1/log2(rank+1)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from fave.evaluation.metrics import hit_rate, mrr, ndcg, summarize, target_ranks


def ranks_of(scores: list[list[float]], target_cols: list[int]) -> list[int]:
    return target_ranks(torch.tensor(scores), torch.tensor(target_cols)).tolist()


def test_rank_counts_higher_scores() -> None:
    #        item: 1    2    3    4    5
    scores = [[0.1, 0.9, 0.5, 0.7, 0.3]]
    assert ranks_of(scores * 5, [1, 3, 2, 4, 0]) == [1, 2, 3, 4, 5]


def test_ties_are_broken_by_lower_id_first() -> None:
    # items 2, 3 and 5 share the top score 3; item 4 scores 2; item 1 scores 1
    scores = [[1.0, 3.0, 3.0, 2.0, 3.0]] * 5
    # item 2: first of the tie; item 3: after item 2; item 5: after items 2 and 3;
    # item 4: below the three tied items; item 1: below everything
    assert ranks_of(scores, [1, 2, 4, 3, 0]) == [1, 2, 3, 4, 5]


def test_constant_scorer_ranks_each_item_at_its_id() -> None:
    n = 7
    scores = torch.zeros(n, n)
    ranks = target_ranks(scores, torch.arange(n))
    assert ranks.tolist() == list(range(1, n + 1))  # rank = item id = column + 1


def test_negative_infinity_is_ranked_last_and_ties_among_infinities() -> None:
    inf = float("-inf")
    scores = [[inf, 0.0, inf, 1.0]] * 2
    assert ranks_of(scores, [1, 2]) == [2, 4]  # item 3 ties item 1 (-inf), which has a lower id


def test_hit_rate_counts_rank_equal_to_k_but_not_k_plus_one() -> None:
    ranks = np.array([1, 9, 10, 11, 50])
    assert hit_rate(ranks, 10).tolist() == [1.0, 1.0, 1.0, 0.0, 0.0]
    assert ndcg(ranks, 10)[2] > 0 and ndcg(ranks, 10)[3] == 0
    assert mrr(ranks, 10)[2] == pytest.approx(0.1) and mrr(ranks, 10)[3] == 0


@pytest.mark.parametrize(("rank", "expected"), [(1, 1.0), (3, 0.5), (7, 1 / 3), (15, 0.25)])
def test_ndcg_is_one_over_log2_rank_plus_one(rank: int, expected: float) -> None:
    assert ndcg(np.array([rank]), 20)[0] == pytest.approx(expected)


def test_mrr_is_reciprocal_rank() -> None:
    assert mrr(np.array([1, 2, 4, 30]), 20).tolist() == pytest.approx([1.0, 0.5, 0.25, 0.0])


def test_summarize_averages_per_user_at_every_k() -> None:
    ranks = np.array([1, 3, 6, 30])
    out = summarize(ranks, ks=(5, 10))
    assert set(out) == {"HR@5", "HR@10", "NDCG@5", "NDCG@10", "MRR@5", "MRR@10"}
    assert out["HR@5"] == pytest.approx(2 / 4)
    assert out["HR@10"] == pytest.approx(3 / 4)
    assert out["NDCG@5"] == pytest.approx((1 + 0.5) / 4)
    assert out["NDCG@10"] == pytest.approx((1 + 0.5 + 1 / math.log2(7)) / 4)
    assert out["MRR@10"] == pytest.approx((1 + 1 / 3 + 1 / 6) / 4)


def test_summarize_default_ks_and_empty_input() -> None:
    out = summarize(np.array([], dtype=np.int64))
    assert set(out) == {f"{m}@{k}" for m in ("HR", "NDCG", "MRR") for k in (5, 10, 20)}
    assert all(v == 0.0 for v in out.values())


def test_metrics_of_ranks_from_scores_end_to_end() -> None:
    # four users over 4 items; target ranks 1, 2 (tie lost to a lower id), 4, 1 (tie won)
    scores = [[4.0, 3, 2, 1], [1.0, 1, 0, 0], [4.0, 3, 2, 1], [2.0, 2, 0, 0]]
    ranks = ranks_of(scores, [0, 1, 3, 0])
    assert ranks == [1, 2, 4, 1]
    out = summarize(np.array(ranks), ks=(1, 2))
    assert out["HR@1"] == pytest.approx(0.5)
    assert out["HR@2"] == pytest.approx(0.75)
    assert out["NDCG@2"] == pytest.approx((1 + 1 / math.log2(3) + 0 + 1) / 4)
