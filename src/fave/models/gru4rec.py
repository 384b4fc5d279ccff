"""GRU4Rec (Hidasi et al., ICLR 2016): a GRU reads the history, its state scores the next item.

The original trains session-parallel mini-batches with ranking losses (TOP1/BPR) over sampled
negatives; its authors' later code also offers full cross-entropy with tied ("constrained")
input/output embeddings. Here, as in RecBole's GRU4Rec, a GRU reads the whole history, a linear
map takes its state back to the item-embedding space, and full softmax cross-entropy over all
items supervises every position at once (parallel layout); the prefix layout also works.

Histories are left-padded. A GRU fed zero vectors still moves its state (biases), so leading
padding would leak the amount of padding into the state. Each row is therefore rotated to
right padding, [i_1..i_n, 0..0], where the output at step j has read i_1..i_j only (the padding
comes after it), and the outputs are rotated back. This is exact, like packing the sequences,
and faster on CPU than packing (whose backward pass is ~3x slower).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor, nn

from fave.models.base import SoftmaxConfig, TiedEmbeddingModel
from fave.models.blocks import init_weights


@dataclass
class GRU4RecConfig(SoftmaxConfig):
    embedding: int = 64  # RecBole GRU4Rec: embedding_size 64
    hidden: int = 128  # RecBole: hidden_size 128 (Hidasi et al. 2016: 100 units)
    layers: int = 1  # Hidasi et al. 2016: one GRU layer performed best
    dropout: float = 0.3  # RecBole: dropout_prob 0.3 on the input embeddings


def _shift_rows(x: Tensor, shift: Tensor) -> Tensor:
    """Roll every row of x [B, L, ...] left by ``shift`` [B] steps (cyclically, along L)."""
    B, L = x.shape[:2]
    idx = (torch.arange(L, device=x.device)[None, :] + shift[:, None]) % L  # [B, L]
    idx = idx.view(B, L, *([1] * (x.dim() - 2))).expand_as(x)
    return x.gather(1, idx)


class GRU4Rec(TiedEmbeddingModel):
    Config = GRU4RecConfig
    default_layout = "parallel"

    def __init__(self, config: GRU4RecConfig, num_items: int) -> None:
        super().__init__(config, num_items)
        c = config
        self.item_emb = nn.Embedding(num_items + 1, c.embedding, padding_idx=0)
        self.emb_drop = nn.Dropout(c.dropout)
        self.gru = nn.GRU(
            c.embedding,
            c.hidden,
            c.layers,
            batch_first=True,
            dropout=c.dropout if c.layers > 1 else 0.0,
        )
        self.out = nn.Linear(c.hidden, c.embedding)  # state -> item-embedding space
        init_weights(self)  # embeddings and linear maps; the GRU keeps PyTorch's init

    def encode(self, history: Tensor) -> Tensor:
        """history [B, L] (left-padded) -> GRU outputs [B, L, D] at the same positions.

        Position l has read items <= l; outputs at padding positions carry no meaning.
        """
        L = history.shape[1]
        lengths = (history > 0).sum(1)  # [B]
        pad = L - lengths
        right = _shift_rows(history, pad)  # right-padded: [i_1..i_n, 0..0]
        out, _ = self.gru(self.emb_drop(self.item_emb(right)))  # [B, L, H]
        return self.out(_shift_rows(out, (L - pad) % L))  # back to left padding, [B, L, D]
