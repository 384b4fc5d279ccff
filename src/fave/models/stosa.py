"""STOSA (Fan et al., WWW 2022): stochastic self-attention for sequential recommendation.

Every item is a diagonal Gaussian: a mean embedding and a covariance embedding made positive
with ``ELU + 1``. Attention weights come from the negative squared 2-Wasserstein distance
between stochastic queries and keys (causal); the mean context is ``P @ V_mean`` and the
covariance context ``P**2 @ V_cov`` (the covariance of a weighted sum of independent
Gaussians). The next item is scored by the negative distance between the sequence's
stochastic output and each item's stochastic embedding.

Deviations from the original, on purpose:
- Trained with full-softmax cross-entropy over the ``-W2^2`` scores at every position (the
  original: BPR with one sampled negative per position). The original's positive-vs-negative
  regulariser ``relu(d(seq, pos) - d(pos, neg))`` is kept (``pvn_weight``), with one
  uniformly sampled negative per position.
- The public code's encoder loop assigns each layer's mean output to a misspelt variable,
  so the mean stream skips every layer; here both streams go through every layer, as the
  paper describes.
- Positions are right-aligned (the shared ``PositionEmbedding``), which is what the
  original's fixed-length left padding amounts to.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from fave.data.batching import Batch
from fave.models.base import LossOutput, SeqRecModel, at_targets
from fave.models.blocks import PositionEmbedding, attention_mask, init_weights


@dataclass
class STOSAConfig:
    # values from the public code's README run (zfan20/STOSA, Beauty)
    hidden: int = 64  # --hidden_size 64
    heads: int = 4  # --num_attention_heads 4
    layers: int = 1  # --num_hidden_layers 1
    dropout: float = 0.3  # --hidden_dropout_prob 0.3
    attn_dropout: float = 0.0  # --attention_probs_dropout_prob 0.0
    pvn_weight: float = 0.005  # --pvn_weight 0.005 (0 = off)
    max_len: int = 50  # original 100; 50 as in the FAVE protocol


def positive(x: Tensor) -> Tensor:
    """ELU + 1 > 0: the original's map from free parameters to diagonal covariances."""
    return F.elu(x) + 1.0


def wasserstein2(mean_1: Tensor, cov_1: Tensor, mean_2: Tensor, cov_2: Tensor) -> Tensor:
    """Squared 2-Wasserstein distance between diagonal Gaussians N(mean, diag(cov)).

    ``W2^2 = |mean_1 - mean_2|^2 + |cov_1^(1/2) - cov_2^(1/2)|^2``. [..., D] x 4 -> [...].
    """
    root_1, root_2 = cov_1.clamp_min(1e-24).sqrt(), cov_2.clamp_min(1e-24).sqrt()
    return (mean_1 - mean_2).pow(2).sum(-1) + (root_1 - root_2).pow(2).sum(-1)


def wasserstein2_pairwise(mean_1: Tensor, cov_1: Tensor, mean_2: Tensor, cov_2: Tensor) -> Tensor:
    """``wasserstein2`` between every row of the first set and every row of the second.

    mean_1, cov_1: [..., M, D]; mean_2, cov_2: [..., K, D] -> [..., M, K], expanded as
    ``|a|^2 + |b|^2 - 2 a.b`` so it costs two matmuls.
    """
    root_1, root_2 = cov_1.clamp_min(1e-24).sqrt(), cov_2.clamp_min(1e-24).sqrt()
    a = torch.cat([mean_1, root_1], dim=-1)
    b = torch.cat([mean_2, root_2], dim=-1)
    sq_1, sq_2 = a.pow(2).sum(-1, keepdim=True), b.pow(2).sum(-1, keepdim=True)
    return sq_1 + sq_2.transpose(-1, -2) - 2.0 * a @ b.transpose(-1, -2)


class WassersteinAttention(nn.Module):
    """Multi-head attention over stochastic embeddings, post-norm as in the original."""

    def __init__(self, hidden: int, heads: int, dropout: float, attn_dropout: float) -> None:
        super().__init__()
        if hidden % heads:
            raise ValueError(f"hidden ({hidden}) must be divisible by heads ({heads})")
        self.heads = heads
        self.mean_qkv = nn.Linear(hidden, 3 * hidden)
        self.cov_qkv = nn.Linear(hidden, 3 * hidden)
        self.mean_out = nn.Linear(hidden, hidden)
        self.cov_out = nn.Linear(hidden, hidden)
        self.attn_drop, self.drop = nn.Dropout(attn_dropout), nn.Dropout(dropout)
        self.norm = nn.LayerNorm(hidden, eps=1e-12)  # one norm for both streams, as the original

    def _split(self, x: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        B, L, D3 = x.shape
        q, k, v = x.view(B, L, 3, self.heads, D3 // (3 * self.heads)).permute(2, 0, 3, 1, 4)
        return q, k, v  # each [B, H, L, Dh]

    def forward(self, mean: Tensor, cov: Tensor, mask: Tensor) -> tuple[Tensor, Tensor]:
        """mean, cov: [B, L, D]; mask: [B, 1, L, L] bool (True = may attend) -> (mean, cov)."""
        B, L, D = mean.shape
        q_m, k_m, v_m = self._split(self.mean_qkv(mean))
        q_c, k_c, v_c = self._split(positive(self.cov_qkv(cov)))
        scores = -wasserstein2_pairwise(q_m, q_c, k_m, k_c) / math.sqrt(D // self.heads)
        p = self.attn_drop(scores.masked_fill(~mask, float("-inf")).softmax(-1))  # [B, H, L, L]
        merge = lambda x: x.transpose(1, 2).reshape(B, L, D)  # noqa: E731
        mean = self.norm(mean + self.drop(self.mean_out(merge(p @ v_m))))
        cov = self.norm(cov + self.drop(self.cov_out(merge(p.pow(2) @ v_c))))
        return mean, cov


class FeedForward(nn.Module):
    """Post-norm ELU feed-forward block (the original's ``DistIntermediate``)."""

    def __init__(self, hidden: int, dropout: float) -> None:
        super().__init__()
        self.net = nn.Sequential(nn.Linear(hidden, 4 * hidden), nn.ELU(), nn.Linear(4 * hidden, hidden))
        self.drop, self.norm = nn.Dropout(dropout), nn.LayerNorm(hidden, eps=1e-12)

    def forward(self, x: Tensor) -> Tensor:
        return self.norm(x + self.drop(self.net(x)))


class STOSALayer(nn.Module):
    def __init__(self, c: STOSAConfig) -> None:
        super().__init__()
        self.attention = WassersteinAttention(c.hidden, c.heads, c.dropout, c.attn_dropout)
        self.mean_ffn = FeedForward(c.hidden, c.dropout)
        self.cov_ffn = FeedForward(c.hidden, c.dropout)

    def forward(self, mean: Tensor, cov: Tensor, mask: Tensor) -> tuple[Tensor, Tensor]:
        mean, cov = self.attention(mean, cov, mask)
        return self.mean_ffn(mean), positive(self.cov_ffn(cov))


class STOSA(SeqRecModel):
    Config = STOSAConfig
    default_layout = "parallel"

    def __init__(self, config: STOSAConfig, num_items: int) -> None:
        super().__init__(config, num_items)
        c = config
        self.item_mean = nn.Embedding(num_items + 1, c.hidden, padding_idx=0)
        self.item_cov = nn.Embedding(num_items + 1, c.hidden, padding_idx=0)
        self.pos_mean = PositionEmbedding(c.max_len, c.hidden)
        self.pos_cov = PositionEmbedding(c.max_len, c.hidden)
        self.emb_norm = nn.LayerNorm(c.hidden, eps=1e-12)
        self.emb_drop = nn.Dropout(c.dropout)
        self.layers = nn.ModuleList(STOSALayer(c) for _ in range(c.layers))
        init_weights(self)

    def encode(self, history: Tensor) -> tuple[Tensor, Tensor]:
        """history [B, L] -> stochastic outputs (mean [B, L, D], cov [B, L, D] > 0), causal."""
        L = history.shape[1]
        mean = F.elu(self.emb_drop(self.emb_norm(self.item_mean(history) + self.pos_mean(L))))
        cov = positive(self.emb_drop(self.emb_norm(self.item_cov(history) + self.pos_cov(L))))
        mask = attention_mask(history, causal=True)
        for layer in self.layers:
            mean, cov = layer(mean, cov, mask)
        return mean, cov

    def item_gaussians(self, items: Tensor | None = None) -> tuple[Tensor, Tensor]:
        """(mean, cov) of ``items`` (any shape), or of all items 1..N ([N, D] each)."""
        if items is None:
            return self.item_mean.weight[1:], positive(self.item_cov.weight[1:])
        return self.item_mean(items), positive(self.item_cov(items))

    def _logits(self, mean: Tensor, cov: Tensor) -> Tensor:
        """[P, D] x 2 -> [P, N] scores = -W2^2 to every item."""
        return -wasserstein2_pairwise(mean, cov, *self.item_gaussians())

    def loss(self, batch: Batch) -> LossOutput:
        mean, cov, target = at_targets(batch, *self.encode(batch.history))
        ce = F.cross_entropy(self._logits(mean, cov), target - 1)
        loss, parts = ce, {"ce": float(ce.detach())}
        if self.config.pvn_weight > 0:
            negative = torch.randint(1, self.num_items + 1, target.shape, device=target.device)
            pos_mean, pos_cov = self.item_gaussians(target)
            pos_vs_neg = wasserstein2(pos_mean, pos_cov, *self.item_gaussians(negative))
            pvn = F.relu(wasserstein2(mean, cov, pos_mean, pos_cov) - pos_vs_neg).mean()
            loss = loss + self.config.pvn_weight * pvn
            parts["pvn"] = float(pvn.detach())
        return LossOutput(loss, parts)

    def score_all(self, batch: Batch) -> Tensor:
        mean, cov = self.encode(batch.history)
        return self._logits(mean[:, -1], cov[:, -1])

    def item_representation(self) -> Tensor:
        return self.item_mean.weight[1:].detach()
