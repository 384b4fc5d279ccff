"""SASRec (Kang & McAuley, ICDM 2018): causal self-attention, next item at every position.

Trained here with full softmax cross-entropy over all items (as in recent re-evaluations,
e.g. Klenitskiy & Vasilev, RecSys 2023), which the original's sampled BCE approximates.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch.nn.functional as F
from torch import Tensor, nn

from fave.data.batching import Batch
from fave.models.base import LossOutput, SeqRecModel
from fave.models.blocks import PositionEmbedding, TransformerEncoder, init_weights


@dataclass
class SASRecConfig:
    hidden: int = 64  # original paper: d = 50 (ML-1m) / 64 in later re-implementations
    heads: int = 2
    layers: int = 2  # original: 2 blocks
    dropout: float = 0.2  # original: 0.2 (ML-1m), 0.5 (sparse data)
    max_len: int = 50


class SASRec(SeqRecModel):
    Config = SASRecConfig
    default_layout = "parallel"

    def __init__(self, config: SASRecConfig, num_items: int) -> None:
        super().__init__(config, num_items)
        c = config
        self.item_emb = nn.Embedding(num_items + 1, c.hidden, padding_idx=0)
        self.pos_emb = PositionEmbedding(c.max_len, c.hidden)
        self.emb_drop = nn.Dropout(c.dropout)
        self.encoder = TransformerEncoder(c.hidden, c.heads, c.layers, c.dropout)
        init_weights(self)

    def encode(self, history: Tensor) -> Tensor:
        """history [B, L] -> hidden states [B, L, D] (position l has seen items <= l)."""
        x = self.item_emb(history) * self.config.hidden**0.5 + self.pos_emb(history.shape[1])
        x = self.emb_drop(x) * (history > 0).unsqueeze(-1)
        out, _ = self.encoder(x, history, causal=True)
        return out

    def _logits(self, h: Tensor) -> Tensor:
        return h @ self.item_emb.weight[1:].T  # [*, N]

    def loss(self, batch: Batch) -> LossOutput:
        h = self.encode(batch.history)
        if batch.targets is not None:  # parallel layout: every non-padding position
            valid = batch.targets > 0
            logits, target = self._logits(h[valid]), batch.targets[valid]
        else:  # prefix layout
            logits, target = self._logits(h[:, -1]), batch.target
        loss = F.cross_entropy(logits, target - 1)
        return LossOutput(loss, {"ce": float(loss.detach())})

    def score_all(self, batch: Batch) -> Tensor:
        return self._logits(self.encode(batch.history)[:, -1])

    def item_representation(self) -> Tensor:
        return self.item_emb.weight[1:].detach()
