"""The explicit table of models: name -> "module:Class" (imported on first use)."""

from __future__ import annotations

import importlib
from collections.abc import Mapping
from typing import Any

from fave.config import build_dataclass
from fave.errors import FaveError
from fave.models.base import SeqRecModel

MODELS: dict[str, str] = {
    "pop": "fave.models.pop:Pop",
    "sasrec": "fave.models.sasrec:SASRec",
    "gru4rec": "fave.models.gru4rec:GRU4Rec",
    "caser": "fave.models.caser:Caser",
    "bert4rec": "fave.models.bert4rec:BERT4Rec",
    "stosa": "fave.models.stosa:STOSA",
    "autoseqrec": "fave.models.autoseqrec:AutoSeqRec",
    "dreamrec": "fave.models.dreamrec:DreamRec",
    "fave": "fave.models.fave:FAVE",
    "fmrec": "fave.models.fmrec:FMRec",
    "diffurec": "fave.models.diffurec:DiffuRec",
}


def model_class(name: str) -> type[SeqRecModel]:
    if name not in MODELS:
        raise FaveError(f"unknown model {name!r}; available: {', '.join(sorted(MODELS))}")
    module, cls = MODELS[name].split(":")
    return getattr(importlib.import_module(module), cls)


def build_model(name: str, params: Any, num_items: int) -> SeqRecModel:
    """Model ``name`` over ``num_items`` items.

    ``params`` is the model's ``Config`` instance (``RunConfig.params``), which the model keeps as
    is, or for scripts and tests a mapping of its fields (checked and built here; None: the defaults).
    """
    cls = model_class(name)
    if params is None or isinstance(params, Mapping):
        params = build_dataclass(cls.Config, dict(params or {}), "params")
    elif not isinstance(params, cls.Config):
        raise FaveError(f"params for {name} must be a {cls.Config.__name__}, got {type(params).__name__}")
    return cls(params, num_items)
