"""Caser (Tang & Wang, WSDM 2018): convolutions over the embedding "image" of the last L items.

The L x d matrix of the last L item embeddings is read by horizontal filters (heights 1..L,
max-pooled over time: union-level and point-level sequential patterns) and by vertical
filters (L x 1: weighted sums of the L embeddings). Their concatenation goes through a fully
connected layer (z, eq. 7 of the paper), is joined with the user embedding P_u and scored
against per-item output vectors and biases (eq. 8): y = W'_i . [z; P_u] + b'_i.

Deviations from the original, which trains each window on its next T = 3 items with binary
cross-entropy and 3 sampled negatives per target:
- full softmax cross-entropy over all items, next item only (T = 1);
- parallel layout by default: the window of the last L items ending at *every* position of a
  user's sequence is unfolded ([B, T, L]), so one pass supervises every position. These are
  the prefix layout's windows and targets for the last ``max_len`` targets, except that in a
  sequence cut to its last ``max_len + 1`` items the first L - 1 windows lose the items
  before the cut. The prefix layout also works (its window ends at the last history item);
- the model contract gives no user count, so the user table has ``user_slots`` rows and user
  u uses row ``u % user_slots``: exact whenever the dataset has at most that many users
  (ML-100k 943, Beauty 22,363), shared rows beyond.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from fave.data.batching import Batch
from fave.models.base import ItemSide, LossOutput, SeqRecModel, at_targets


@dataclass
class CaserConfig:
    hidden: int = 50  # d = 50 (public code default, graytowne/caser_pytorch)
    window: int = 5  # L = 5 (code default; the paper's best on ML-1m)
    vertical: int = 4  # n_v = 4 vertical filters (code default)
    horizontal: int = 16  # n_h = 16 horizontal filters per height 1..L (code default)
    dropout: float = 0.5  # code default, applied before the fully connected layer
    user_slots: int = 32768  # user-table rows; user u uses row u % user_slots (see module doc)


class Caser(SeqRecModel):
    Config = CaserConfig
    default_layout = "parallel"

    def __init__(self, config: CaserConfig, num_items: int) -> None:
        super().__init__(config, num_items)
        c = config
        d, L = c.hidden, c.window
        self.item_emb = nn.Embedding(num_items + 1, d, padding_idx=0)
        self.user_emb = nn.Embedding(c.user_slots, d)
        self.vertical = nn.Linear(L, c.vertical)  # an L x 1 convolution, applied per dimension
        self.horizontal = nn.ModuleList(nn.Conv1d(d, c.horizontal, h) for h in range(1, L + 1))
        self.drop = nn.Dropout(c.dropout)
        self.fc = nn.Linear(c.vertical * d + c.horizontal * L, d)
        self.out_emb = nn.Embedding(num_items + 1, 2 * d)  # W' (eq. 8)
        self.out_bias = nn.Embedding(num_items + 1, 1)  # b' (eq. 8)
        # the public code's initialisation: N(0, 1/dim) embeddings, zero output biases
        for emb in (self.item_emb, self.user_emb, self.out_emb):
            nn.init.normal_(emb.weight, 0.0, 1.0 / emb.embedding_dim)
        nn.init.zeros_(self.out_bias.weight)
        with torch.no_grad():
            self.item_emb.weight[0].zero_()

    def windows(self, history: Tensor) -> Tensor:
        """history [B, T] -> the last L items ending at every position [B, T, L] (0-padded)."""
        L = self.config.window
        return F.pad(history, (L - 1, 0)).unfold(1, L, 1)

    def encode(self, window: Tensor, user: Tensor) -> Tensor:
        """window [M, L] item ids, user [M] -> [z; P_u] [M, 2d] (eqs. 3-7)."""
        E = self.item_emb(window).transpose(1, 2)  # [M, d, L]
        o_v = self.vertical(E).flatten(1)  # [M, d * n_v]
        o_h = torch.cat([F.relu(conv(E)).amax(-1) for conv in self.horizontal], 1)  # [M, n_h * L]
        z = F.relu(self.fc(self.drop(torch.cat([o_v, o_h], 1))))  # [M, d]
        return torch.cat([z, self.user_emb(user % self.config.user_slots)], 1)

    def _logits(self, x: Tensor) -> Tensor:
        return x @ self.out_emb.weight[1:].T + self.out_bias.weight[1:, 0]  # [M, N]

    def loss(self, batch: Batch) -> LossOutput:
        # parallel layout: a window ending at every position; prefix: the one at the last item
        users = batch.user[:, None].expand_as(batch.history)
        window, user, target = at_targets(batch, self.windows(batch.history), users)  # [M, L], [M], [M]
        loss = F.cross_entropy(self._logits(self.encode(window, user)), target - 1)
        return LossOutput(loss, {"ce": float(loss.detach())})

    def query_vector(self, batch: Batch) -> Tensor:
        """[z; P_u] of the window ending at the last item [B, 2d]."""
        return self.encode(self.windows(batch.history)[:, -1], batch.user)

    def score_all(self, batch: Batch) -> Tensor:
        return self._logits(self.query_vector(batch))

    def item_representation(self) -> Tensor:
        """The output vectors W'_i [N, 2d] that score items."""
        return self.out_emb.weight[1:].detach()

    def item_side(self) -> ItemSide:
        return ItemSide(self.out_emb.weight[1:], self.out_bias.weight[1:, 0])
