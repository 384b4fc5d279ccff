"""DiffuRec (Li et al., TOIS 2023): DDPM over the target item embedding.

Forward process over ``T = 32`` steps with truncated-linear betas
``linspace(0.013125, 0.635, 32)`` (FAVE-NOTES sec. 6):
``x_n = sqrt(abar_n) x_0 + sqrt(1 - abar_n) eps``, n = 1..T, ``x_0 = E[target]``. The
approximator is the one FAVE and FMRec share (:class:`FlowBackbone`: the history plus the
stochastically modulated noisy state, single time embedding) with pre-LayerNorm blocks and
no history decoder; it predicts x_0 and is trained with cross-entropy of ``x0_hat . E^T``
only. Inference: ancestral sampling from ``x_T ~ N(0, I)``; ``sample_steps`` < T uses a
respaced chain (evenly spaced steps, betas recomputed from abar), so the network is called
exactly ``sample_steps`` times. The last step's posterior mean is the last x_0 prediction.
The schedule and the posterior step are :mod:`fave.flow.ddpm`'s.

Time fed to the backbone: DDPM step n is shown as ``t = 1 - n / T`` in [0, 1), which keeps
the project's convention (t = 0 is the prior, pure noise; t -> 1 is the target) and reuses
the backbone's sinusoidal time embedding (times scaled by ``time_scale`` = 999).

Note on naming: DDPM's ``x_0`` is the clean target (FAVE's ``x_1``); here ``x0`` follows
DDPM, the module's only frame of reference.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor, nn

from fave.data.batching import Batch
from fave.flow.ddpm import DDPMSchedule
from fave.models.base import LossOutput
from fave.models.blocks import init_weights
from fave.models.flow_backbone import BackboneConfig
from fave.models.flow_base import RECIPES, FlowSeqModel, Targets

__all__ = ["DDPMSchedule", "DiffuRec", "DiffuRecConfig"]


@dataclass
class DiffuRecConfig(BackboneConfig):
    dual_time: bool = False  # one DDPM step index, TimeEmb(t)
    max_len: int = 50  # paper: 50
    recipe: str = "parallel"  # parallel (fast, causal) | prefix (paper: one sample per prefix)
    norm: str = "layer"  # FAVE-NOTES sec. 6: pre-LN blocks (layer) | rms (FAVE's blocks)
    diffusion_steps: int = 32  # FAVE-NOTES sec. 6: T = 32
    beta_start: float = 0.013125  # FAVE-NOTES sec. 6: truncated-linear schedule
    beta_end: float = 0.635
    sample_steps: int = 32  # FAVE-NOTES sec. 6: 32-step ancestral sampling


class DiffuRec(FlowSeqModel):
    Config = DiffuRecConfig
    CHOICES = {"recipe": RECIPES, "norm": ("layer", "rms")}

    def __init__(self, config: DiffuRecConfig, num_items: int) -> None:
        super().__init__(config, num_items, norm=config.norm, decoder=False)  # no history decoder
        if config.norm == "layer":
            redraw(self.net.encoder)
        self.schedule = DDPMSchedule(config.diffusion_steps, config.beta_start, config.beta_end)
        self.schedule.chain(config.sample_steps)  # validates sample_steps

    def time(self, n: Tensor) -> Tensor:
        """DDPM step n (1..T) -> backbone time ``t = 1 - n / T``."""
        return 1 - n.float() / self.config.diffusion_steps

    def predict_x0(self, history: Tensor, x_n: Tensor, n: Tensor) -> Tensor:
        """x0_hat at every position [B, L, D] from x_n [B, D] or [B, L, D], n [B] or [B, L]."""
        t = self.time(n)
        return self.net(history, x_n, t, torch.ones_like(t))[0]

    def loss(self, batch: Batch) -> LossOutput:
        target = Targets.of(batch)
        x0 = self.net.item_emb(target.ids)  # [B, L, D] or [B, D]
        n = torch.randint(1, self.config.diffusion_steps + 1, tuple(target.ids.shape), device=x0.device)
        x_n = self.schedule.q_sample(x0, n, torch.randn_like(x0))
        loss = self.item_ce(target.pick(self.predict_x0(batch.history, x_n, n)), target)
        return LossOutput(loss, {"ce": float(loss.detach())})

    # -- inference -------------------------------------------------------------------
    def generate(self, history: Tensor) -> Tensor:
        """Ancestral sampling with ``sample_steps`` network calls: x0_hat [B, D]."""
        B = history.shape[0]
        x = torch.randn(B, self.config.hidden, device=history.device)
        chain = self.schedule.chain(self.config.sample_steps)
        for i, n in enumerate(chain):
            prev = chain[i + 1] if i + 1 < len(chain) else 0
            x0_hat = self.predict_x0(history, x, torch.full((B,), n, device=history.device))[:, -1]
            c0, cn, var = self.schedule.posterior(n, prev)
            x = c0 * x0_hat + cn * x
            if prev > 0:
                x = x + var**0.5 * torch.randn_like(x)
        return x


def redraw(module: nn.Module) -> None:
    """Draw ``module``'s weights again, as building and initialising it would (the Linear layers'
    default draws, then :func:`init_weights`). DiffuRec used to build the encoder twice (RMSNorm
    blocks, then the LayerNorm ones); drawing twice keeps its initial weights for a given seed,
    and so its results, bit for bit those of earlier versions."""
    for m in module.modules():
        if isinstance(m, nn.Linear):
            m.reset_parameters()
    init_weights(module)
