"""Opening the runs a figure draws from, and naming them in its JSON and Markdown."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from fave.config import RunConfig
from fave.data.dataset import EvalSet, Split
from fave.data.load import load_split
from fave.errors import FaveError
from fave.models.base import SeqRecModel
from fave.rundir import METRICS, load_run


@dataclass
class FigureRun:
    path: str
    model: SeqRecModel
    config: RunConfig
    split: Split

    @property
    def name(self) -> str:
        return self.config.model

    def test_set(self) -> EvalSet:
        return self.split.eval_set("test")

    def describe(self) -> dict[str, Any]:
        """What the figure's JSON says about the run: where, which model/stage/seed, its test H@20."""
        info: dict[str, Any] = {"run": self.path, "model": self.config.model, "seed": self.config.seed}
        stage = getattr(self.model.config, "stage", None)  # FAVE's: 1 | 2 | both
        if stage is not None:
            info["stage"] = str(stage)
        metrics = Path(self.path) / METRICS
        if metrics.is_file():
            test = json.loads(metrics.read_text(encoding="utf-8")).get("test", {}).get("paper", {})
            info["test_paper_HR@20"] = test.get("HR@20")
            info["test_paper_NDCG@20"] = test.get("NDCG@20")
        return info


def open_run(run_dir: str | Path, data_dir: str | Path | None = None, split: Split | None = None) -> FigureRun:
    """A trained run in eval mode with its test split (``split`` reused when given)."""
    model, config, _ = load_run(run_dir)
    model.eval()
    split = split if split is not None else load_split(config, data_dir)
    if split.num_items != model.num_items:
        raise FaveError(f"{run_dir} was trained on {model.num_items} items, the split has {split.num_items}")
    return FigureRun(str(run_dir), model, config, split)


def same_data(a: FigureRun, b: FigureRun) -> None:
    """Two runs drawn in one figure must share the dataset and its split."""
    if a.config.dataset != b.config.dataset or a.config.data != b.config.data:
        raise FaveError(f"{a.path} and {b.path} were trained on different data; draw runs of one dataset together")


def raw_items(run: FigureRun, ids: np.ndarray) -> list[str]:
    items = run.split.data.id_map.items
    return [items[int(i) - 1] for i in ids]


def raw_users(run: FigureRun, rows: np.ndarray) -> list[str]:
    users = run.split.data.id_map.users
    return [users[int(u)] for u in rows]


def hit_rate(final: torch.Tensor, items: torch.Tensor, targets: np.ndarray, k: int = 20) -> float:
    """HR@k (paper protocol: history not removed) of the vectors ``final`` [n, D] scored against ``items`` [N, D]."""
    scores = final @ items.T
    target_scores = scores.gather(1, torch.as_tensor(targets - 1, dtype=torch.long)[:, None])
    rank = (scores > target_scores).sum(1) + 1
    return float((rank <= k).double().mean())
