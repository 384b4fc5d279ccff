"""The full-ranking evaluator with a fake model whose scores are fixed per user.

Checks paper vs masked ranks by hand, that chunking changes nothing, per-user averaging,
ILD and coverage of the top-K lists, and the evaluator's side effects.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pytest
import torch
from torch import Tensor

from fave.data.batching import Batch
from fave.data.dataset import EvalSet
from fave.evaluation.diversity import coverage, ild
from fave.evaluation.evaluator import evaluate, mask_history
from fave.models.base import SeqRecModel


@dataclass
class FixedConfig:
    pass


class FixedScores(SeqRecModel):
    """score_all returns row ``user`` of a fixed [U, N] table; records what it was shown."""

    Config = FixedConfig

    def __init__(self, table: Tensor, vectors: Tensor | None = None) -> None:
        super().__init__(FixedConfig(), table.shape[1])
        self.table, self.vectors = table.float(), vectors
        self.observed: list[np.ndarray] = []
        self.batch_sizes: list[int] = []
        self.histories: dict[int, list[int]] = {}

    def observe(self, inputs: list[np.ndarray]) -> None:
        self.observed = [np.asarray(s).copy() for s in inputs]

    def score_all(self, batch: Batch) -> Tensor:
        self.batch_sizes.append(len(batch))
        for u, h in zip(batch.user.tolist(), batch.history.tolist(), strict=True):
            self.histories[u] = h
        return self.table[batch.user]

    def item_representation(self) -> Tensor | None:
        return self.vectors


def eval_set(inputs: list[list[int]], targets: list[int]) -> EvalSet:
    return EvalSet(np.arange(len(inputs)), [np.array(s) for s in inputs], np.array(targets))


# Four users over N = 6 items, evaluated with max_len = 2.
INPUTS = [
    [1, 2],  # u0
    [5, 6, 1, 2],  # u1: items 5 and 6 are outside the last max_len = 2 items
    [3, 4, 3],  # u2: the target 3 is also in the history
    [1, 2, 6],  # u3
]
TARGETS = [3, 4, 3, 5]
TABLE = torch.tensor(
    [
        [6.0, 5, 4, 3, 2, 1],  # u0: items 1, 2 above the target 3
        [1.0, 1, 1, 2, 9, 8],  # u1: items 5, 6 above the target 4
        [5.0, 0, 2, 4, 0, 0],  # u2: items 1, 4 above the target 3
        [0.0, 0, 0, 0, 0, 0],  # u3: constant: ties broken by id
    ]
)
PAPER_RANKS = [3, 3, 3, 5]
# u0: 1, 2 removed; u1: 5, 6, 1, 2 removed (the FULL history); u2: 4 removed, 3 kept (target);
# u3: 1, 2, 6 removed -> tied with 3 and 4 only, which have lower ids
MASKED_RANKS = [1, 1, 2, 3]


def test_paper_and_masked_ranks_by_hand() -> None:
    res = evaluate(FixedScores(TABLE), eval_set(INPUTS, TARGETS), max_len=2, batch_size=3, ks=(1, 2, 5))
    assert res.ranks["paper"].tolist() == PAPER_RANKS
    assert res.ranks["masked"].tolist() == MASKED_RANKS


def test_metrics_are_per_user_averages() -> None:
    # batch_size 3 cuts the 4 users into chunks of 3 and 1: a per-batch mean would differ
    res = evaluate(FixedScores(TABLE), eval_set(INPUTS, TARGETS), max_len=2, batch_size=3, ks=(1, 2, 5))
    masked, paper = res.metrics["masked"], res.metrics["paper"]
    assert masked["HR@1"] == pytest.approx(2 / 4)
    assert masked["HR@2"] == pytest.approx(3 / 4)
    assert masked["NDCG@2"] == pytest.approx((1 + 1 + 1 / math.log2(3)) / 4)
    assert masked["MRR@5"] == pytest.approx((1 + 1 + 1 / 2 + 1 / 3) / 4)
    assert paper["HR@2"] == 0.0
    assert paper["HR@5"] == 1.0
    assert paper["NDCG@5"] == pytest.approx((3 * 0.5 + 1 / math.log2(6)) / 4)


def test_model_sees_truncated_histories_and_full_inputs() -> None:
    model = FixedScores(TABLE)
    evaluate(model, eval_set(INPUTS, TARGETS), max_len=2, batch_size=4)
    assert model.histories[1] == [1, 2]  # last max_len items of u1
    assert model.histories[2] == [4, 3]
    assert [s.tolist() for s in model.observed] == INPUTS  # observe gets the full inputs


def test_mask_history_never_removes_the_target() -> None:
    scores = torch.zeros(2, 4)
    masked = mask_history(scores, [np.array([1, 2, 2]), np.array([3, 4])], torch.tensor([1, 0]))
    inf = float("-inf")
    assert masked.tolist() == [[inf, 0.0, 0.0, 0.0], [0.0, 0.0, inf, inf]]
    assert scores.eq(0).all()  # the input is not modified


def random_case(n_users: int = 37, n_items: int = 23, seed: int = 0) -> tuple[Tensor, EvalSet]:
    rng = np.random.default_rng(seed)
    table = torch.from_numpy(rng.integers(0, 4, size=(n_users, n_items)).astype(np.float32))  # many ties
    inputs = [rng.integers(1, n_items + 1, size=rng.integers(1, 12)).tolist() for _ in range(n_users)]
    targets = rng.integers(1, n_items + 1, size=n_users).tolist()
    return table, eval_set(inputs, targets)


def reference_ranks(table: Tensor, es: EvalSet, masked: bool) -> list[int]:
    """Plain-Python ranks: 1 + #higher + #equal with a lower id, over the candidate items."""
    out = []
    for u, (seq, target) in enumerate(zip(es.inputs, es.targets, strict=True)):
        s = table[u].tolist()
        removed = set(seq.tolist()) - {int(target)} if masked else set()
        candidates = [i for i in range(1, len(s) + 1) if i not in removed]
        t = s[target - 1]
        out.append(1 + sum(1 for i in candidates if s[i - 1] > t or (s[i - 1] == t and i < target)))
    return out


def test_ranks_match_a_plain_python_reference_on_random_scores() -> None:
    table, es = random_case()
    res = evaluate(FixedScores(table), es, max_len=5, batch_size=8)
    assert res.ranks["paper"].tolist() == reference_ranks(table, es, masked=False)
    assert res.ranks["masked"].tolist() == reference_ranks(table, es, masked=True)


def test_chunking_gives_identical_results() -> None:
    table, es = random_case()
    vectors = torch.randn(table.shape[1], 4, generator=torch.Generator().manual_seed(1))
    whole_model = FixedScores(table, vectors)
    whole = evaluate(whole_model, es, max_len=5, batch_size=512, diversity_k=5)
    chunked_model = FixedScores(table, vectors)
    # max_elements = 2 rows of N items: chunks of at most 2 users, whatever batch_size says
    chunked = evaluate(chunked_model, es, max_len=5, batch_size=512, diversity_k=5, max_elements=2 * table.shape[1])
    assert whole_model.batch_sizes == [len(es.targets)]
    assert max(chunked_model.batch_sizes) == 2 and len(chunked_model.batch_sizes) == 19
    for p in ("paper", "masked"):
        assert np.array_equal(whole.ranks[p], chunked.ranks[p])
        assert whole.metrics[p] == chunked.metrics[p]
        assert whole.diversity[p] == pytest.approx(chunked.diversity[p])


def test_wrong_score_shape_is_reported() -> None:
    class Narrow(FixedScores):
        def score_all(self, batch: Batch) -> Tensor:
            return super().score_all(batch)[:, :-1]

    with pytest.raises(RuntimeError, match=r"score_all returned .*expected"):
        evaluate(Narrow(TABLE), eval_set(INPUTS, TARGETS), max_len=2)


def test_training_mode_restored_and_global_rng_untouched() -> None:
    class Noisy(FixedScores):
        def score_all(self, batch: Batch) -> Tensor:
            return super().score_all(batch) + torch.rand(len(batch), self.num_items)

    table, es = random_case()
    model = Noisy(table)
    model.train()
    torch.manual_seed(3)
    before = torch.random.get_rng_state()
    a = evaluate(model, es, max_len=5, seed=7)
    assert model.training
    assert torch.equal(torch.random.get_rng_state(), before)
    b = evaluate(model, es, max_len=5, seed=7)
    c = evaluate(model, es, max_len=5, seed=8)
    assert np.array_equal(a.ranks["paper"], b.ranks["paper"])  # same seed, same draws
    assert not np.array_equal(a.ranks["paper"], c.ranks["paper"])


# -- diversity ----------------------------------------------------------------------------
R = 1 / math.sqrt(2)
VECTORS = torch.tensor([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0], [-1.0, 0.0]])  # items 1..4


def test_ild_on_hand_computed_vectors() -> None:
    lists = torch.tensor([[0, 1], [0, 2], [2, 3], [0, 0]])
    assert ild(lists, VECTORS).tolist() == pytest.approx([1.0, 1 - R, 1 + R, 0.0], abs=1e-6)
    # three items: mean pairwise cosine similarity (0 + R + R) / 3
    assert ild(torch.tensor([[0, 1, 2]]), VECTORS).tolist() == pytest.approx([1 - 2 * R / 3], abs=1e-6)
    # the scale of a vector does not matter (cosine)
    assert ild(torch.tensor([[0, 2]]), VECTORS * torch.tensor([[3.0], [1], [0.5], [1]])).item() == pytest.approx(1 - R)


def test_ild_of_single_item_lists_is_zero() -> None:
    assert ild(torch.tensor([[2], [3]]), VECTORS).tolist() == [0.0, 0.0]


def test_coverage_counts_distinct_items() -> None:
    assert coverage(torch.tensor([[0, 1], [1, 2], [2, 0]]), 5) == pytest.approx(3 / 5)
    assert coverage(torch.tensor([[3, 2, 1, 0]]), 4) == 1.0


def test_evaluator_diversity_of_top_k_lists() -> None:
    table = torch.tensor([[4.0, 3, 2, 1], [4.0, 3, 2, 1]])
    es = eval_set([[1, 2], [4, 4]], [3, 2])
    res = evaluate(FixedScores(table, VECTORS), es, max_len=5, diversity_k=2)
    # paper: both users get items {1, 2}; masked: u0 gets {3, 4} (1, 2 removed), u1 {1, 2}
    assert res.diversity["paper"] == pytest.approx({"Coverage@2": 0.5, "ILD@2": 1.0})
    assert res.diversity["masked"] == pytest.approx({"Coverage@2": 1.0, "ILD@2": (1 + R + 1) / 2})


def test_evaluator_without_item_vectors_reports_coverage_only() -> None:
    res = evaluate(FixedScores(TABLE), eval_set(INPUTS, TARGETS), max_len=2, diversity_k=3)
    assert set(res.diversity["paper"]) == {"Coverage@3"}
    # paper top-3: u0 {1,2,3}, u1 {5,6,4}, u2 {1,4,3}, u3 {1,2,3} -> all 6 items
    assert res.diversity["paper"]["Coverage@3"] == 1.0
    assert evaluate(FixedScores(TABLE), eval_set(INPUTS, TARGETS), max_len=2).diversity == {}


def test_ild_of_a_hand_computed_top_3_through_the_evaluator() -> None:
    # items 1..5 in 3-d; user 0 scores 5 > 2 > 1 > 4 > 3, user 1 scores 3 > 4 > 1 > 2 > 5
    vectors = torch.tensor([[1.0, 0, 0], [0, 1.0, 0], [0, 0, 1.0], [1.0, 1.0, 0], [2.0, 0, 0]])
    table = torch.tensor([[3.0, 4, 1, 2, 5], [3.0, 2, 5, 4, 1]])
    res = evaluate(FixedScores(table, vectors), eval_set([[1], [2]], [2, 3]), max_len=3, diversity_k=3)
    # user 0 top-3 = items {5, 2, 1}: cos(5,2) = 0, cos(5,1) = 1, cos(2,1) = 0 -> ILD = 1 - 1/3
    # user 1 top-3 = items {3, 4, 1}: cos(3,4) = 0, cos(3,1) = 0, cos(4,1) = 1/sqrt(2) -> ILD = 1 - (1/sqrt 2)/3
    expected = ((1 - 1 / 3) + (1 - 1 / math.sqrt(2) / 3)) / 2
    assert res.diversity["paper"]["ILD@3"] == pytest.approx(expected, abs=1e-6)
    assert res.diversity["paper"]["Coverage@3"] == pytest.approx(5 / 5)
    assert ild(torch.tensor([[4, 1, 0]]), vectors).item() == pytest.approx(2 / 3, abs=1e-6)


@pytest.mark.parametrize("block_elements", [1 << 20, 37, 1])  # one block, blocks of 2 columns, of 1
def test_ranks_of_both_protocols_equal_the_reference_ranking_with_ties_nan_and_inf(
    block_elements: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    from fave.evaluation import evaluator
    from fave.evaluation.evaluator import ranks_both
    from fave.evaluation.metrics import target_ranks

    monkeypatch.setattr(evaluator, "COUNT_BLOCK_ELEMENTS", block_elements)

    gen = torch.Generator().manual_seed(0)
    rng = np.random.default_rng(0)
    for trial in range(30):
        B, N = 16, 40
        scores = torch.randint(0, 6, (B, N), generator=gen).float()  # many ties
        if trial % 2:
            scores = torch.randn(B, N, generator=gen)
        scores[0, :5] = float("nan")
        scores[1, 3] = float("inf")
        target_col = torch.randint(0, N, (B,), generator=gen)
        scores[2, target_col[2]] = float("nan")  # a NaN target
        scores[3, target_col[3]] = float("-inf")  # a -inf target
        scores[3, :7] = float("-inf")
        inputs = [rng.integers(1, N + 1, size=rng.integers(0, 12)) for _ in range(B)]
        inputs[4] = np.array([int(target_col[4]) + 1, int(target_col[4]) + 1, 2])  # target and repeats in the history
        got = ranks_both(scores, inputs, target_col)
        assert torch.equal(got["paper"], target_ranks(scores, target_col))
        assert torch.equal(got["masked"], target_ranks(mask_history(scores, inputs, target_col), target_col))
