"""Typed run configuration: dataclass defaults < packaged YAML < user YAML < ``--set`` overrides.

A run config has four parts: which ``model`` and ``dataset``, the ``seed``, and three
sections: ``data`` (:class:`DataConfig`), ``train`` (:class:`TrainConfig`) and ``params``
(the model's own config dataclass, declared at the top of its file). ``params`` is that
dataclass's instance from parsing on: the model receives the very object built here. The
fully resolved config is saved with every run (``params`` as a mapping), so a run can be
reproduced from its directory alone; :func:`apply_overrides` changes a config already built.

History length lives in two places on purpose: ``data.max_len`` is how many items of a history
the batches keep, ``params.max_len`` the size of the model's position table (its weights). A
model may have more positions than the data fills (``params.max_len=100`` with
``data.max_len=50`` trains, and such runs' weights only load into a table of that size), so the
two cannot be merged without changing results or refusing saved runs. The rule: ``params.max_len``
follows a ``data.max_len`` the user sets unless the user sets it too, and :func:`check_max_len`
refuses histories longer than the table.
"""

from __future__ import annotations

import dataclasses
import math
import re
import types
import typing
from dataclasses import asdict, dataclass, field, fields
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

from fave.errors import FaveError

if TYPE_CHECKING:  # pragma: no cover
    import torch


def init_source(init_from: str | Path) -> tuple[Path, str]:
    """``(run directory, stage)`` that ``train.init_from`` names: a run directory (its final weights, stage "")
    or a stage's weights inside one (``RUN/stage1.safetensors``, a two-stage run's Stage-1 best: "stage1")."""
    path = Path(init_from)
    return (path.parent, path.stem) if path.suffix == ".safetensors" else (path, "")


@dataclass
class DataConfig:
    max_len: int = 50  # histories keep their last max_len items (paper: 50)
    format: str = "auto"  # user files: auto | csv | tsv | inter | lines
    kcore: int = 0  # iterative k-core on users and items (0 = off; benchmarks: off)
    min_user_interactions: int = 0  # drop users with fewer interactions (0 = keep all)


@dataclass
class TrainConfig:
    epochs: int = 200
    batch_size: int = 512
    eval_batch_size: int = 512
    lr: float = 1e-3
    adam_beta2: float = 0.999  # Adam's second-moment decay (torch's default; original SASRec: 0.98)
    weight_decay: float = 0.0
    grad_clip: float = 1.0  # max grad norm (0 = off)
    patience: int = 10  # evaluations without improvement before stopping
    eval_every: int = 1  # epochs between validations
    select_metric: str = "NDCG@20"  # validation metric for model selection, or `any` (authors' code: a
    # checkpoint is better when any HR/NDCG@5/10/20 beats its own best; FAVE-NOTES sec. 9)
    select_protocol: str = "paper"  # paper | masked
    layout: str = "auto"  # auto (the model's choice) | prefix | parallel
    windows: str = "last"  # parallel layout: last (last max_len+1 items, as SASRec) | all (every target)
    threads: int = 0  # torch threads (0 = torch default)
    time_budget_s: float = 0.0  # stop a stage after this many seconds (0 = no budget)
    eval_seed: int = 12345  # seed for randomness at evaluation (anchor masks, noise)
    val_users: int = 0  # validate during training on a fixed random subset of this many users (0 = all)
    init_from: str = ""  # run directory whose weights start this run, or RUN/stage1.safetensors (FAVE Stage 2)
    device: str = "cpu"  # where training and evaluation run: cpu | cuda | cuda:N | auto (cuda when visible)
    lr_schedule: str = "constant"  # constant | step (authors' code: StepLR) | cosine (warm-up, then cosine to 0)
    lr_step_epochs: int = 100  # step: multiply the lr by lr_gamma every this many epochs (authors: 100)
    lr_gamma: float = 0.1  # step: decay factor (authors: 0.1)
    warmup_epochs: float = 0.0  # cosine: linear warm-up over this many epochs (fractions allowed)
    ema_epochs: float = 0.0  # validate, select and keep a moving average of the weights over this many epochs
    # of steps (0 = off: the last step's weights; fave.training.average)
    batch_order: str = "bucketed"  # bucketed (length buckets, shuffled) | shuffled (authors' code: plain shuffle)
    # | balanced (length buckets cut to about the same number of supervised targets per batch)
    window_offset: str = "fixed"  # parallel layout, windows=all: fixed window ends | random (a new offset per epoch)
    # batch_size is the global batch: split over torchrun's processes and, in each, over micro_batches
    # (gradient accumulation), each part drawing its own random numbers (docs/scale.md)
    micro_batches: int = 1
    dist_backend: str = "auto"  # torchrun runs: auto (nccl on CUDA, gloo on CPU) | gloo | nccl
    dist_timeout_s: float = 1800.0  # torchrun runs: how long a process waits for the others (joining, collectives)


@dataclass
class RunConfig:
    model: str
    dataset: str
    seed: int = 0
    data: DataConfig = field(default_factory=DataConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    params: Any = None  # the model's Config instance (``model_class(model).Config``); None: its defaults

    def to_dict(self) -> dict[str, Any]:
        """Plain mappings all the way down (``params`` too): the layout of ``config.yaml``."""
        return asdict(self)


SECTIONS = ("data", "train", "params")
TRAIN_CHOICES = {
    "lr_schedule": ("constant", "step", "cosine"),
    "batch_order": ("bucketed", "shuffled", "balanced"),
    "window_offset": ("fixed", "random"),
    "dist_backend": ("auto", "gloo", "nccl"),
}
# smallest allowed value of numeric keys (0 where 0 means "off")
MINIMUM: dict[str, dict[str, float]] = {
    "train": {
        "epochs": 0,
        "batch_size": 1,
        "eval_batch_size": 1,
        "lr": 0,
        "weight_decay": 0,
        "grad_clip": 0,
        "patience": 1,
        "eval_every": 1,
        "val_users": 0,
        "threads": 0,
        "time_budget_s": 0,
        "lr_step_epochs": 1,
        "lr_gamma": 0,
        "warmup_epochs": 0,
        "ema_epochs": 0,
        "micro_batches": 1,
        "dist_timeout_s": 1,
    },
    "data": {"max_len": 1, "kcore": 0, "min_user_interactions": 0},
}
DEVICE = re.compile(r"cpu|auto|cuda(:\d+)?")  # the accepted values of train.device (and `fave bench --device`)
_FLOAT = re.compile(r"[+-]?(\d+\.?\d*|\.\d+)[eE][+-]?\d+")


def check_device(name: str, key: str = "device") -> None:
    """A device name as ``train.device`` accepts it (cpu, cuda, cuda:N, auto), or a clear error naming ``key``."""
    if not DEVICE.fullmatch(name):
        raise FaveError(f"{key} must be cpu, cuda, cuda:N or auto, got {name!r}")


def use_threads(threads: int, flag: str = "--threads") -> None:
    """Set torch's CPU thread count (0 keeps torch's default); a negative count is a clear error naming ``flag``."""
    if threads < 0:
        raise FaveError(f"{flag} {threads}: give a positive number of threads (0: torch's default)")
    if threads:
        import torch

        torch.set_num_threads(threads)


def resolve_device(name: str) -> torch.device:
    """``train.device`` as a torch device; a GPU that is asked for but not visible is an error, not a fallback."""
    import torch

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


def _finite(cls_name: str, key: str, value: float) -> float:
    if not math.isfinite(value):
        raise FaveError(f"config key {cls_name}.{key}: expected a finite number, got {value!r}")
    return value


def _coerce(cls_name: str, f: dataclasses.Field, value: Any) -> Any:
    """Check/convert ``value`` for dataclass field ``f``; raise FaveError naming the key."""
    typ = f.type
    if isinstance(typ, str):  # postponed annotations
        typ = {"int": int, "float": float, "str": str, "bool": bool}.get(typ, typ)
    origin = typing.get_origin(typ)
    allowed = typing.get_args(typ) if origin in (typing.Union, types.UnionType) else (typ,)
    if value is None and type(None) in allowed:
        return None
    for t in allowed:
        if t is bool and isinstance(value, bool):
            return value
        if t is int and isinstance(value, int) and not isinstance(value, bool):
            return value
        if t is float and isinstance(value, (int, float)) and not isinstance(value, bool):
            return _finite(cls_name, f.name, float(value))
        if t is float and isinstance(value, str) and _FLOAT.fullmatch(value.strip()):
            return _finite(cls_name, f.name, float(value))  # YAML 1.1 reads "1e-3" (no dot) as a string
        if t is str and isinstance(value, (str, int, float)) and not isinstance(value, bool):
            return str(value)
        if t in (list, tuple) or typing.get_origin(t) in (list, tuple):
            if isinstance(value, (list, tuple)):
                return list(value)
    if not isinstance(typ, type) and typing.get_origin(typ) is None and typ not in (int, float, str, bool):
        return value
    expected = getattr(typ, "__name__", typ)
    raise FaveError(f"config key {cls_name}.{f.name}: expected {expected}, got {value!r}")


def build_dataclass(cls: type, values: dict[str, Any], where: str) -> Any:
    """Instantiate dataclass ``cls`` from ``values``, rejecting unknown keys with a clear error."""
    known = {f.name: f for f in fields(cls)}
    unknown = sorted(set(values) - set(known))
    if unknown:
        raise FaveError(f"unknown config key {where}.{unknown[0]}; allowed keys: {', '.join(sorted(known))}")
    return cls(**{k: _coerce(where, known[k], v) for k, v in values.items()})


def _deep_update(base: dict[str, Any], new: dict[str, Any]) -> dict[str, Any]:
    for k, v in new.items():
        if isinstance(v, dict) and isinstance(base.get(k), dict):
            _deep_update(base[k], v)
        else:
            base[k] = v
    return base


def load_yaml(path: str | Path) -> dict[str, Any]:
    path = Path(path)
    if not path.is_file():
        packaged = resources.files("fave") / "configs" / f"{path.as_posix().removesuffix('.yaml')}.yaml"
        if packaged.is_file():  # a packaged config by name, e.g. --config authors/fave.ml-100k
            return yaml.safe_load(packaged.read_text(encoding="utf-8")) or {}
        raise FaveError(f"config file not found: {path}; check the path given to --config")
    try:
        obj = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except UnicodeDecodeError:
        raise FaveError(f"config file {path} is not UTF-8 text; --config takes a YAML file") from None
    except yaml.YAMLError as e:
        raise FaveError(f"config file {path} is not valid YAML ({e.__class__.__name__}); fix its syntax") from None
    except OSError as e:
        raise FaveError(f"cannot read config file {path} ({e.strerror or e}); check its permissions") from None
    if not isinstance(obj, dict):
        raise FaveError(f"config file {path} must hold a mapping (key: value lines)")
    return obj


def packaged_config(name: str) -> dict[str, Any]:
    """``fave/configs/<name>.yaml`` shipped with the package, or {} when absent."""
    res = resources.files("fave") / "configs" / f"{name}.yaml"
    if not res.is_file():
        return {}
    return yaml.safe_load(res.read_text(encoding="utf-8")) or {}


def parse_set(items: list[str], params_keys: set[str]) -> dict[str, Any]:
    """Turn ``key=value`` overrides into a nested dict.

    ``key`` may be dotted (``train.lr``) or bare; a bare key is looked up in the train,
    data and params sections (``epochs=1`` means ``train.epochs=1``).
    """
    out: dict[str, Any] = {}
    train_keys = {f.name for f in fields(TrainConfig)}
    data_keys = {f.name for f in fields(DataConfig)}
    for item in items:
        if "=" not in item:
            raise FaveError(f"--set expects key=value, got {item!r} (e.g. --set epochs=1)")
        key, raw = item.split("=", 1)
        value = yaml.safe_load(raw) if raw != "" else ""
        parts = key.strip().split(".")
        if len(parts) == 1:
            k = parts[0]
            if k in ("seed", "model", "dataset"):
                parts = [k]
            else:
                homes = [
                    s for s, ks in (("train", train_keys), ("data", data_keys), ("params", params_keys)) if k in ks
                ]
                if not homes:
                    allowed = sorted(train_keys | data_keys | params_keys)
                    raise FaveError(f"unknown config key {k!r} in --set; allowed: {', '.join(allowed)}")
                parts = [homes[0], k]
        _set(out, parts, value)
    return out


def _set(out: dict[str, Any], parts: list[str], value: Any) -> None:
    node = out
    for p in parts[:-1]:
        if not isinstance(node.setdefault(p, {}), dict):
            raise FaveError(f"--set {'.'.join(parts)}: {p} is a value, not a section")
        node = node[p]
    node[parts[-1]] = value


def resolve_config(
    model: str,
    dataset: str,
    params_cls: type,
    config_file: str | None = None,
    overrides: list[str] | None = None,
    seed: int | None = None,
    dataset_key: str | None = None,
) -> RunConfig:
    """Merge defaults, packaged YAML (``<model>.yaml``, ``<model>.<dataset>.yaml``), a user file and overrides."""
    merged: dict[str, Any] = {"model": model, "dataset": dataset, "data": {}, "train": {}, "params": {}}
    _deep_update(merged, packaged_config(model))
    if dataset_key:
        _deep_update(merged, packaged_config(f"{model}.{dataset_key}"))
    params_keys = {f.name for f in fields(params_cls)}
    user = _deep_update(load_yaml(config_file) if config_file else {}, parse_set(overrides or [], params_keys))
    _deep_update(merged, user)
    if "max_len" in params_keys:
        _follow_max_len(merged, user)
    if seed is not None:
        merged["seed"] = seed
    merged["model"], merged["dataset"] = model, dataset
    return config_from_dict(merged, params_cls)


def apply_overrides(config: RunConfig, overrides: list[str]) -> RunConfig:
    """A new config: ``config`` with ``key=value`` overrides (as ``--set`` takes them) applied and checked.

    Used to change a saved run's config before its model is built (e.g. an inference setting such
    as ``params.sample_steps=5``). Unlike :func:`resolve_config`, ``params.max_len`` does not follow
    a new ``data.max_len`` here: the saved weights fix the model's positions, and
    :func:`check_max_len` refuses longer histories.
    """
    params_cls = type(config.params)
    merged = _deep_update(config.to_dict(), parse_set(overrides, {f.name for f in fields(params_cls)}))
    return config_from_dict(merged, params_cls)


def _section(d: dict[str, Any], name: str) -> dict[str, Any]:
    value = d.get(name)
    return value if isinstance(value, dict) else {}


def _follow_max_len(merged: dict[str, Any], user: dict[str, Any]) -> None:
    """One history length: the model's ``params.max_len`` follows a ``data.max_len`` the user sets,
    unless the user also sets ``params.max_len`` (then :func:`check_max_len` checks they fit)."""
    if "max_len" in _section(user, "data") and "max_len" not in _section(user, "params"):
        if isinstance(merged.get("params"), dict):
            merged["params"]["max_len"] = user["data"]["max_len"]


def check_max_len(config: RunConfig) -> None:
    """Histories of ``data.max_len`` items must fit the model's position table (``params.max_len``);
    checked before a model is trained or evaluated, where a longer history would index past it."""
    model_len, data_len = getattr(config.params, "max_len", None), config.data.max_len
    if isinstance(model_len, int) and data_len > model_len:
        raise FaveError(
            f"data.max_len={data_len} exceeds params.max_len={model_len} (the model's positions); "
            "raise params.max_len too (or set only data.max_len: the model's follows it)"
        )


def config_from_dict(d: dict[str, Any], params_cls: type) -> RunConfig:
    unknown = sorted(set(d) - {"model", "dataset", "seed", *SECTIONS})
    if unknown:
        raise FaveError(
            f"unknown top-level config key {unknown[0]!r}; allowed: model, dataset, seed, data, train, params"
        )
    for key in ("model", "dataset"):
        if not isinstance(d.get(key), str):
            raise FaveError(f"config key {key!r} must be a name, got {d.get(key)!r}")
    for section in SECTIONS:
        if not isinstance(d.get(section) or {}, dict):
            raise FaveError(f"config section {section!r} must be a mapping (key: value lines), got {d[section]!r}")
    params = build_dataclass(params_cls, d.get("params") or {}, "params")
    train = build_dataclass(TrainConfig, d.get("train") or {}, "train")
    if train.select_protocol not in ("paper", "masked"):
        raise FaveError(f"train.select_protocol must be 'paper' or 'masked', got {train.select_protocol!r}")
    if train.windows not in ("last", "all"):
        raise FaveError(f"train.windows must be 'last' or 'all', got {train.windows!r}")
    for key, allowed in TRAIN_CHOICES.items():
        if getattr(train, key) not in allowed:
            raise FaveError(f"train.{key}={getattr(train, key)!r}; allowed: {', '.join(allowed)}")
    if train.layout not in ("auto", "prefix", "parallel"):
        raise FaveError(f"train.layout must be auto, prefix or parallel, got {train.layout!r}")
    if not 0.0 <= train.adam_beta2 < 1.0:
        raise FaveError(f"train.adam_beta2={train.adam_beta2!r}; allowed: 0 <= adam_beta2 < 1 (e.g. 0.999 or 0.98)")
    check_device(train.device, "train.device")
    from fave.evaluation.metrics import KS  # the metrics every validation computes

    metrics = [f"{m}@{k}" for m in ("HR", "NDCG", "MRR") for k in KS]
    if train.select_metric not in [*metrics, "any"]:
        raise FaveError(f"train.select_metric={train.select_metric!r}; allowed: any, {', '.join(metrics)}")
    data = build_dataclass(DataConfig, d.get("data") or {}, "data")
    for section, obj in (("train", train), ("data", data)):
        for key, low in MINIMUM[section].items():
            if getattr(obj, key) < low:
                raise FaveError(f"{section}.{key}={getattr(obj, key)!r}; allowed: >= {low}")
    seed = d.get("seed", 0)
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise FaveError(f"seed must be an integer, got {seed!r}")
    return RunConfig(
        model=str(d["model"]),
        dataset=str(d["dataset"]),
        seed=seed,
        data=data,
        train=train,
        params=params,
    )
