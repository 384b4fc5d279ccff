"""DreamRec (Yang et al., NeurIPS 2023): guided diffusion that generates the oracle next item.

A SASRec-like causal encoder turns the history into guidance ``h``; an MLP denoiser on
``[x_k, h, step_emb(k)]`` predicts ``x_0``, the target item's embedding (DDPM with
x0-prediction and an MSE loss, eq. 9 of the paper). Classifier-free guidance: during
training ``h`` is replaced by a learned null vector with probability ``cond_drop``; at
inference ``x0_hat = (1 + w) f(x_k, h, k) - w f(x_k, null, k)``. Items are scored by
``x0_hat . E^T`` with the same item embeddings ``E`` that feed the encoder.

Step convention (DDPM, not the flow time of ``fave.flow.paths``): step ``k = 0`` is the least
noisy, ``k = T - 1`` the noisiest; ``x_k = sqrt(abar_k) x_0 + sqrt(1 - abar_k) eps``.

Deviations from the original, on purpose:
- ``T = 100`` steps by default (public code: 200; its README runs use 500 to 2000), and the
  sampler may visit fewer steps (``sample_steps``): a strided DDPM posterior between the
  visited steps, which is the exact ancestral sampler when all steps are visited.
- Linear betas defined for 1000 steps (DDPM: 1e-4 to 0.02) and rescaled by 1000 / T, so the
  chain ends near N(0, I) for any T. Unscaled 1e-4..0.02 over 100 steps ends at
  ``abar ~ 0.37``, far from the N(0, I) the sampler starts from.
- Parallel layout: every position of the causal encoder gives one (h, target) pair, each
  with its own step and condition drop (the original: one prefix per sample).
- Cross-entropy on ``x0_hat . E^T`` (``ce_weight``; 0 = faithful, the packaged recipe uses 1)
  to keep the jointly learned item embeddings apart (see below).

Checked against the paper and the public code (issue 16): the guidance encoder (causal,
last position, LayerNorm-ed), the denoiser input ``[x_k, h, step_emb(k)]``, x0 prediction
with MSE, the DDPM posterior step, classifier-free guidance (null vector drawn N(0, 1),
dropped with probability ``cond_drop``; ``(1 + w) f(h) - w f(null)``) and inner-product
scoring with the jointly learned item table all match. The faithful model (``ce_weight`` 0,
``emb_std`` 1, ``w`` 2) fails on ML-100k for a measured reason, not a code error
(``experiments/dreamrec-steps.yaml``, results/ml-100k-dreamrec-steps.md, validation, seed 0):
- The MSE target ``x_0 = E[target]`` is the learned table itself (not detached, as in the
  public code), so the loss falls fastest by shrinking the table: more Adam updates make it
  worse, not better (38 instead of 4 steps per epoch: valid N@20 1.17% against 1.55%; at lr
  5e-3 the training MSE reaches 0.0003 and validation 0.45%). Frequent items shrink most, an
  anti-popularity bias of the inner-product score (results/dreamrec-diagnosis.md).
- With few updates the N(0, 1) table stays random (mean pairwise cosine 0.000), and a random
  64-d table cannot even express popularity through an inner product.
The packaged recipe (configs/dreamrec.yaml, chosen on validation) therefore adds a
cross-entropy on ``x0_hat . E^T`` (``ce_weight`` 1), which keeps the table discriminative,
starts the table at ``emb_std`` 0.1 so that it can move, and samples without guidance
(``w`` 0: on the CE-trained weights w = 2 scores valid H@20 14.95 against 18.24 at w = 0,
results/dreamrec-ce1-guidance.md). ``--set ce_weight=0 --set emb_std=1 --set guidance=2``
gives the faithful model back.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from fave.data.batching import Batch
from fave.errors import FaveError
from fave.flow.ddpm import DDPMSchedule, posterior, q_sample
from fave.models.base import ItemSide, LossOutput, SeqRecModel, at_targets
from fave.models.blocks import PositionEmbedding, TransformerEncoder, init_weights, sinusoidal


@dataclass
class DreamRecConfig:
    # values from the public code (YangZhengyi98/DreamRec) unless said otherwise
    hidden: int = 64  # --hidden_factor 64
    heads: int = 1  # Tenc(num_heads=1)
    layers: int = 1  # one attention block
    dropout: float = 0.1  # --dropout_rate 0.1
    steps: int = 100  # T; public code 200 (README 500-2000), reduced for CPU
    sample_steps: int = 0  # denoiser calls at inference; 0 = all T steps
    beta_start: float = 1e-4  # --beta_start, for 1000 steps (rescaled by 1000 / T)
    beta_end: float = 0.02  # --beta_end, for 1000 steps (rescaled by 1000 / T)
    guidance: float = 2.0  # --w 2
    cond_drop: float = 0.1  # --p 0.1
    denoiser: str = "mlp1"  # --diffuser_type mlp1 (one linear layer) | mlp2 (two, GELU)
    ce_weight: float = 0.0  # not in the original
    emb_std: float = 1.0  # item-embedding init std; public code N(0, 1)
    max_len: int = 50


def linear_alpha_bars(steps: int, beta_start: float, beta_end: float) -> Tensor:
    """abar_k = prod_{j<=k} (1 - beta_j) for linear betas set for 1000 steps. -> [T] (float32).

    Step k here is step k + 1 of :class:`DDPMSchedule`, whose index 0 is the clean sample.
    """
    scale = 1000.0 / steps
    return DDPMSchedule(steps, beta_start * scale, min(beta_end * scale, 0.999)).abar[1:].float()


class Denoiser(nn.Module):
    """f(x_k, h, k) -> x0_hat: an MLP on the concatenation [x_k, h, step_emb(k)]."""

    def __init__(self, hidden: int, kind: str) -> None:
        super().__init__()
        self.hidden = hidden
        self.step_mlp = nn.Sequential(nn.Linear(hidden, 2 * hidden), nn.GELU(), nn.Linear(2 * hidden, hidden))
        if kind == "mlp1":
            self.net = nn.Sequential(nn.Linear(3 * hidden, hidden))
        elif kind == "mlp2":
            self.net = nn.Sequential(nn.Linear(3 * hidden, 2 * hidden), nn.GELU(), nn.Linear(2 * hidden, hidden))
        else:
            raise FaveError(f"params.denoiser={kind!r}; set it to 'mlp1' or 'mlp2'")

    def forward(self, x_k: Tensor, h: Tensor, k: Tensor) -> Tensor:
        """x_k, h: [P, D]; k: [P] integer steps -> x0_hat [P, D]."""
        steps, index = torch.unique(k, return_inverse=True)  # the step MLP once per distinct step
        step_emb = self.step_mlp(sinusoidal(steps, self.hidden))[index]
        return self.net(torch.cat([x_k, h, step_emb], dim=-1))


class DreamRec(SeqRecModel):
    Config = DreamRecConfig
    default_layout = "parallel"
    random_scores = True  # ancestral sampling from noise

    def __init__(self, config: DreamRecConfig, num_items: int) -> None:
        super().__init__(config, num_items)
        c = config
        if not 0 <= c.sample_steps <= c.steps:
            raise FaveError(
                f"params.sample_steps={c.sample_steps}; set it between 0 (all steps) and params.steps={c.steps}"
            )
        self.item_emb = nn.Embedding(num_items + 1, c.hidden, padding_idx=0)
        self.pos_emb = PositionEmbedding(c.max_len, c.hidden)
        self.emb_drop = nn.Dropout(c.dropout)
        self.encoder = TransformerEncoder(c.hidden, c.heads, c.layers, c.dropout)
        self.null = nn.Parameter(torch.zeros(c.hidden))  # the unconditional guidance vector
        self.denoiser = Denoiser(c.hidden, c.denoiser)
        init_weights(self)
        nn.init.normal_(self.item_emb.weight, 0.0, c.emb_std)  # public code: N(0, 1), targets at unit scale
        nn.init.normal_(self.null, 0.0, 1.0)
        self.register_buffer("alpha_bars", linear_alpha_bars(c.steps, c.beta_start, c.beta_end), persistent=False)

    def encode(self, history: Tensor) -> Tensor:
        """history [B, L] -> guidance h [B, L, D] (position l has seen items <= l)."""
        x = self.item_emb(history) + self.pos_emb(history.shape[1])
        x = self.emb_drop(x) * (history > 0).unsqueeze(-1)
        out, _ = self.encoder(x, history, causal=True)
        return out

    def loss(self, batch: Batch) -> LossOutput:
        h, target = at_targets(batch, self.encode(batch.history))
        x_0 = self.item_emb(target)  # [P, D]
        k = torch.randint(0, self.config.steps, target.shape, device=h.device)
        x_k = q_sample(self.alpha_bars[k], x_0, torch.randn_like(x_0))
        dropped = torch.rand(target.shape, device=h.device) < self.config.cond_drop
        h = torch.where(dropped.unsqueeze(-1), self.null.expand_as(h), h)
        x0_hat = self.denoiser(x_k, h, k)
        mse = F.mse_loss(x0_hat, x_0)
        loss, parts = mse, {"mse": float(mse.detach())}
        if self.config.ce_weight > 0:
            ce = F.cross_entropy(x0_hat @ self.item_emb.weight[1:].T, target - 1)
            loss = loss + self.config.ce_weight * ce
            parts["ce"] = float(ce.detach())
        return LossOutput(loss, parts)

    def sample_timesteps(self) -> list[int]:
        """Steps the sampler visits, noisiest first: all T, or ``sample_steps`` spread evenly."""
        T, S = self.config.steps, self.config.sample_steps or self.config.steps
        return sorted({round(i * (T - 1) / max(1, S - 1)) for i in range(S)}, reverse=True)

    @torch.no_grad()
    def sample(self, h: Tensor, generator: torch.Generator | None = None) -> Tensor:
        """Guided ancestral sampling from N(0, I). h [B, D] -> x0_hat [B, D].

        One denoiser call per visited step: the conditional and unconditional predictions
        share a call (the batch is doubled).
        """
        B, D = h.shape
        w = self.config.guidance
        x = torch.randn(B, D, generator=generator, device=h.device, dtype=h.dtype)
        h2 = torch.cat([h, self.null.expand(B, D)])
        steps = self.sample_timesteps()
        for k, s in zip(steps, [*steps[1:], None], strict=True):
            f = self.denoiser(torch.cat([x, x]), h2, torch.full((2 * B,), k, device=h.device))
            x0_hat = (1 + w) * f[:B] - w * f[B:]
            if s is None:  # step 0 visited: x0_hat is the sample
                break
            # DDPM posterior q(x_s | x_k, x0) for a strided step s < k; s = k - 1 everywhere is
            # the plain ancestral sampler
            coef_0, coef_k, var = posterior(self.alpha_bars[k], self.alpha_bars[s])
            noise = torch.randn(B, D, generator=generator, device=h.device, dtype=h.dtype)
            x = coef_0 * x0_hat + coef_k * x + var.sqrt() * noise
        return x0_hat

    def query_vector(self, batch: Batch, generator: torch.Generator | None = None) -> Tensor:
        """The sampled x0_hat [B, D] after the history's guidance."""
        return self.sample(self.encode(batch.history)[:, -1], generator)

    def score_all(self, batch: Batch, generator: torch.Generator | None = None) -> Tensor:
        return self.query_vector(batch, generator) @ self.item_emb.weight[1:].T

    def item_representation(self) -> Tensor:
        return self.item_emb.weight[1:].detach()

    def item_side(self) -> ItemSide:
        return ItemSide(self.item_emb.weight[1:])
