"""The model contract every recommender implements.

Training calls ``loss(batch)``; the evaluator, benchmark and server call
``score_all(batch) -> [B, N]`` (column j scores item j + 1; padding id 0 is never scored).
Models whose scores are inner products also say so: ``item_side()`` gives the item matrix
(and bias) and ``query_vector(batch)`` the users' half, ``score_all = q W^T + b``; an
approximate index (:mod:`fave.serving.ann`) searches that matrix.
A model never reads files: what it may know about other users' interactions reaches it
through ``observe(inputs)``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from fave.data.batching import Batch
from fave.errors import FaveError
from fave.models.catalog import AUTO, resolve_config
from fave.models.losses import LOSSES, NEGATIVES_PER, SAMPLERS, next_item_ce, popularity_log_q


@dataclass
class LossOutput:
    """The loss to minimise and its named parts (floats, for the log)."""

    loss: Tensor
    parts: dict[str, float] = field(default_factory=dict)


@dataclass(frozen=True)
class ItemSide:
    """The item half of inner-product scores: ``score_all(batch) = query_vector(batch) @ weight.T + bias``.

    weight [N, D] (row j is item j + 1), bias [N] or None.
    """

    weight: Tensor
    bias: Tensor | None = None


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
    #: True when ``score_all`` draws random numbers (sampling from noise): its draws run in one
    #: sequence over the evaluation's chunks, so a torchrun evaluation cannot split them over ranks
    random_scores: ClassVar[bool] = False

    def __init__(self, config: Any, num_items: int) -> None:
        super().__init__()
        self.config = config
        self.num_items = num_items
        #: log lines about choices made for this catalog (``auto`` keys, :mod:`fave.models.catalog`)
        self.notes: list[str] = resolve_config(config, num_items)

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

    def item_side(self) -> ItemSide | None:
        """The items' half of the scores when they are inner products with :meth:`query_vector`;
        None for a model scored otherwise (a distance, a mix of terms, counts): no index can search it."""
        return None

    def query_vector(self, batch: Batch) -> Tensor:
        """[B, D]: the users' half of inner-product scores (models whose :meth:`item_side` is not None).
        Random draws, if any, are the ones ``score_all`` makes, in the same order."""
        raise NotImplementedError(f"{type(self).__name__} does not score items by an inner product")

    @property
    def device(self) -> torch.device:
        p = next(self.parameters(), None)
        return p.device if p is not None else torch.device("cpu")


def at_targets(batch: Batch, *states: Tensor) -> tuple[Tensor, ...]:
    """The per-position ``states`` [B, L, ...] that predict a target, then those targets.

    Parallel layout (``batch.targets``): every non-padding position -> ([P, ...], ..., [P]);
    prefix layout: the last position -> ([B, ...], ..., ``batch.target`` [B]).
    """
    if batch.targets is not None:
        valid = batch.targets > 0
        return (*(s[valid] for s in states), batch.targets[valid])
    return (*(s[:, -1] for s in states), batch.target)


@dataclass
class SoftmaxConfig:
    """How a tied-embedding model's next-item cross-entropy covers the catalog (:mod:`fave.models.losses`)."""

    # full softmax | sampled (negatives shared by the batch or drawn per position, logQ-corrected) | chunked (exact);
    # auto: full up to fave.models.catalog.LARGE_CATALOG items, sampled above
    loss: str = AUTO
    negatives: int = 256  # sampled: negatives per batch (or per position)
    sampler: str = "uniform"  # sampled: uniform | popularity (training counts)
    negatives_per: str = "batch"  # sampled: batch (one draw shared by the batch) | position (a draw per position)
    ce_chunk: int = 4096  # chunked: rows of [rows, N] logits held at a time


class TiedEmbeddingModel(SeqRecModel):
    """A history encoder whose states score items against its own input embeddings.

    Subclasses define ``item_emb`` (``nn.Embedding(num_items + 1, D, padding_idx=0)``) and
    ``encode(history [B, L]) -> [B, L, D]`` (position l has seen items <= l). Training is
    softmax cross-entropy of the next item at the positions :func:`at_targets` picks (full,
    sampled or chunked, when the config is a :class:`SoftmaxConfig`); scoring reads the last position.
    """

    item_emb: nn.Embedding
    _log_q: Tensor | None = None

    def __init__(self, config: Any, num_items: int) -> None:
        super().__init__(config, num_items)
        if isinstance(config, SoftmaxConfig):
            for name, allowed in (("loss", (AUTO, *LOSSES)), ("sampler", SAMPLERS), ("negatives_per", NEGATIVES_PER)):
                if getattr(config, name) not in allowed:
                    raise FaveError(f"params.{name}={getattr(config, name)!r}; allowed: {', '.join(allowed)}")
            if config.negatives < 1 or config.ce_chunk < 1:
                raise FaveError("params.negatives and params.ce_chunk must be >= 1")

    def observe(self, inputs: list[np.ndarray]) -> None:
        """The popularity sampler's log Q from the visible interactions (only when it is used)."""
        if getattr(self.config, "loss", "full") == "sampled" and self.config.sampler == "popularity" and inputs:
            flat = np.concatenate([np.asarray(s, dtype=np.int64) for s in inputs])
            counts = torch.as_tensor(np.bincount(flat, minlength=self.num_items + 1)[1:])
            self._log_q = popularity_log_q(counts).to(self.device)

    def encode(self, history: Tensor) -> Tensor:
        raise NotImplementedError

    def _logits(self, h: Tensor) -> Tensor:
        return h @ self.item_emb.weight[1:].T  # [*, N]

    def loss(self, batch: Batch) -> LossOutput:
        h, target = at_targets(batch, self.encode(batch.history))
        c = self.config
        kind = getattr(c, "loss", "full")
        if kind == "full":
            loss = F.cross_entropy(self._logits(h), target - 1)
        else:
            log_q = self._log_q if c.sampler == "popularity" else None
            loss = next_item_ce(
                h, self.item_emb.weight[1:], target, kind, c.negatives, log_q, c.ce_chunk, c.negatives_per
            )
        return LossOutput(loss, {"ce": float(loss.detach())})

    def query_vector(self, batch: Batch) -> Tensor:
        return self.encode(batch.history)[:, -1]

    def score_all(self, batch: Batch) -> Tensor:
        return self._logits(self.query_vector(batch))

    def item_representation(self) -> Tensor:
        return self.item_emb.weight[1:].detach()

    def item_side(self) -> ItemSide:
        return ItemSide(self.item_emb.weight[1:])
