"""Popularity: the evaluator's numbers equal the definition written out in plain Python."""

from __future__ import annotations

import math
from collections import Counter

import numpy as np
import pytest

from fave.config import DataConfig, RunConfig, TrainConfig
from fave.data.dataset import IdMap, SequenceData, Split
from fave.evaluation.evaluator import evaluate
from fave.models.pop import Pop, PopConfig

N_USERS, N_ITEMS, KS = 50, 30, (5, 10, 20)


def random_data(seed: int = 0) -> SequenceData:
    rng = np.random.default_rng(seed)
    # a skewed item distribution so popularity matters, plus many count ties
    p = rng.dirichlet(np.full(N_ITEMS, 0.5))
    seqs = [rng.choice(np.arange(1, N_ITEMS + 1), size=rng.integers(3, 12), p=p) for _ in range(N_USERS)]
    ids = IdMap(users=[f"u{u}" for u in range(N_USERS)], items=[f"i{i}" for i in range(1, N_ITEMS + 1)])
    return SequenceData("random", seqs, N_ITEMS, ids)


def reference_metrics(data: SequenceData, phase: str, masked: bool) -> dict[str, float]:
    """Pop by definition: counts over the input parts of all users, rank with the tie rule."""
    cut = 2 if phase == "valid" else 1
    inputs = [[int(i) for i in s[:-cut]] for s in data.sequences]
    targets = [int(s[-cut]) for s in data.sequences]
    counts = Counter(i for seq in inputs for i in seq)
    sums = {f"{m}@{k}": 0.0 for m in ("HR", "NDCG", "MRR") for k in KS}
    for seq, target in zip(inputs, targets, strict=True):
        removed = set(seq) - {target} if masked else set()
        c_t = counts[target]
        rank = 1
        for i in range(1, N_ITEMS + 1):
            if i in removed:
                continue
            if counts[i] > c_t or (counts[i] == c_t and i < target):
                rank += 1
        for k in KS:
            if rank <= k:
                sums[f"HR@{k}"] += 1
                sums[f"NDCG@{k}"] += 1 / math.log2(rank + 1)
                sums[f"MRR@{k}"] += 1 / rank
    return {key: v / len(targets) for key, v in sums.items()}


@pytest.mark.parametrize("phase", ["valid", "test"])
def test_pop_metrics_equal_the_definition(phase: str) -> None:
    data = random_data()
    split = Split(data)
    res = evaluate(Pop(PopConfig(), N_ITEMS), split.eval_set(phase), max_len=50, batch_size=7, ks=KS)
    for protocol in ("paper", "masked"):
        expected = reference_metrics(data, phase, masked=protocol == "masked")
        assert res.metrics[protocol] == pytest.approx(expected, abs=1e-12)
    assert res.metrics["masked"]["HR@10"] != res.metrics["paper"]["HR@10"]  # the case is not trivial


def test_validation_counts_exclude_the_validation_items() -> None:
    data = random_data(1)
    split = Split(data)
    model = Pop(PopConfig(), N_ITEMS)
    model.observe(split.eval_set("valid").inputs)
    valid_counts = model.counts.clone()
    model.observe(split.eval_set("test").inputs)
    added = np.bincount([int(s[-2]) for s in data.sequences], minlength=N_ITEMS + 1)[1:]
    assert np.array_equal((model.counts - valid_counts).numpy(), added)


def test_pop_run_reports_the_definition(tmp_path) -> None:
    from fave.training.run import train_run

    data = random_data(2)
    config = RunConfig("pop", "random", data=DataConfig(max_len=50), train=TrainConfig(eval_batch_size=16))
    metrics = train_run(config, tmp_path / "run", quiet=True, split=Split(data))
    for phase in ("valid", "test"):
        for protocol in ("paper", "masked"):
            got = {k: metrics[phase][protocol][k] for k in reference_metrics(data, phase, False)}
            assert got == pytest.approx(reference_metrics(data, phase, protocol == "masked"), abs=1e-12)
