"""One training run end to end: config -> data -> model -> trainer -> test -> run directory."""

from __future__ import annotations

import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from fave.config import RunConfig, check_device
from fave.data.dataset import SequenceData, Split
from fave.errors import FaveError
from fave.evaluation.evaluator import evaluate
from fave.evaluation.significance import save_ranks
from fave.io_utils import atomic_write_json
from fave.models.base import SeqRecModel
from fave.models.registry import build_model
from fave.training.checkpoint import WEIGHTS, load_run, save_config, save_id_map, save_weights
from fave.training.trainer import Trainer, validation_users

PROTOCOL_NOTE = (
    "paper: all items 1..N ranked, history not removed (as the published numbers); "
    "masked: the user's full input history removed. Per-user averages, fractions."
)


@dataclass
class Logger:
    """Prints and appends to ``log.txt`` in the run directory."""

    path: Path | None
    quiet: bool = False

    def __call__(self, line: str) -> None:
        if not self.quiet:
            print(line, flush=True)
        if self.path is not None:
            with open(self.path, "a", encoding="utf-8") as f:
                f.write(line + "\n")


def load_split(config: RunConfig, data_dir: str | None) -> Split:
    from fave.data.load import load_dataset

    d = config.data
    data = load_dataset(
        config.dataset, data_dir, fmt=d.format, kcore=d.kcore, min_user_interactions=d.min_user_interactions
    )
    return Split(data)


def resolve_device(name: str) -> torch.device:
    """``train.device`` as a torch device; a GPU that is asked for but not visible is an error, not a fallback."""
    check_device(name)
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(name)
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise FaveError(f"train.device={name} but no CUDA GPU is visible to torch; use --set device=cpu")
        if (device.index or 0) >= torch.cuda.device_count():
            raise FaveError(f"train.device={name} but only {torch.cuda.device_count()} GPU(s) are visible")
    return device


def evaluate_both(
    model: SeqRecModel,
    split: Split,
    config: RunConfig,
    diversity_k: int | None = 20,
    ranks: dict[str, np.ndarray] | None = None,
) -> dict[str, Any]:
    """Validation and test metrics (and test diversity); fills ``ranks`` with the per-user ranks
    (keys as ``ranks.npz``, see :mod:`fave.evaluation.significance`) when given."""
    out: dict[str, Any] = {}
    for phase in ("valid", "test"):
        users = validation_users(split, config.train) if phase == "valid" else split.eval_set(phase)
        res = evaluate(
            model,
            users,
            config.data.max_len,
            config.train.eval_batch_size,
            diversity_k=diversity_k if phase == "test" else None,
            seed=config.train.eval_seed,
        )
        out[phase] = res.metrics
        if ranks is not None:
            ranks[f"{phase}_users"] = users.users
            ranks.update({f"{phase}_{p}": r for p, r in res.ranks.items()})
        if res.diversity:
            out["diversity"] = res.diversity
    return out


def train_run(
    config: RunConfig, out_dir: str | Path, data_dir: str | None = None, quiet: bool = False, split: Split | None = None
) -> dict[str, Any]:
    """Train, select on validation, evaluate test once; write the run directory. Returns metrics."""
    out = Path(out_dir)
    device = resolve_device(config.train.device)
    split = split or load_split(config, data_dir)  # bad data fails before anything is written
    torch.manual_seed(config.seed)  # initial weights
    model = build_model(config.model, config.params, split.num_items)
    if config.train.init_from:
        init, _, _ = load_run(config.train.init_from)
        model.load_state_dict(init.state_dict(), strict=False)
    model.to(device)
    fresh = not out.exists()
    try:
        out.mkdir(parents=True, exist_ok=True)
        save_config(config, out)
        save_id_map(split.data.id_map, split.num_items, out)
        log = Logger(out / "log.txt", quiet)
        log(
            f"# {time.strftime('%Y-%m-%d %H:%M:%S')} model={config.model} dataset={config.dataset} seed={config.seed} "
            f"users={split.data.num_users} items={split.num_items}"
        )
        trainer = Trainer(model, split, config, out, log, progress=not quiet)
        result = trainer.fit()
    except BaseException:
        if fresh and not (out / "state.pt").exists():
            shutil.rmtree(out, ignore_errors=True)  # nothing worth resuming was saved
        raise
    save_weights(model, out / WEIGHTS)
    ranks: dict[str, np.ndarray] = {}
    metrics = evaluate_both(model, split, config, ranks=ranks)
    save_ranks(out, ranks)  # per-user ranks, for paired significance in reports
    metrics.update(
        {
            "model": config.model,
            "dataset": config.dataset,
            "seed": config.seed,
            "train_seconds": round(result.seconds, 2),
            "stages": [s.__dict__ for s in result.stages],
            "protocols": PROTOCOL_NOTE,
        }
    )
    atomic_write_json(out / "metrics.json", metrics)
    log(f"test paper  {fmt_metrics(metrics['test']['paper'])}")
    log(f"test masked {fmt_metrics(metrics['test']['masked'])}")
    return metrics


def fmt_metrics(m: dict[str, float], keys: tuple[str, ...] = ("HR@10", "HR@20", "NDCG@10", "NDCG@20")) -> str:
    return " ".join(f"{k}={100 * m[k]:.2f}%" for k in keys)


def data_summary(data: SequenceData) -> str:
    s = data.stats()
    return f"{s['dataset']}: {s['users']} users, {s['items']} items, {s['interactions']} interactions"
