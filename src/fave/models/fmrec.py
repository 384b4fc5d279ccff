"""FMRec (Liu et al., 2025, arXiv 2505.16298): flow matching from Gaussian noise to the target.

Rectified flow on the linear path ``x_t = (1 - t) x_0 + t x_1``, ``x_0 ~ N(0, I)``,
``x_1 = E[target]``, with the approximator shared with FAVE (:class:`FlowBackbone`, single
time ``TimeEmb(t)``). The network predicts x_1 (FMRec Sec. 4.2: x_1 prediction instead of
a velocity). Loss (FAVE-NOTES sec. 6):

    ``L = ||f(x_t, t) - x_1||^2 + alpha CE(f . E^T, target) + beta L_src``

with ``L_src`` the balanced-MSE history reconstruction of the shared decoder and times from
the heavy-tailed "mode" sampler. Inference: ``sample_steps`` deterministic Euler steps from
Gaussian noise with velocity ``V = f(x_t, t) - x_0`` (:func:`euler_x1`), so the final state
is the mean of the ``sample_steps`` predictions of x_1; it is scored against all items.

Recipes as in FAVE: ``parallel`` (causal encoder, every position its own flow state and
target) or ``prefix`` (the paper's: one sample per prefix, bidirectional encoder, the flow
state broadcast over the history).
"""

from __future__ import annotations

from dataclasses import dataclass, fields

import torch
from torch import Tensor

from fave.data.batching import Batch
from fave.errors import FaveError
from fave.flow.paths import linear_path
from fave.flow.samplers import euler_x1
from fave.flow.time_samplers import mode_times
from fave.models.base import LossOutput, SeqRecModel
from fave.models.flow_backbone import BackboneConfig, FlowBackbone


@dataclass
class FMRecConfig(BackboneConfig):
    dual_time: bool = False  # FMRec: single time, TimeEmb(t)
    max_len: int = 50  # paper (FMRec and FAVE): 50
    recipe: str = "parallel"  # parallel (fast, causal) | prefix (paper: one sample per prefix)
    alpha: float = 0.2  # FAVE-NOTES sec. 6 (FMRec public code): CE weight 0.2
    beta: float = 0.4  # FAVE-NOTES sec. 6 (FMRec public code): reconstruction weight 0.4
    mode_scale: float = 1.0  # SD3 "mode" time sampler, s = 1 (FAVE-NOTES sec. 3/6)
    sample_steps: int = 30  # FMRec paper / FAVE-NOTES sec. 6: 30 Euler steps at inference


RECIPES = ("parallel", "prefix")


def target_ids(batch: Batch) -> tuple[Tensor, Tensor, bool]:
    """-> (target ids [B, L] or [B], mask of real targets, per_position) for either layout."""
    if batch.targets is not None:
        return batch.targets, batch.targets > 0, True
    return batch.target, torch.ones_like(batch.target, dtype=torch.bool), False


def random_real_position(history: Tensor) -> Tensor:
    """One uniformly drawn non-padding position per left-padded row: [B, L] -> [B]."""
    B, L = history.shape
    first = L - (history > 0).sum(1)
    return first + (torch.rand(B, device=history.device) * (L - first)).long().clamp_max(L - 1 - first)


def check_choice(name: str, value: str, allowed: tuple[str, ...]) -> None:
    if value not in allowed:
        raise FaveError(f"params.{name}={value!r}; allowed: {', '.join(allowed)}")


class FMRec(SeqRecModel):
    Config = FMRecConfig

    def __init__(self, config: FMRecConfig, num_items: int) -> None:
        super().__init__(config, num_items)
        check_choice("recipe", config.recipe, RECIPES)
        if config.sample_steps < 1:
            raise FaveError(f"params.sample_steps={config.sample_steps}; must be >= 1")
        if not 1 <= config.decoder_block <= config.layers:
            raise FaveError(f"params.decoder_block={config.decoder_block}; must be in 1..layers ({config.layers})")
        backbone = {f.name: getattr(config, f.name) for f in fields(BackboneConfig)}
        self.net = FlowBackbone(BackboneConfig(**backbone), num_items, causal=config.recipe == "parallel")
        self.default_layout = config.recipe

    def loss(self, batch: Batch) -> LossOutput:
        c = self.config
        target, valid, per_pos = target_ids(batch)
        x_1 = self.net.item_emb(target)  # [B, L, D] or [B, D]
        x_0 = torch.randn_like(x_1)
        t = mode_times(tuple(target.shape), c.mode_scale).to(x_1.device)
        x_t, _ = linear_path(x_0, x_1, t)
        f_all, h_mid = self.net(batch.history, x_t, t, torch.ones_like(t))  # [B, L, D]
        f = f_all if per_pos else f_all[:, -1]
        l_fm = ((f - x_1) ** 2).mean(-1)[valid].mean()
        l_ce = self.net.target_ce(f[valid], target[valid])
        pos = random_real_position(batch.history) if per_pos else None
        l_src = self.net.reconstruction_loss(h_mid, batch.history, pos)
        loss = l_fm + c.alpha * l_ce + c.beta * l_src
        parts = {
            "fm": float(l_fm.detach()),
            "ce": float(l_ce.detach()),
            "src": float(l_src.detach()),
        }
        return LossOutput(loss, parts)

    # -- inference -------------------------------------------------------------------
    def x1_fn(self, history: Tensor):
        """(x_t [B, D], t [B]) -> f(x_t, t) at the last position: the network, once."""
        return lambda x, t: self.net(history, x, t, torch.ones_like(t))[0][:, -1]

    def generate(self, history: Tensor) -> Tensor:
        """``sample_steps`` Euler steps from Gaussian noise: x_1_hat [B, D]."""
        x_0 = torch.randn(history.shape[0], self.config.hidden, device=history.device)
        return euler_x1(self.x1_fn(history), x_0, self.config.sample_steps)

    def score_all(self, batch: Batch) -> Tensor:
        return self.generate(batch.history) @ self.net.items.T

    def item_representation(self) -> Tensor:
        return self.net.items.detach()
