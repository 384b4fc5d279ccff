"""Run directories: the one place that knows their layout and reads or writes them.

A run directory holds everything needed to use a model without the training data:
``model.safetensors`` (weights) + ``config.yaml`` (the resolved run config) + ``id_map.json``
(raw user and item ids). Training adds ``best.safetensors`` (the best weights so far),
``state.pt`` (optimizer, epoch, RNG: only to resume an interrupted training), ``metrics.json``
(validation and test metrics), ``ranks.npz`` (per-user ranks, :mod:`fave.evaluation.significance`)
and ``log.txt``. Training, evaluation, serving and benchmarks all go through this module.

Every write is atomic, and nothing read from a run directory can execute code: ``state.pt``
is read with torch's ``weights_only`` unpickler (tensors, containers and plain scalars only),
the rest is safetensors, YAML (``safe_load``) and JSON.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch
import yaml
from safetensors.torch import load_file, save_file

from fave.config import RunConfig, apply_overrides, check_max_len, config_from_dict
from fave.data.dataset import IdMap
from fave.errors import FaveError
from fave.io_utils import atomic_write, atomic_write_json, atomic_write_text
from fave.models.base import SeqRecModel
from fave.models.registry import build_model, model_class

WEIGHTS, CONFIG, IDMAP, STATE, BEST = "model.safetensors", "config.yaml", "id_map.json", "state.pt", "best.safetensors"
METRICS, RANKS, LOG = "metrics.json", "ranks.npz", "log.txt"


def stage_weights(stage: str) -> str:
    """The file in which a multi-stage run keeps a finished stage's best weights (a later run may start from it)."""
    return f"{stage}.safetensors"


STAGE1 = stage_weights("stage1")  # a two-stage FAVE run's Stage-1 best weights
# the files `fave train` writes into a run directory (what --overwrite deletes, nothing else)
RUN_FILES = (CONFIG, IDMAP, WEIGHTS, BEST, STATE, METRICS, LOG, RANKS, STAGE1)


def _tensors(model: SeqRecModel) -> dict[str, torch.Tensor]:
    # clone: safetensors refuses tensors that share memory (tied weights, expanded buffers)
    return {k: v.detach().cpu().contiguous().clone() for k, v in model.state_dict().items()}


def save_weights(model: SeqRecModel, path: Path) -> None:
    atomic_write(path, lambda tmp: save_file(_tensors(model), tmp))


def load_weights(model: SeqRecModel, path: Path, strict: bool = True) -> None:
    state = load_file(str(path))
    model.load_state_dict(state, strict=strict)


def save_config(config: RunConfig, run_dir: Path) -> None:
    atomic_write_text(run_dir / CONFIG, yaml.safe_dump(config.to_dict(), sort_keys=False))


def id_map_dict(id_map: IdMap, num_items: int) -> dict[str, Any]:
    """``id_map.json``'s content."""
    return {"num_items": num_items, "users": id_map.users, "items": id_map.items}


def save_id_map(id_map: IdMap, num_items: int, run_dir: Path) -> None:
    atomic_write_json(run_dir / IDMAP, id_map_dict(id_map, num_items))


def read_config_dict(run_dir: str | Path) -> dict[str, Any]:
    """The saved ``config.yaml`` as a mapping with a ``model`` key, or a FaveError saying what is wrong."""
    path = Path(run_dir) / CONFIG
    if not path.is_file():
        raise FaveError(f"{run_dir} is not a run directory (no {CONFIG}); pass the --out directory of `fave train`")
    try:
        d = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (yaml.YAMLError, UnicodeDecodeError) as e:
        raise FaveError(f"{path} is not valid YAML ({e.__class__.__name__}); restore it or retrain the run") from None
    if not isinstance(d, dict) or not isinstance(d.get("model"), str):
        raise FaveError(f"{path} is empty or has no `model:` key; restore it or retrain the run")
    return d


def read_config(run_dir: str | Path) -> RunConfig:
    d = read_config_dict(run_dir)
    return config_from_dict(d, model_class(d["model"]).Config)


def read_id_map(run_dir: Path) -> tuple[IdMap, int]:
    """``id_map.json`` checked for shape: lists of string ids and at least ``num_items`` items."""
    path = run_dir / IDMAP
    try:
        meta = json.loads(path.read_text(encoding="utf-8"))
    except (ValueError, UnicodeDecodeError) as e:
        raise FaveError(f"{path} is not valid JSON ({e.__class__.__name__}); restore it or retrain the run") from None
    users = meta.get("users") if isinstance(meta, dict) else None
    items = meta.get("items") if isinstance(meta, dict) else None
    num_items = meta.get("num_items") if isinstance(meta, dict) else None
    ok = isinstance(num_items, int) and not isinstance(num_items, bool) and num_items >= 1
    ok = ok and isinstance(users, list) and isinstance(items, list)
    ok = ok and all(isinstance(x, str) for x in users) and all(isinstance(x, str) for x in items)
    if not ok or len(items) != num_items:
        raise FaveError(
            f"{path} is malformed (needs num_items >= 1, and that many string ids in items); "
            "restore it or retrain the run"
        )
    return IdMap(users=users, items=items), num_items


def load_run(
    run_dir: str | Path, weights: str = WEIGHTS, overrides: list[str] | None = None
) -> tuple[SeqRecModel, RunConfig, IdMap]:
    """Rebuild a trained model from its run directory alone.

    ``overrides`` (``key=value``) change the config before the model is built, e.g. an
    inference setting such as ``params.sample_steps=5``; the weights must still fit.
    """
    run_dir = Path(run_dir)
    config = read_config(run_dir)
    if overrides:
        config = apply_overrides(config, overrides)
    check_max_len(config)
    for name in (weights, IDMAP):
        if not (run_dir / name).is_file():
            raise FaveError(
                f"{run_dir / name} is missing; the run did not finish (rerun `fave train` with that --out to resume)"
            )
    id_map, num_items = read_id_map(run_dir)
    model = build_model(config.model, config.params, num_items)
    try:
        load_weights(model, run_dir / weights)
    except Exception as e:  # corrupt or mismatched file
        raise FaveError(
            f"cannot load {run_dir / weights} ({e.__class__.__name__}); the file is corrupt or from another model"
        ) from None
    return model, config, id_map


def save_metrics(metrics: dict[str, Any], run_dir: Path) -> None:
    atomic_write_json(run_dir / METRICS, metrics)


def save_state(path: Path, state: dict[str, Any]) -> None:
    atomic_write(path, lambda tmp: torch.save(state, tmp))


# what every resume state holds, and the types load_state insists on
_STATE_TYPES: dict[str, type | tuple[type, ...]] = {"stage": int, "epoch": int, "done": list, "model": dict}


def load_state(path: Path) -> dict[str, Any] | None:
    """The resume state, or None (training restarts) when absent, corrupt or not a resume state.

    ``weights_only=True``: torch's restricted unpickler builds tensors, containers and plain
    scalars only, so a crafted ``state.pt`` cannot run code; it fails to load instead.
    """
    if not path.is_file():
        return None
    try:
        state = torch.load(path, weights_only=True, map_location="cpu")  # resumable on any device
    except Exception:
        return None  # a corrupt or unsafe resume state restarts training rather than failing
    if not isinstance(state, dict) or not all(isinstance(state.get(k), t) for k, t in _STATE_TYPES.items()):
        return None
    if not all(isinstance(d, dict) for d in state["done"]):
        return None
    return state
