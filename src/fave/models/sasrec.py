"""SASRec (Kang & McAuley, ICDM 2018): causal self-attention, next item at every position.

Trained here with full softmax cross-entropy over all items (as in recent re-evaluations,
e.g. Klenitskiy & Vasilev, RecSys 2023), which the original's sampled BCE approximates.
"""

from __future__ import annotations

from dataclasses import dataclass

from torch import Tensor, nn

from fave.models.base import SoftmaxConfig, TiedEmbeddingModel
from fave.models.blocks import PositionEmbedding, TransformerEncoder, init_weights


@dataclass
class SASRecConfig(SoftmaxConfig):
    hidden: int = 64  # original paper: d = 50 (ML-1m) / 64 in later re-implementations
    heads: int = 2
    layers: int = 2  # original: 2 blocks
    dropout: float = 0.2  # original: 0.2 (ML-1m), 0.5 (sparse data)
    max_len: int = 50


class SASRec(TiedEmbeddingModel):
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
