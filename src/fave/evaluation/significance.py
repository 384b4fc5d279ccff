"""Paired significance of one model against others, on the same test users.

The unit is the user: every user's HR@K or NDCG@K is a pure function of the rank of their
held-out item (:mod:`fave.evaluation.metrics`), so two models evaluated on the same users
give paired samples. Two tests per comparison (scipy): the paired t-test on the per-user
differences, and the Wilcoxon signed-rank test (``zero_method="wilcox"``: users with equal
values in both models are dropped, which for a 0/1 metric such as HR makes it a test on the
users where exactly one model hits). Many comparisons (baselines x metrics) are corrected
with Holm-Bonferroni, once per test and protocol.

Per-user ranks are stored with a run in ``ranks.npz`` (plain integer arrays, loaded with
``allow_pickle=False``): keys ``{phase}_users`` (user indices) and ``{phase}_{protocol}``
(1-based ranks), for ``phase`` in valid/test and ``protocol`` in paper/masked.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from fave.errors import FaveError
from fave.evaluation.metrics import hit_rate, ndcg
from fave.io_utils import atomic_write
from fave.rundir import RANKS

CORRECTION = "Holm-Bonferroni"


def save_ranks(run_dir: str | Path, ranks: dict[str, np.ndarray]) -> Path:
    """Write ``ranks`` (name -> integer array) to ``run_dir/ranks.npz`` atomically."""
    path = Path(run_dir) / RANKS
    arrays = {k: np.asarray(v, dtype=np.int64) for k, v in ranks.items()}

    def _write(tmp: str) -> None:
        with open(tmp, "wb") as f:  # a file object: np.savez would append ".npz" to a name
            np.savez(f, **arrays)

    atomic_write(path, _write)
    return path


def load_ranks(run_dir: str | Path) -> dict[str, np.ndarray] | None:
    """The run's saved ranks, or None when it has none (runs trained before they were saved)."""
    path = Path(run_dir) / RANKS
    if not path.is_file():
        return None
    with np.load(path, allow_pickle=False) as z:
        return {k: z[k] for k in z.files}


def per_user(ranks: np.ndarray, metric: str) -> np.ndarray:
    """Per-user values of ``metric`` ("HR@20", "NDCG@10", ...) from 1-based ranks [U] -> [U]."""
    name, _, k = metric.partition("@")
    fns = {"HR": hit_rate, "NDCG": ndcg}
    if name not in fns or not k.isdigit():
        raise ValueError(f"metric {metric!r}: expected HR@K or NDCG@K")
    return fns[name](np.asarray(ranks, dtype=np.float64), int(k))


def holm(pvalues: list[float]) -> list[float]:
    """Holm-Bonferroni adjusted p-values (step-down, made monotone, capped at 1).

    NaN p-values (a test that could not be computed) stay NaN and do not count in the family.
    """
    p = np.asarray(pvalues, dtype=np.float64)
    out = np.full_like(p, np.nan)
    ok = np.flatnonzero(~np.isnan(p))
    m = len(ok)
    order = ok[np.argsort(p[ok], kind="stable")]
    running = 0.0
    for i, j in enumerate(order):
        running = max(running, min(1.0, (m - i) * p[j]))
        out[j] = running
    return out.tolist()


@dataclass
class PairedTest:
    """One model against one baseline on one metric; means are fractions, p-values two-sided."""

    baseline: str
    metric: str
    n_users: int
    mean: float  # the model's per-user mean
    mean_baseline: float
    diff: float  # mean(model - baseline)
    t_p: float
    wilcoxon_p: float
    t_p_holm: float = float("nan")
    wilcoxon_p_holm: float = float("nan")


def paired_test(a: np.ndarray, b: np.ndarray) -> tuple[float, float]:
    """Two-sided p-values (paired t-test, Wilcoxon signed-rank) of per-user values a vs b [U].

    Identical samples give p = 1 for both (no evidence of a difference); a constant non-zero
    difference gives t-test p = 0 (zero variance).
    """
    from scipy import stats

    d = np.asarray(a, dtype=np.float64) - np.asarray(b, dtype=np.float64)
    if len(d) < 2:
        return float("nan"), float("nan")
    if not d.any():
        return 1.0, 1.0
    t_p = 0.0 if np.all(d == d[0]) else float(stats.ttest_rel(a, b).pvalue)
    w_p = float(stats.wilcoxon(a, b, zero_method="wilcox").pvalue)
    return t_p, w_p


def compare(model: dict[str, np.ndarray], baselines: dict[str, dict[str, np.ndarray]]) -> list[PairedTest]:
    """Paired tests of one model against every baseline on every metric, Holm-corrected.

    ``model`` maps a metric name to per-user values [U]; ``baselines`` maps a name to the same,
    on the same users in the same order. The family of the correction is all (baseline,
    metric) pairs, separately for each test.
    """
    out = []
    for name, values in baselines.items():
        for metric, a in model.items():
            b = values[metric]
            if len(a) != len(b):
                raise ValueError(f"{name}: {len(b)} users, the model has {len(a)}; pair the same users")
            t_p, w_p = paired_test(a, b)
            out.append(
                PairedTest(name, metric, len(a), float(a.mean()), float(b.mean()), float((a - b).mean()), t_p, w_p)
            )
    for t, w, r in zip(holm([r.t_p for r in out]), holm([r.wilcoxon_p for r in out]), out, strict=True):
        r.t_p_holm, r.wilcoxon_p_holm = t, w
    return out


def seed_mean(
    runs: list[dict[str, np.ndarray]], phase: str, protocol: str, metrics: tuple[str, ...], users: np.ndarray
) -> dict[str, np.ndarray]:
    """Per-user metric values averaged over a model's seeds, for ``users`` in that order -> {metric: [U]}."""
    rows = []
    for r in runs:
        pos = {int(u): i for i, u in enumerate(r[f"{phase}_users"])}
        rows.append(r[f"{phase}_{protocol}"][[pos[int(u)] for u in users]])
    return {m: np.mean([per_user(row, m) for row in rows], axis=0) for m in metrics}


def shared_users(runs: list[dict[str, np.ndarray]], phase: str) -> np.ndarray:
    """The ``phase`` users every run's saved ranks have, sorted."""
    users = runs[0][f"{phase}_users"]
    for r in runs[1:]:
        users = np.intersect1d(users, r[f"{phase}_users"])
    return users


def compare_runs(
    model_runs: list[dict[str, np.ndarray]],
    baselines: dict[str, list[dict[str, np.ndarray]]],
    phase: str = "test",
    protocol: str = "paper",
    metrics: tuple[str, ...] = ("HR@20", "NDCG@20"),
) -> list[PairedTest]:
    """:func:`compare` over run directories' saved ranks (:func:`load_ranks`), several seeds each.

    Users are the unit: each user's metric is the mean over that model's seeds (seeds need
    not match across models: seed 0 of two models share nothing but the number), and the
    paired samples are the users every run has. So n = users, not users x seeds: pooling
    seeds as extra samples would count one user several times and overstate significance.
    """
    users = shared_users([*model_runs, *(r for runs in baselines.values() for r in runs)], phase)
    if len(users) < 2:
        raise FaveError(f"fewer than 2 {phase} users shared by every run; nothing to pair")
    return compare(
        seed_mean(model_runs, phase, protocol, metrics, users),
        {name: seed_mean(runs, phase, protocol, metrics, users) for name, runs in baselines.items()},
    )


def as_dicts(tests: list[PairedTest]) -> list[dict[str, Any]]:
    return [asdict(t) for t in tests]
