"""One training run end to end: config -> data -> model -> trainer -> test -> run directory.

Under torchrun (``WORLD_SIZE`` > 1) every process runs :func:`train_run`: each loads the data
and builds the same model, trains its part of every batch, and evaluates its share of the users;
rank 0 alone writes the run directory and the log, and the others wait for it at the end.
"""

from __future__ import annotations

import json
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import yaml

from fave.config import SECTIONS, RunConfig, check_max_len, init_source, resolve_device
from fave.data.dataset import Split
from fave.data.load import load_split
from fave.distributed import SINGLE, World, joined, world_from_env
from fave.errors import FaveError
from fave.evaluation.evaluator import evaluate
from fave.evaluation.significance import save_ranks
from fave.models.base import SeqRecModel
from fave.models.catalog import resolve_config as resolve_params
from fave.models.catalog import resolve_run_config
from fave.models.registry import build_model
from fave.rundir import (
    CONFIG,
    IDMAP,
    LOG,
    RUN_FILES,
    STATE,
    WEIGHTS,
    id_map_dict,
    load_run,
    read_config,
    save_config,
    save_id_map,
    save_metrics,
    save_weights,
    stage_weights,
)
from fave.training.parallel import BatchPlan
from fave.training.trainer import Trainer, validation_users

__all__ = ["Logger", "evaluate_both", "fmt_metrics", "load_split", "resolve_device", "train_run"]

PROTOCOL_NOTE = (
    "paper: all items 1..N ranked, history not removed (as the published numbers); "
    "masked: the user's full input history removed. Per-user averages, fractions."
)


@dataclass
class Logger:
    """Prints and appends to the run directory's ``log.txt``."""

    path: Path | None
    quiet: bool = False

    def __call__(self, line: str) -> None:
        if not self.quiet:
            print(line, flush=True)
        if self.path is not None:
            with open(self.path, "a", encoding="utf-8") as f:
                f.write(line + "\n")


def evaluate_both(
    model: SeqRecModel,
    split: Split,
    config: RunConfig,
    diversity_k: int | None = 20,
    ranks: dict[str, np.ndarray] | None = None,
    world: World = SINGLE,
) -> dict[str, Any]:
    """Validation and test metrics (and test diversity); fills ``ranks`` with the per-user ranks
    (keys as ``ranks.npz``, see :mod:`fave.evaluation.significance`) when given. Every rank of
    ``world`` gets the same numbers."""
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
            world=world,
        )
        out[phase] = res.metrics
        if ranks is not None:
            ranks[f"{phase}_users"] = users.users
            ranks.update({f"{phase}_{p}": r for p, r in res.ranks.items()})
        if res.diversity:
            out["diversity"] = res.diversity
    return out


# config keys that may change when a run is resumed (where and how fast, not what is computed)
RESUMABLE_CHANGES = {("train", k) for k in ("device", "threads", "dist_backend", "dist_timeout_s")}


def _config_difference(old: Any, new: dict[str, Any]) -> str | None:
    """The first dotted key whose value differs between a saved config and a new one, or None."""
    if not isinstance(old, dict):
        return "config.yaml"
    for key in sorted(set(old) | set(new)):
        a, b = old.get(key), new.get(key)
        if key in SECTIONS and isinstance(a, dict) and isinstance(b, dict):
            for sub in sorted(set(a) | set(b)):
                if (key, sub) not in RESUMABLE_CHANGES and a.get(sub) != b.get(sub):
                    return f"{key}.{sub}: {a.get(sub)!r} -> {b.get(sub)!r}"
        elif a != b:
            return f"{key}: {a!r} -> {b!r}"
    return None


def _claim_run_dir(out: Path, config: RunConfig, split: Split, overwrite: bool) -> None:
    """Refuse to reuse ``out`` for another config or dataset (or delete the old run's files if ``overwrite``)."""
    if not (out / CONFIG).is_file():
        return
    try:
        saved = read_config(out)  # defaults filled in, so a key added to fave since is no difference
        saved = resolve_run_config(saved, split.num_items)[0]  # a key added since as `auto` means its choice here
        old = yaml.safe_load(yaml.safe_dump(saved.to_dict(), sort_keys=False))
        old_ids = json.loads((out / IDMAP).read_text(encoding="utf-8")) if (out / IDMAP).is_file() else None
    except (FaveError, ValueError):  # unreadable: not the same run
        old, old_ids = None, None
    new = yaml.safe_load(yaml.safe_dump(config.to_dict(), sort_keys=False))  # as config.yaml would read back
    diff = _config_difference(old, new)
    ids = split.data.id_map
    if diff is None and old_ids is not None and old_ids != json.loads(json.dumps(id_map_dict(ids, split.num_items))):
        diff = "the dataset's users or items"
    if diff is None:
        return  # the same run: resume it
    if not overwrite:
        what = f"a {old['model']} run with another config ({diff})" if old else "a run whose config cannot be read"
        raise FaveError(
            f"{out} already holds {what}; choose another --out, "
            "or pass --overwrite to delete that run and train this one"
        )
    for name in RUN_FILES:
        (out / name).unlink(missing_ok=True)


def train_run(
    config: RunConfig,
    out_dir: str | Path,
    data_dir: str | None = None,
    quiet: bool = False,
    split: Split | None = None,
    overwrite: bool = False,
    own_config: bool = False,
) -> dict[str, Any]:
    """Train, select on validation, evaluate test once; write the run directory. Returns metrics.

    An ``out_dir`` that holds a run of the same config and data resumes it; one that holds
    another run is refused (``overwrite=True`` deletes that run's files first).

    The params' ``auto`` keys are resolved for the dataset's catalog (:mod:`fave.models.catalog`)
    on a copy, so ``config`` is not changed; with ``own_config`` (the command line, which hands its
    config over) they are resolved in ``config.params`` itself, and the model receives that object.

    Launched by torchrun, the process joins its group here (or uses one its caller opened); every
    rank returns the same metrics, ``metrics["world_size"]`` saying how many processes trained.
    """
    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise FaveError(f"--out {out} is an existing file, not a directory; choose another --out path")
    device = resolve_device(config.train.device)
    check_max_len(config)
    BatchPlan(world_from_env(), config.train.micro_batches).check(config.train.batch_size)  # before any waiting
    with joined(config.train, device) as (world, device):
        split = split or load_split(config, data_dir)  # bad data fails before anything is written
        if own_config:  # `auto` keys by catalog size, saved resolved
            notes = resolve_params(config.params, split.num_items)
        else:
            config, notes = resolve_run_config(config, split.num_items)
        world.on_main(lambda: _claim_run_dir(out, config, split, overwrite))
        return _train(config, split, out, notes, device, world, quiet)


def _train(
    config: RunConfig, split: Split, out: Path, notes: list[str], device: torch.device, world: World, quiet: bool
) -> dict[str, Any]:
    """Build, train, evaluate; rank 0 writes ``out`` (the other ranks log nowhere)."""
    torch.manual_seed(config.seed)  # initial weights, the same on every rank
    model = build_model(config.model, config.params, split.num_items)
    if config.train.init_from:
        init_dir, stage = init_source(config.train.init_from)
        init, _, _ = load_run(init_dir, stage_weights(stage) if stage else WEIGHTS)
        model.load_state_dict(init.state_dict(), strict=False)
    model.to(device)
    fresh = not out.exists()
    log = Logger(out / LOG, quiet) if world.main else Logger(None, quiet=True)
    ranks_note = f" world_size={world.size}" if world.distributed else ""
    try:
        if world.main:
            out.mkdir(parents=True, exist_ok=True)
            save_config(config, out)
            save_id_map(split.data.id_map, split.num_items, out)
        log(
            f"# {time.strftime('%Y-%m-%d %H:%M:%S')} model={config.model} dataset={config.dataset} seed={config.seed} "
            f"users={split.data.num_users} items={split.num_items}{ranks_note}"
        )
        for note in notes:  # what `auto` chose for a large catalog (fave.models.catalog)
            log(note)
        trainer = Trainer(model, split, config, out, log, progress=not quiet and world.main, world=world)
        result = trainer.fit()
    except BaseException:
        if world.main and fresh and not (out / STATE).exists():
            shutil.rmtree(out, ignore_errors=True)  # nothing worth resuming was saved
        raise
    if world.main:
        save_weights(model, out / WEIGHTS)
    ranks: dict[str, np.ndarray] = {}
    metrics = evaluate_both(model, split, config, ranks=ranks, world=world)
    metrics.update(
        {
            "model": config.model,
            "dataset": config.dataset,
            "seed": config.seed,
            "world_size": world.size,
            "train_seconds": round(result.seconds, 2),
            "stages": [s.__dict__ for s in result.stages],
            "protocols": PROTOCOL_NOTE,
        }
    )
    if world.main:
        save_ranks(out, ranks)  # per-user ranks, for paired significance in reports
        save_metrics(metrics, out)
    log(f"test paper  {fmt_metrics(metrics['test']['paper'])}")
    log(f"test masked {fmt_metrics(metrics['test']['masked'])}")
    world.barrier()  # no rank returns before the run directory is complete
    return metrics


def fmt_metrics(m: dict[str, float], keys: tuple[str, ...] = ("HR@10", "HR@20", "NDCG@10", "NDCG@20")) -> str:
    return " ".join(f"{k}={100 * m[k]:.2f}%" for k in keys)
