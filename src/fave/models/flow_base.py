"""What FAVE, FMRec and DiffuRec share: a :class:`FlowBackbone` over the item embeddings, the
two training recipes, the targets of either batch layout, the auxiliary losses and scoring.

Recipes: ``parallel`` encodes each training sequence once with causal attention and gives
every position its own flow state and target; ``prefix`` (the papers') takes one sample per
prefix, a bidirectional encoder and one flow state broadcast over the history.

Each model generates a vector x_1_hat [B, D] for the last position (:meth:`generate`) and
scores it against every item embedding; a model's own file holds its loss and its sampler.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, ClassVar

import torch
from torch import Tensor

from fave.data.batching import Batch
from fave.errors import FaveError
from fave.flow.paths import linear_path
from fave.flow.time_samplers import mode_times
from fave.models.base import ItemSide, LossOutput, SeqRecModel
from fave.models.flow_backbone import FlowBackbone, backbone_config

RECIPES = ("parallel", "prefix")


def check_choices(config: Any, choices: dict[str, tuple[str, ...]]) -> None:
    """A clear error for the first ``params.<name>`` whose value is not one of its choices."""
    for name, allowed in choices.items():
        value = getattr(config, name)
        if str(value) not in allowed:
            raise FaveError(f"params.{name}={value!r}; allowed: {', '.join(allowed)}")


def random_real_position(history: Tensor) -> Tensor:
    """One uniformly drawn non-padding position per left-padded row: [B, L] -> [B]."""
    B, L = history.shape
    first = L - (history > 0).sum(1)
    return first + (torch.rand(B, device=history.device) * (L - first)).long().clamp_max(L - 1 - first)


@dataclass
class Targets:
    """The items a training batch predicts, in either layout.

    ``ids``: [B, L] next item after every position (parallel) or [B] (prefix); ``valid``: the
    same shape, True at real targets; ``per_position``: True for the parallel layout.
    """

    ids: Tensor
    valid: Tensor
    per_position: bool

    @staticmethod
    def of(batch: Batch) -> Targets:
        if batch.targets is not None:
            return Targets(batch.targets, batch.targets > 0, True)
        return Targets(batch.target, torch.ones_like(batch.target, dtype=torch.bool), False)

    def pick(self, states: Tensor) -> Tensor:
        """Network states at every position [B, L, D] -> those that predict ``ids``: [B, L, D] or [B, D]."""
        return states if self.per_position else states[:, -1]


@dataclass
class MatchingLoss:
    """The x_1-matching loss from Gaussian noise (FMRec; FAVE Stage 1): ``loss = rec + alpha ce + beta src``."""

    loss: Tensor
    rec: Tensor  # ||f(x_t, t) - x_1||^2
    ce: Tensor  # cross-entropy of f . E^T against the target
    src: Tensor  # history reconstruction

    def named(self, rec: str, ce: str) -> LossOutput:
        """As the loss to minimise, with ``rec`` and ``ce`` named as the model logs them (and ``src``)."""
        parts = {rec: float(self.rec.detach()), ce: float(self.ce.detach()), "src": float(self.src.detach())}
        return LossOutput(self.loss, parts)


class FlowSeqModel(SeqRecModel):
    """Base of the models over a :class:`FlowBackbone` ``net`` whose output stands for x_1.

    ``config`` is a :class:`BackboneConfig` subclass with a ``recipe``; ``norm`` and ``decoder``
    choose the backbone's parts (the blocks' norm, the history decoder).
    """

    net: FlowBackbone
    random_scores = True  # generation starts from noise (or a random anchor)
    #: the allowed values of a model's string ``params``, checked before anything is built
    CHOICES: ClassVar[dict[str, tuple[str, ...]]] = {"recipe": RECIPES}

    def __init__(self, config: Any, num_items: int, norm: str = "rms", decoder: bool = True) -> None:
        self.check(config)
        super().__init__(config, num_items)
        self.net = FlowBackbone(
            backbone_config(config), num_items, causal=config.recipe == "parallel", norm=norm, decoder=decoder
        )
        self.default_layout = config.recipe

    @classmethod
    def check(cls, config: Any) -> None:
        """A FaveError for a config the model cannot be built from (subclasses add their checks)."""
        check_choices(config, cls.CHOICES)

    # -- losses ----------------------------------------------------------------------
    def item_ce(self, f: Tensor, target: Targets) -> Tensor:
        """Target-side cross-entropy of ``f . E^T`` at the real targets (over all N items, or sampled /
        chunked as ``params.ce_loss`` says); f [B, L, D] or [B, D] as ``target.pick`` gives it."""
        return self.net.target_ce(f[target.valid], target.ids[target.valid])

    def history_loss(self, h_mid: Tensor, history: Tensor, target: Targets) -> Tensor:
        """The decoder's history reconstruction: of the whole history (prefix), or of the prefix
        up to one random real position per sequence (parallel)."""
        pos = random_real_position(history) if target.per_position else None
        return self.net.reconstruction_loss(h_mid, history, pos)

    def matching_loss(self, batch: Batch, alpha: float, beta: float, mode_scale: float) -> MatchingLoss:
        """Linear path from ``x_0 ~ N(0, I)`` to ``x_1 = E[target]`` at "mode" times (drawn on the
        CPU generator), the network asked for x_1 with ``r = 1``: ``||f - x_1||^2 + alpha CE + beta L_src``."""
        target = Targets.of(batch)
        x_1 = self.net.item_emb(target.ids)  # [B, L, D] or [B, D]
        x_0 = torch.randn_like(x_1)
        t = mode_times(tuple(target.ids.shape), mode_scale).to(x_1.device)
        x_t, _ = linear_path(x_0, x_1, t)
        f_all, h_mid = self.net(batch.history, x_t, t, torch.ones_like(t))  # [B, L, D]
        f = target.pick(f_all)
        rec = ((f - x_1) ** 2).mean(-1)[target.valid].mean()
        ce = self.item_ce(f, target)
        src = self.history_loss(h_mid, batch.history, target)
        return MatchingLoss(rec + alpha * ce + beta * src, rec, ce, src)

    # -- inference -------------------------------------------------------------------
    def x1_fn(self, history: Tensor) -> Callable[[Tensor, Tensor], Tensor]:
        """(x_t [B, D], t [B]) -> f(x_t, t, r = 1) at the last position: the network, once."""
        return lambda x, t: self.net(history, x, t, torch.ones_like(t), last_only=True)[0][:, -1]

    def generate(self, history: Tensor) -> Tensor:
        """The recommendation vector x_1_hat [B, D] for the last position."""
        raise NotImplementedError

    def query_vector(self, batch: Batch) -> Tensor:
        return self.generate(batch.history)

    def score_all(self, batch: Batch) -> Tensor:
        return self.query_vector(batch) @ self.net.items.T

    def item_representation(self) -> Tensor:
        return self.net.items.detach()

    def item_side(self) -> ItemSide:
        return ItemSide(self.net.items)
