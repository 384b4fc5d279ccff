"""The model contract every recommender implements.

Training calls ``loss(batch)``; the evaluator, benchmark and server call
``score_all(batch) -> [B, N]`` (column j scores item j + 1; padding id 0 is never scored).
A model never reads files: what it may know about other users' interactions reaches it
through ``observe(inputs)``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np
import torch
from torch import Tensor, nn

from fave.data.batching import Batch


@dataclass
class LossOutput:
    """The loss to minimise and its named parts (floats, for the log)."""

    loss: Tensor
    parts: dict[str, float] = field(default_factory=dict)


@dataclass
class StagePlan:
    """One training stage: how long, which learning rate, which sampler layout.

    ``lr_scale`` multiplies ``train.lr``; ``epochs`` = None uses ``train.epochs``.
    """

    name: str
    epochs: int | None = None
    lr_scale: float = 1.0
    weight_decay: float | None = None


class SeqRecModel(nn.Module):
    """Base class: subclasses set ``Config`` (a dataclass) and implement loss/score_all."""

    Config: ClassVar[type]
    #: training layout the model wants: "parallel" (every position) or "prefix" (paper)
    default_layout: ClassVar[str] = "parallel"
    #: False for models with nothing to train (popularity)
    trainable: ClassVar[bool] = True

    def __init__(self, config: Any, num_items: int) -> None:
        super().__init__()
        self.config = config
        self.num_items = num_items

    # -- training --------------------------------------------------------------------
    def loss(self, batch: Batch) -> LossOutput:
        raise NotImplementedError

    def stages(self) -> list[StagePlan]:
        """Training stages in order; most models have one."""
        return [StagePlan("main")]

    def begin_stage(self, name: str) -> None:
        """Called before each stage (freeze parameters, switch priors...)."""

    # -- inference -------------------------------------------------------------------
    def score_all(self, batch: Batch) -> Tensor:
        """Scores of items 1..N for every user in the batch. -> [B, N]."""
        raise NotImplementedError

    def observe(self, inputs: list[np.ndarray]) -> None:
        """The interactions visible at this phase (training parts, or + validation for test)."""

    def item_representation(self) -> Tensor | None:
        """[N, D] vectors of items 1..N used for diversity (ILD); None if the model has none."""
        return None

    @property
    def device(self) -> torch.device:
        p = next(self.parameters(), None)
        return p.device if p is not None else torch.device("cpu")
