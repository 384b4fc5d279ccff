"""Batch-independent scoring: a history's scores are the same alone, in a batch, and as the model's
own ``score_all`` under the eval seed."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from fave.data.batching import Batch, left_pad
from fave.models.registry import build_model
from fave.serving.scoring import Scorer

SEED, MAX_LEN, N = 7, 10, 30
CASES = [
    ("fave", {}, "one-step"),
    ("fave", {"padding_keys": "visible"}, "one-step"),
    ("fave", {"objective": "authors"}, "one-step"),
    ("fave", {"stage": "1", "stage1_eval_steps": 2}, "per-history"),
    ("sasrec", {}, "batched"),
    ("fmrec", {"sample_steps": 2}, "per-history"),
]


def library_scores(model, h: np.ndarray) -> torch.Tensor:
    """What the model's own ``score_all`` gives this history alone under ``manual_seed``."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(SEED)
        batch = Batch(history=torch.from_numpy(left_pad([h], MAX_LEN)), user=torch.zeros(1, dtype=torch.long))
        return model.score_all(batch)[0]


@pytest.mark.parametrize(("name", "params", "kind"), CASES)
def test_scores_do_not_depend_on_the_batch(name: str, params: dict, kind: str) -> None:
    torch.manual_seed(0)
    base = {"hidden": 16, "heads": 2, "layers": 2, "max_len": MAX_LEN}
    model = build_model(name, {**base, **params}, N).eval()
    scorer = Scorer(model, MAX_LEN, SEED)
    assert scorer.kind == kind
    rng = np.random.default_rng(0)
    histories = [rng.integers(1, N + 1, size=n) for n in (1, 3, 10, 14, 5, 3)]
    batched = scorer(histories)
    with torch.no_grad():
        for h, row in zip(histories, batched, strict=True):
            alone = scorer([h])[0]
            torch.testing.assert_close(alone, library_scores(model, h), rtol=0, atol=1e-6)  # the library's answer
            torch.testing.assert_close(row, alone, rtol=1e-5, atol=1e-6)


def test_the_one_step_graph_embeds_its_fixed_times_once() -> None:
    """t = 0 and r = 1 are fixed: their embedding is computed at construction, not per call."""
    torch.manual_seed(0)
    model = build_model("fave", {"hidden": 16, "heads": 2, "layers": 2, "max_len": MAX_LEN}, N).eval()
    scorer = Scorer(model, MAX_LEN, SEED)
    t = torch.zeros(1)
    with torch.no_grad():
        torch.testing.assert_close(scorer.graph.times, model.net.condition(t, torch.ones_like(t)), rtol=0, atol=0)
    h = np.arange(1, 6)
    expected = library_scores(model, h)

    def no_call(*_):
        raise AssertionError("time embedding called at inference")

    model.net.time_emb.forward = no_call
    torch.testing.assert_close(scorer([h])[0], expected, rtol=0, atol=1e-6)


@pytest.mark.parametrize(("name", "params", "kind"), CASES[:2] + CASES[4:5])
def test_a_padded_batch_scores_as_its_unpadded_rows(name: str, params: dict, kind: str) -> None:
    torch.manual_seed(0)
    model = build_model(name, {"hidden": 16, "heads": 2, "layers": 2, "max_len": MAX_LEN, **params}, N).eval()
    scorer = Scorer(model, MAX_LEN, SEED)
    rng = np.random.default_rng(1)
    histories = [rng.integers(1, N + 1, size=n) for n in (1, 4, 10, 7)]
    history = torch.from_numpy(left_pad(histories, MAX_LEN))
    torch.testing.assert_close(scorer.padded(history), scorer(histories), rtol=1e-5, atol=1e-6)
