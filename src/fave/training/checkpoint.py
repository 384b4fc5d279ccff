"""Run directories: weights (safetensors), resolved config, id maps, trainer state.

A run directory holds everything needed to use a model without the training data:
``model.safetensors`` + ``config.yaml`` + ``id_map.json``. ``state.pt`` (optimizer, epoch,
RNG) exists only to resume an interrupted training. Every write is atomic.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch
import yaml
from safetensors.torch import load_file, save_file

from fave.config import RunConfig, config_from_dict
from fave.data.dataset import IdMap
from fave.errors import FaveError
from fave.io_utils import atomic_write, atomic_write_json, atomic_write_text
from fave.models.base import SeqRecModel
from fave.models.registry import build_model, model_class

WEIGHTS, CONFIG, IDMAP, STATE, BEST = "model.safetensors", "config.yaml", "id_map.json", "state.pt", "best.safetensors"


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


def save_id_map(id_map: IdMap, num_items: int, run_dir: Path) -> None:
    atomic_write_json(run_dir / IDMAP, {"num_items": num_items, "users": id_map.users, "items": id_map.items})


def read_config(run_dir: Path) -> RunConfig:
    path = Path(run_dir) / CONFIG
    if not path.is_file():
        raise FaveError(f"{run_dir} is not a run directory (no {CONFIG}); pass the --out directory of `fave train`")
    d = yaml.safe_load(path.read_text(encoding="utf-8"))
    return config_from_dict(d, model_class(d["model"]).Config)


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
        from fave.config import _deep_update, parse_set

        merged = _deep_update(config.to_dict(), parse_set(overrides, set(config.params)))
        config = config_from_dict(merged, model_class(config.model).Config)
    for name in (weights, IDMAP):
        if not (run_dir / name).is_file():
            raise FaveError(
                f"{run_dir / name} is missing; the run did not finish (rerun `fave train` with that --out to resume)"
            )
    meta = json.loads((run_dir / IDMAP).read_text(encoding="utf-8"))
    model = build_model(config.model, config.params, int(meta["num_items"]))
    try:
        load_weights(model, run_dir / weights)
    except Exception as e:  # corrupt or mismatched file
        raise FaveError(
            f"cannot load {run_dir / weights} ({e.__class__.__name__}); the file is corrupt or from another model"
        ) from None
    return model, config, IdMap(users=meta["users"], items=meta["items"])


def save_state(path: Path, state: dict[str, Any]) -> None:
    atomic_write(path, lambda tmp: torch.save(state, tmp))


def load_state(path: Path) -> dict[str, Any] | None:
    if not path.is_file():
        return None
    try:
        return torch.load(path, weights_only=False, map_location="cpu")  # resumable on any device
    except Exception:
        return None  # a corrupt resume state restarts training rather than failing
