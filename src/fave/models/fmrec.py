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

Recipes as in FAVE (:mod:`fave.models.flow_base`): ``parallel`` (causal encoder, every
position its own flow state and target) or ``prefix`` (the paper's: one sample per prefix,
bidirectional encoder, the flow state broadcast over the history).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from fave.data.batching import Batch
from fave.errors import FaveError
from fave.flow.samplers import euler_x1
from fave.models.base import LossOutput
from fave.models.flow_backbone import BackboneConfig
from fave.models.flow_base import FlowSeqModel


@dataclass
class FMRecConfig(BackboneConfig):
    dual_time: bool = False  # FMRec: single time, TimeEmb(t)
    max_len: int = 50  # paper (FMRec and FAVE): 50
    recipe: str = "parallel"  # parallel (fast, causal) | prefix (paper: one sample per prefix)
    alpha: float = 0.2  # FAVE-NOTES sec. 6 (FMRec public code): CE weight 0.2
    beta: float = 0.4  # FAVE-NOTES sec. 6 (FMRec public code): reconstruction weight 0.4
    mode_scale: float = 1.0  # SD3 "mode" time sampler, s = 1 (FAVE-NOTES sec. 3/6)
    sample_steps: int = 30  # FMRec paper / FAVE-NOTES sec. 6: 30 Euler steps at inference


class FMRec(FlowSeqModel):
    Config = FMRecConfig

    @classmethod
    def check(cls, config: Any) -> None:
        super().check(config)
        if config.sample_steps < 1:
            raise FaveError(f"params.sample_steps={config.sample_steps}; must be >= 1")
        if not 1 <= config.decoder_block <= config.layers:
            raise FaveError(f"params.decoder_block={config.decoder_block}; must be in 1..layers ({config.layers})")

    def loss(self, batch: Batch) -> LossOutput:
        c = self.config
        return self.matching_loss(batch, c.alpha, c.beta, c.mode_scale).named(rec="fm", ce="ce")

    def generate(self, history: Tensor) -> Tensor:
        """``sample_steps`` Euler steps from Gaussian noise: x_1_hat [B, D]."""
        x_0 = torch.randn(history.shape[0], self.config.hidden, device=history.device)
        return euler_x1(self.x1_fn(history), x_0, self.config.sample_steps)
