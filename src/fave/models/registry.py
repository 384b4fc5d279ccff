"""The explicit table of models: name -> "module:Class" (imported on first use)."""

from __future__ import annotations

import importlib
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


def build_model(name: str, params: dict[str, Any], num_items: int) -> SeqRecModel:
    cls = model_class(name)
    config = build_dataclass(cls.Config, params, "params")
    return cls(config, num_items)
