"""Which scorer a model gets: FAVE after Stage 2 takes the one-step graph, and it answers as score_all."""

from __future__ import annotations

import numpy as np
import torch

from fave.data.batching import Batch
from fave.models.registry import build_model
from fave.serving.scoring import Scorer

SMALL = {"hidden": 16, "heads": 2, "layers": 1, "decoder_block": 1, "decoder_hidden": [16, 16], "max_len": 8}


def test_fave_stage2_uses_the_one_step_graph_and_stage1_does_not() -> None:
    torch.manual_seed(0)
    model = build_model("fave", dict(SMALL, stage1_eval_steps=2), 20)
    model.begin_stage("stage1")
    assert Scorer(model, max_len=8, seed=0).kind == "per-history"
    model.begin_stage("stage2")
    scorer = Scorer(model, max_len=8, seed=0)
    assert scorer.kind == "one-step"
    history = np.array([3, 7, 1, 9])
    torch.manual_seed(0)
    with torch.no_grad():
        alone = model.score_all(Batch(history=torch.tensor([history]), user=torch.zeros(1, dtype=torch.long)))
    torch.testing.assert_close(scorer([history]), alone)
