"""Paired significance: per-user metrics from ranks, scipy's tests on known inputs, Holm by hand,
seed averaging aligned by user, the ranks file of a run, and `fave evaluate --save-ranks`."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest
from scipy import stats

from fave.cli import main
from fave.evaluation.metrics import summarize
from fave.evaluation.significance import (
    RANKS,
    compare,
    compare_runs,
    holm,
    load_ranks,
    paired_test,
    per_user,
    save_ranks,
)


def test_per_user_metrics_from_ranks_by_hand() -> None:
    ranks = np.array([1, 3, 2, 25])
    assert per_user(ranks, "HR@2").tolist() == [1.0, 0.0, 1.0, 0.0]
    np.testing.assert_allclose(per_user(ranks, "NDCG@3"), [1.0, 0.5, 1 / np.log2(3), 0.0])
    assert per_user(ranks, "HR@20").mean() == summarize(ranks)["HR@20"]  # the same numbers as metrics.json
    with pytest.raises(ValueError, match="HR@K or NDCG@K"):
        per_user(ranks, "MAP@5")


def test_paired_tests_equal_scipy_and_known_values() -> None:
    a, b = np.array([3.0, 5.0, 7.0, 9.0, 11.0]), np.array([2.0, 3.0, 4.0, 5.0, 6.0])  # d = 1..5
    t_p, w_p = paired_test(a, b)
    # t = mean(d) / (sd(d) / sqrt(5)) = 3 / (sqrt(2.5) / sqrt(5)) = 4.2426 with 4 df
    assert t_p == pytest.approx(2 * stats.t.sf(3 / np.sqrt(2.5 / 5), 4), rel=1e-12)
    assert t_p == pytest.approx(0.013236, abs=1e-6)
    assert w_p == pytest.approx(2 / 2**5)  # exact Wilcoxon: all 5 differences positive, two-sided
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=50), rng.normal(0.3, 1.0, size=50)
    t_p, w_p = paired_test(x, y)
    assert t_p == pytest.approx(stats.ttest_rel(x, y).pvalue, rel=1e-12)
    assert w_p == pytest.approx(stats.wilcoxon(x, y).pvalue, rel=1e-12)
    assert paired_test(x, x) == (1.0, 1.0)  # no difference at all: no evidence


def test_holm_adjusted_p_values_by_hand() -> None:
    # sorted 0.005, 0.01, 0.03, 0.04 -> 4 x 0.005, 3 x 0.01, 2 x 0.03, max(0.06, 1 x 0.04)
    assert holm([0.01, 0.04, 0.03, 0.005]) == pytest.approx([0.03, 0.06, 0.06, 0.02])
    assert holm([0.5, 0.9]) == [1.0, 1.0]  # capped at 1
    out = holm([0.01, float("nan"), 0.02])  # NaN is not part of the family
    assert out[0] == pytest.approx(0.02) and np.isnan(out[1]) and out[2] == pytest.approx(0.02)


def test_a_real_difference_is_detected_and_its_absence_is_not() -> None:
    rng = np.random.default_rng(1)
    base = rng.integers(1, 200, size=400)
    better = np.where(rng.random(400) < 0.3, 1, base)  # 30% of users get the target at rank 1
    same = base.copy()
    tests = compare(
        {m: per_user(better, m) for m in ("HR@20", "NDCG@20")},
        {"b": {m: per_user(base, m) for m in ("HR@20", "NDCG@20")}},
    )
    for t in tests:
        assert t.diff > 0.1 and t.t_p_holm < 1e-6 and t.wilcoxon_p_holm < 1e-6 and t.n_users == 400
        assert t.t_p_holm == pytest.approx(min(1.0, 2 * t.t_p))  # family of 2 comparisons
    null = compare({"HR@20": per_user(same, "HR@20")}, {"b": {"HR@20": per_user(base, "HR@20")}})
    assert null[0].t_p_holm == 1.0 and null[0].diff == 0.0


def test_seeds_are_averaged_per_user_and_aligned_by_user_id() -> None:
    rng = np.random.default_rng(2)
    users = np.arange(30)
    r0, r1, rb = (rng.integers(1, 40, size=30) for _ in range(3))
    run = lambda u, r: {"test_users": u, "test_paper": r}  # noqa: E731
    perm = rng.permutation(30)
    # the baseline saved its users in another order, and has two users the model lacks
    baseline = run(np.concatenate([users[perm], [30, 31]]), np.concatenate([rb[perm], [1, 1]]))
    got = compare_runs([run(users, r0), run(users, r1)], {"b": [baseline]}, metrics=("HR@20",))[0]
    a = (per_user(r0, "HR@20") + per_user(r1, "HR@20")) / 2
    t_p, w_p = paired_test(a, per_user(rb, "HR@20"))
    assert got.n_users == 30 and got.t_p == pytest.approx(t_p) and got.wilcoxon_p == pytest.approx(w_p)
    assert got.mean == pytest.approx(a.mean())


def test_ranks_file_round_trip_is_atomic_and_pickle_free(tmp_path) -> None:
    ranks = {"test_users": np.arange(4), "test_paper": np.array([1, 5, 2, 9])}
    path = save_ranks(tmp_path, ranks)
    assert path.name == RANKS and os.listdir(tmp_path) == [RANKS]  # no temporary file left
    with np.load(path, allow_pickle=False) as z:
        assert z["test_paper"].dtype == np.int64
    back = load_ranks(tmp_path)
    assert back is not None and back.keys() == ranks.keys()
    assert all(np.array_equal(back[k], ranks[k]) for k in ranks)
    assert load_ranks(tmp_path / "nothing") is None


def _lines(path, n_users=20, n_items=15, seed=0):
    rng = np.random.default_rng(seed)
    rows = []
    for u in range(n_users):
        items = rng.choice(n_items, size=rng.integers(4, 9), replace=False) + 100
        rows.append(" ".join([f"user{u}", *(f"it{i}" for i in items)]))
    path.write_text("\n".join(rows) + "\n")
    return path


def test_a_trained_run_saves_its_ranks_and_evaluate_can_add_them(tmp_path, monkeypatch, capsys) -> None:
    monkeypatch.setenv("FAVE_DATA_DIR", str(tmp_path / "cache"))
    data, run = _lines(tmp_path / "log.txt"), tmp_path / "run"
    assert main(["train", "--model", "pop", "--dataset", str(data), "--out", str(run), "--quiet"]) == 0
    ranks, metrics = load_ranks(run), json.loads((run / "metrics.json").read_text())
    assert ranks is not None and sorted(ranks) == [
        "test_masked",
        "test_paper",
        "test_users",
        "valid_masked",
        "valid_paper",
        "valid_users",
    ]
    for phase in ("valid", "test"):
        for p in ("paper", "masked"):
            assert summarize(ranks[f"{phase}_{p}"]) == pytest.approx(metrics[phase][p])
    (run / RANKS).unlink()  # a run from before ranks were saved
    assert main(["evaluate", str(run), "--save-ranks"]) == 0
    again = load_ranks(run)
    assert again is not None and all(np.array_equal(again[k], ranks[k]) for k in ranks)
    assert main(["evaluate", str(run), "--save-ranks", "--set", "eval_seed=3"]) == 2
    assert "cannot be combined" in capsys.readouterr().err
