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

Time fed to the backbone: DDPM step n is shown as ``t = 1 - n / T`` in [0, 1), which keeps
the project's convention (t = 0 is the prior, pure noise; t -> 1 is the target) and reuses
the backbone's sinusoidal time embedding (times scaled by ``time_scale`` = 999).

Note on naming: DDPM's ``x_0`` is the clean target (FAVE's ``x_1``); here ``x0`` follows
DDPM, the module's only frame of reference.
"""

from __future__ import annotations

from dataclasses import dataclass, fields

import torch
from torch import Tensor

from fave.data.batching import Batch
from fave.errors import FaveError
from fave.models.base import LossOutput, SeqRecModel
from fave.models.blocks import init_weights
from fave.models.flow_backbone import BackboneConfig, FlowBackbone, history_encoder
from fave.models.fmrec import RECIPES, check_choice, target_ids


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


class DDPMSchedule:
    """Betas and cumulative products of a linear schedule; posterior steps on any sub-chain.

    Index n = 0..T with ``abar[0] = 1`` (clean data) and ``abar[T]`` ~ 0 (pure noise).
    """

    def __init__(self, steps: int, beta_start: float, beta_end: float) -> None:
        self.T = steps
        betas = torch.linspace(beta_start, beta_end, steps, dtype=torch.float64)
        self.abar = torch.cat([torch.ones(1, dtype=torch.float64), torch.cumprod(1 - betas, 0)])

    def q_sample(self, x0: Tensor, n: Tensor, eps: Tensor) -> Tensor:
        """``x_n = sqrt(abar_n) x0 + sqrt(1 - abar_n) eps``; n [*] ints, x0 [*, D]."""
        a = self.abar.to(x0.device)[n].to(x0.dtype).unsqueeze(-1)
        return a.sqrt() * x0 + (1 - a).sqrt() * eps

    def chain(self, sample_steps: int) -> list[int]:
        """Evenly spaced steps from T down to 1 (all of them when sample_steps = T)."""
        if not 1 <= sample_steps <= self.T:
            raise FaveError(f"params.sample_steps={sample_steps}; must be in 1..{self.T}")
        return [int(n) for n in torch.linspace(self.T, 1, sample_steps).round().long()]

    def posterior(self, n: int, prev: int) -> tuple[float, float, float]:
        """q(x_prev | x_n, x0) = N(c0 x0 + cn x_n, var) on the (respaced) chain n -> prev."""
        a_n, a_p = float(self.abar[n]), float(self.abar[prev])
        beta = 1 - a_n / a_p
        c0 = a_p**0.5 * beta / (1 - a_n)
        cn = (1 - beta) ** 0.5 * (1 - a_p) / (1 - a_n)
        return c0, cn, beta * (1 - a_p) / (1 - a_n)


class DiffuRec(SeqRecModel):
    Config = DiffuRecConfig

    def __init__(self, config: DiffuRecConfig, num_items: int) -> None:
        super().__init__(config, num_items)
        c = config
        check_choice("recipe", c.recipe, RECIPES)
        check_choice("norm", c.norm, ("layer", "rms"))
        backbone = {f.name: getattr(c, f.name) for f in fields(BackboneConfig)}
        backbone["decoder_block"] = min(c.decoder_block, c.layers)  # no decoder: any block will do
        self.net = FlowBackbone(BackboneConfig(**backbone), num_items, causal=c.recipe == "parallel")
        self.net.decoder = None  # DiffuRec has no history decoder (and no parameters for it)
        if c.norm == "layer":
            self.net.encoder = history_encoder(self.net.config, norm="layer")
            init_weights(self.net.encoder)
        self.schedule = DDPMSchedule(c.diffusion_steps, c.beta_start, c.beta_end)
        self.schedule.chain(c.sample_steps)  # validates sample_steps
        self.default_layout = c.recipe

    def time(self, n: Tensor) -> Tensor:
        """DDPM step n (1..T) -> backbone time ``t = 1 - n / T``."""
        return 1 - n.float() / self.config.diffusion_steps

    def predict_x0(self, history: Tensor, x_n: Tensor, n: Tensor) -> Tensor:
        """x0_hat at every position [B, L, D] from x_n [B, D] or [B, L, D], n [B] or [B, L]."""
        t = self.time(n)
        return self.net(history, x_n, t, torch.ones_like(t))[0]

    def loss(self, batch: Batch) -> LossOutput:
        target, valid, per_pos = target_ids(batch)
        x0 = self.net.item_emb(target)  # [B, L, D] or [B, D]
        n = torch.randint(1, self.config.diffusion_steps + 1, tuple(target.shape), device=x0.device)
        x_n = self.schedule.q_sample(x0, n, torch.randn_like(x0))
        x0_hat = self.predict_x0(batch.history, x_n, n)
        x0_hat = x0_hat if per_pos else x0_hat[:, -1]
        loss = self.net.target_ce(x0_hat[valid], target[valid])
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

    def score_all(self, batch: Batch) -> Tensor:
        return self.generate(batch.history) @ self.net.items.T

    def item_representation(self) -> Tensor:
        return self.net.items.detach()
