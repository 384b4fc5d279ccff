"""BERT4Rec (Sun et al., CIKM 2019): a bidirectional Transformer trained by cloze.

Training: random items of a user's sequence are replaced by a [MASK] token (id N + 1, a row
of the item table that is never scored) and predicted from both sides; the loss is softmax
cross-entropy over all items at the masked positions only (paper eq. 8). A masked position's
input is the [MASK] token, so it never sees its own target. Inference: [MASK] is appended after
the history (the oldest item is dropped when that exceeds ``max_len``) and its output scores
the next item (paper Sec. 3.6).

The batch layout is "parallel", used only to rebuild each user's sequence: the history plus
the last target (``targets`` holds the history shifted by one), cut to its last ``max_len``
items; a prefix batch (history + ``target``) works the same way.

Deviations from the original: masked positions are drawn independently with probability
``mask_prob`` (the original masks round(n * rho) positions per copy, 10 copies per user), at
least one per sequence; a share ``mask_last_prob`` of sequences has only its last item masked,
standing in for the original's one last-item-only sample per 10 random copies; pre-LN blocks
from ``blocks.py`` instead of BERT's post-LN; one window per user (the last ``max_len`` + 1
items) instead of sliding windows over long sequences.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from fave.data.batching import Batch
from fave.models.base import ItemSide, LossOutput, SeqRecModel
from fave.models.blocks import PositionEmbedding, TransformerEncoder, init_weights


@dataclass
class BERT4RecConfig:
    hidden: int = 64  # original code, bert_config_ml-1m_64.json: hidden_size 64 (FFN 4 x 64)
    heads: int = 2  # num_attention_heads 2
    layers: int = 2  # num_hidden_layers 2
    dropout: float = 0.2  # ML-1m config: hidden/attention dropout 0.2 (paper text: 0.1)
    max_len: int = 50  # the FAVE protocol's 50 (original: 200 for ML-1m, 50 for Beauty/Steam)
    mask_prob: float = 0.2  # rho: 0.2 for ML-1m (run_ml-1m.sh), 0.6 Beauty, 0.4 Steam
    mask_last_prob: float = 0.1  # ~1 last-item-only sample per 10 random copies (gen_data_fin)
    init_std: float = 0.02  # N(0, std) weights: the original's initializer_range 0.02


class BERT4Rec(SeqRecModel):
    Config = BERT4RecConfig
    default_layout = "parallel"

    def __init__(self, config: BERT4RecConfig, num_items: int) -> None:
        super().__init__(config, num_items)
        c = config
        self.mask_id = num_items + 1
        self.item_emb = nn.Embedding(num_items + 2, c.hidden, padding_idx=0)  # 0 pad, N+1 mask
        self.pos_emb = PositionEmbedding(c.max_len, c.hidden)
        self.emb_norm = nn.LayerNorm(c.hidden)
        self.emb_drop = nn.Dropout(c.dropout)
        self.encoder = TransformerEncoder(c.hidden, c.heads, c.layers, c.dropout)
        self.transform = nn.Linear(c.hidden, c.hidden)  # W^P, b^P of eq. 7
        self.out_bias = nn.Parameter(torch.zeros(num_items))  # b^O of eq. 7
        init_weights(self, c.init_std)

    # -- sequences and masks ---------------------------------------------------------
    def training_sequence(self, batch: Batch) -> Tensor:
        """The user's sequence [B, S] (left-padded, S <= max_len): history + the last target."""
        last = batch.targets[:, -1:] if batch.targets is not None else batch.target[:, None]
        return torch.cat([batch.history, last], 1)[:, -self.config.max_len :]

    def cloze_mask(self, seq: Tensor, generator: torch.Generator | None = None) -> Tensor:
        """Positions to predict [B, S] bool: each item w.p. ``mask_prob``, or only the last
        item w.p. ``mask_last_prob`` per sequence; the last item when nothing was drawn."""
        c = self.config
        real = seq > 0
        draw = torch.rand(seq.shape, generator=generator, device=seq.device) < c.mask_prob
        mask = draw & real
        last_only = torch.rand(seq.shape[0], generator=generator, device=seq.device) < c.mask_last_prob
        mask &= ~last_only[:, None]
        mask[:, -1] |= (last_only | ~mask.any(1)) & real[:, -1]
        return mask

    # -- network ---------------------------------------------------------------------
    def encode(self, inputs: Tensor) -> Tensor:
        """inputs [B, S] (items, 0 pad, N+1 mask) -> bidirectional hidden states [B, S, D]."""
        x = self.item_emb(inputs) + self.pos_emb(inputs.shape[1])
        x = self.emb_drop(self.emb_norm(x)) * (inputs > 0).unsqueeze(-1)
        out, _ = self.encoder(x, inputs, causal=False)
        return out

    def cloze_vectors(self, seq: Tensor, mask: Tensor) -> Tensor:
        """Replace masked items of seq [B, S] by [MASK]; GELU(h W^P + b^P) at the masked positions,
        in row-major order -> [M, D] (the user side of eq. 7)."""
        h = self.encode(seq.masked_fill(mask, self.mask_id))[mask]  # [M, D]
        return F.gelu(self.transform(h))

    def cloze_logits(self, seq: Tensor, mask: Tensor) -> Tensor:
        """Scores of items 1..N at the masked positions -> [M, N] (eq. 7: GELU(h W^P + b^P) E^T + b^O)."""
        return self.cloze_vectors(seq, mask) @ self.item_emb.weight[1 : self.mask_id].T + self.out_bias

    # -- contract --------------------------------------------------------------------
    def loss(self, batch: Batch) -> LossOutput:
        seq = self.training_sequence(batch)
        mask = self.cloze_mask(seq)
        loss = F.cross_entropy(self.cloze_logits(seq, mask), seq[mask] - 1)
        return LossOutput(loss, {"ce": float(loss.detach()), "masked": float(mask.sum())})

    def query_vector(self, batch: Batch) -> Tensor:
        """The cloze vector of a [MASK] appended to the history [B, D]."""
        history = batch.history
        seq = torch.cat([history, history.new_zeros(len(batch), 1)], 1)[:, -self.config.max_len :]
        mask = torch.zeros_like(seq, dtype=torch.bool)
        mask[:, -1] = True  # the appended [MASK]
        return self.cloze_vectors(seq, mask)

    def score_all(self, batch: Batch) -> Tensor:
        side = self.item_side()
        return self.query_vector(batch) @ side.weight.T + side.bias

    def item_representation(self) -> Tensor:
        return self.item_emb.weight[1 : self.mask_id].detach()

    def item_side(self) -> ItemSide:
        return ItemSide(self.item_emb.weight[1 : self.mask_id], self.out_bias)
