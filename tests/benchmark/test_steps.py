"""Accuracy vs sampling steps: every step count evaluated with that many network calls,
the model's configuration restored, FAVE's one step beside it, and the three outputs."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from fave.benchmark.steps import render_steps_markdown, run_steps, write_steps
from fave.data.dataset import IdMap, SequenceData, Split
from fave.errors import FaveError
from fave.models.registry import build_model

N_ITEMS = 25
TINY = dict(hidden=16, heads=2, layers=2, decoder_hidden=[8, 8])


pytestmark = pytest.mark.usefixtures("one_thread")


def tiny_split(users: int = 10) -> Split:
    rng = np.random.default_rng(1)
    seqs = [rng.integers(1, N_ITEMS + 1, size=int(rng.integers(3, 9))) for _ in range(users)]
    return Split(
        SequenceData(
            "tiny",
            seqs,
            N_ITEMS,
            IdMap([str(u) for u in range(users)], [str(i) for i in range(N_ITEMS)]),
        )
    )


def test_steps_curve_with_fave_reference(tmp_path) -> None:
    torch.manual_seed(0)
    fmrec = build_model("fmrec", dict(TINY, sample_steps=30), N_ITEMS)
    fave = build_model("fave", TINY, N_ITEMS)
    calls: list[int] = []
    fmrec.net.register_forward_hook(lambda *_: calls.append(1))
    split = tiny_split()
    res = run_steps(fmrec, split.eval_set("test"), 10, (1, 2, 5), reference=fave, seeds=(1, 2), batch_size=64)
    assert fmrec.config.sample_steps == 30  # restored
    assert len(calls) == (1 + 2 + 5) * 2  # one batch per seed, `steps` calls each
    assert [r["steps"] for r in res["curve"]] == [1, 2, 5]
    row = res["curve"][0]
    assert {"paper", "masked", "paper_std", "masked_std", "eval_s"} <= set(row)
    assert 0 <= row["paper"]["HR@20"] <= row["masked"]["HR@20"] <= 1
    assert res["reference"]["name"] == "fave" and res["reference"]["steps"] == 1
    md = render_steps_markdown(res)
    assert md.count("| fmrec |") == 3 and "| fave | 1 |" in md and "±" in md
    paths = write_steps(res, tmp_path)
    assert json.loads(paths[0].read_text())["meta"]["trained_steps"] == 30
    assert paths[2].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_steps_needs_a_multi_step_model() -> None:
    with pytest.raises(FaveError, match="sample_steps"):
        run_steps(build_model("sasrec", {}, N_ITEMS), tiny_split().eval_set("test"), 10, (1,))
