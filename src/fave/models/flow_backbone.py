"""The approximator shared by FAVE, FMRec and DiffuRec: a history encoder conditioned on a flow state.

Network input (FAVE eq. 9): ``E = e_s + lambda * (x_t + z)`` with ``lambda ~ N(delta, delta)``
drawn per position and channel (stochastic input modulation, from DiffuRec) and ``z`` the
time embedding: ``TimeEmb(t) + TimeEmb(r - t)`` (FAVE eq. 8, dual time) or ``TimeEmb(t)``
(FMRec, single time). Blocks follow the authors' code where the paper is silent: pre-RMSNorm,
rotary positions, DropPath, dropout; the output is the last block's state, LayerNorm-ed,
read as a prediction of x_1. A history decoder D (3-layer tanh MLP, eq. 13) reads an
intermediate block's state. The parts that differ between the models are arguments: the
blocks' norm (DiffuRec: LayerNorm) and whether there is a decoder (DiffuRec: none).

Shapes: history [B, L]; flow states x_t [B, D] (one per user, broadcast over positions, the
paper's prefix layout) or [B, L, D] (one per position, the parallel layout); times [B] or [B, L].
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from fave.errors import FaveError
from fave.models.blocks import PositionEmbedding, TransformerEncoder, init_weights, sinusoidal
from fave.models.catalog import AUTO, resolve_config
from fave.models.losses import LOSSES, next_item_ce

DECODER_OUTPUTS = ("linear", "tied")


@dataclass
class BackboneConfig:
    hidden: int = 128  # paper: hidden 128
    heads: int = 4  # paper: 4 heads
    layers: int = 4  # authors' code: 4 blocks
    dropout: float = 0.1  # authors' code
    drop_path: float = 0.2  # authors' code: DropPath up to 0.2
    delta: float = 0.001  # lambda ~ N(delta, delta) (authors' code: 0.001)
    dual_time: bool = True  # FAVE: TimeEmb(t) + TimeEmb(r - t); FMRec: TimeEmb(t)
    time_scale: float = 999.0  # authors' code scales times by 999 before the sinusoid
    decoder_block: int = 2  # D reads the output of this block (1-based; authors: 2 of 4)
    decoder_hidden: tuple[int, int] = (512, 2048)  # authors' code: 128 -> 512 -> 2048 -> N
    max_len: int = 50  # longest history (learned positions need it)
    # Switches for where this library's training differs from the public code (FAVE-NOTES sec. 9):
    item_init_std: float = 0.02  # item embeddings ~ N(0, std^2); public code: nn.Embedding's N(0, 1) (std 1)
    recon_norm: str = "selected"  # balanced MSE / selected entries | "all": / all B x N entries (public code)
    emb_dropout: float = -1.0  # dropout on the history embeddings (-1: `dropout`; public FMRec: 0.3)
    emb_dropout_order: str = "after_norm"  # after_norm | before_norm (public code: dropout, then LayerNorm)
    positions: str = "rotary"  # rotary (public FAVE) | learned | none (public FMRec, DiffuRec)
    padding_keys: str = "hidden"  # hidden | visible (public code: padding keys are attended to)
    # Cost that does not grow with the catalog (fave.models.losses); auto: the first choice up to
    # fave.models.catalog.LARGE_CATALOG items, the bounded one (sampled, gathered, tied) above:
    ce_loss: str = AUTO  # target-side CE: full softmax | sampled (ce_negatives shared, logQ) | chunked (exact)
    ce_negatives: int = 1024  # sampled: negatives per batch
    recon: str = AUTO  # history reconstruction: full ([B, N] decoder output) | gathered (only the selected entries)
    decoder_output: str = AUTO  # D's last layer: linear (d2 x N, authors') | tied (d2 -> D, scored against E)


BACKBONE_CHOICES = {
    "recon_norm": ("selected", "all"),
    "emb_dropout_order": ("after_norm", "before_norm"),
    "positions": ("rotary", "learned", "none"),
    "padding_keys": ("hidden", "visible"),
    "ce_loss": (AUTO, *LOSSES),
    "recon": (AUTO, "full", "gathered"),
    "decoder_output": (AUTO, *DECODER_OUTPUTS),
}


def check_backbone(c: BackboneConfig) -> None:
    """A clear error for a switch value that does not exist."""
    for name, allowed in BACKBONE_CHOICES.items():
        if getattr(c, name) not in allowed:
            raise FaveError(f"params.{name}={getattr(c, name)!r}; allowed: {', '.join(allowed)}")


def backbone_config(config: Any) -> BackboneConfig:
    """The backbone's fields of a model config (a subclass of :class:`BackboneConfig`), as a copy."""
    return BackboneConfig(**{f.name: getattr(config, f.name) for f in fields(BackboneConfig)})


def history_encoder(c: BackboneConfig, norm: str = "rms") -> TransformerEncoder:
    """The backbone's blocks: ``norm`` (pre-RMSNorm here; DiffuRec: LayerNorm), rotary
    positions (``c.positions``), DropPath, math attention."""
    return TransformerEncoder(
        c.hidden,
        c.heads,
        c.layers,
        c.dropout,
        norm=norm,
        drop_path=c.drop_path,
        use_rotary=c.positions == "rotary",
        math_attention=True,
        hide_padding=c.padding_keys == "hidden",
    )


def _decoder_widths(c: BackboneConfig, num_items: int) -> tuple[int, int, int]:
    """D's layer widths: d1, d2 and the last layer's output (N for ``linear``, D for ``tied``)."""
    d1, d2 = c.decoder_hidden
    return d1, d2, c.hidden if c.decoder_output == "tied" else num_items


def history_decoder(c: BackboneConfig, num_items: int) -> nn.Sequential:
    """D: ``hidden -> d1 -> d2 -> N`` with tanh between (authors' code: 128 -> 512 -> 2048 -> N).

    With ``decoder_output="tied"`` the last layer is ``d2 -> D`` instead: its output is scored
    against the item embeddings (plus a per-item bias, :attr:`FlowBackbone.decoder_bias`), so
    the decoder's size does not grow as d2 x N.
    """
    d1, d2, out = _decoder_widths(c, num_items)
    return nn.Sequential(nn.Linear(c.hidden, d1), nn.Tanh(), nn.Linear(d1, d2), nn.Tanh(), nn.Linear(d2, out))


def _draw_as_decoder(c: BackboneConfig, num_items: int, stage: str) -> None:
    """Draw, and drop, the random numbers that building (``stage="build"``) or initialising
    (``"init"``) :func:`history_decoder` draws, without building it.

    A backbone without a decoder (DiffuRec) used to build one and delete it; drawing as it did
    keeps that model's other initial weights, for a given seed, bit for bit those of earlier
    versions (and so its results), at the cost of a transient tensor of the decoder's size.
    """
    d1, d2, out = _decoder_widths(c, num_items)
    for fan_in, fan_out in ((c.hidden, d1), (d1, d2), (d2, out)):
        weight = torch.empty(fan_out, fan_in)
        if stage == "build":  # as nn.Linear.reset_parameters
            nn.init.kaiming_uniform_(weight, a=math.sqrt(5))
            nn.init.uniform_(torch.empty(fan_out), -1 / math.sqrt(fan_in), 1 / math.sqrt(fan_in))
        else:  # as init_weights
            nn.init.normal_(weight, 0.0, 0.02)


class TimeEmbedding(nn.Module):
    """Two-layer MLP over a sinusoidal encoding of a time [*] -> [*, D]."""

    def __init__(self, hidden: int, scale: float) -> None:
        super().__init__()
        self.hidden, self.scale = hidden, scale
        self.mlp = nn.Sequential(nn.Linear(hidden, hidden), nn.SiLU(), nn.Linear(hidden, hidden))

    def forward(self, t: Tensor) -> Tensor:
        return self.mlp(sinusoidal(t.reshape(-1), self.hidden, self.scale)).reshape(*t.shape, self.hidden)


class FlowBackbone(nn.Module):
    """Item embeddings + conditioned history encoder (blocks normalised by ``norm``: rms | layer)
    + history decoder (when ``decoder``; else ``decoder`` is None and forward's h_mid too)."""

    def __init__(
        self, config: BackboneConfig, num_items: int, causal: bool, norm: str = "rms", decoder: bool = True
    ) -> None:
        super().__init__()
        c = self.config = config
        self.notes = resolve_config(c, num_items)  # `auto` keys (a model resolved its own config already)
        check_backbone(c)
        self.num_items, self.causal = num_items, causal
        self.item_emb = nn.Embedding(num_items + 1, c.hidden, padding_idx=0)
        self.pos_emb = PositionEmbedding(c.max_len, c.hidden) if c.positions == "learned" else None
        self.emb_norm = nn.LayerNorm(c.hidden)
        self.emb_drop = nn.Dropout(c.dropout if c.emb_dropout < 0 else c.emb_dropout)
        self.time_emb = TimeEmbedding(c.hidden, c.time_scale)
        self.encoder = history_encoder(c, norm)
        self.out_norm = nn.LayerNorm(c.hidden)
        self.decoder = history_decoder(c, num_items) if decoder else None
        # tied decoder: one bias per item beside the scores against E (zero, as a Linear's bias after init_weights)
        tied = decoder and c.decoder_output == "tied"
        self.decoder_bias = nn.Parameter(torch.zeros(num_items)) if tied else None
        if not decoder:
            _draw_as_decoder(c, num_items, "build")
        init_weights(self)
        if not decoder:
            _draw_as_decoder(c, num_items, "init")
        if c.item_init_std != 0.02:
            nn.init.normal_(self.item_emb.weight, 0.0, c.item_init_std)
            with torch.no_grad():
                self.item_emb.weight[0].zero_()

    def embed_history(self, history: Tensor) -> Tensor:
        """e_s: the history's item embeddings (+ learned positions), LayerNorm and dropout. [B, L] -> [B, L, D]."""
        e = self.item_emb(history)
        if self.pos_emb is not None:
            e = e + self.pos_emb(history.shape[1])
        if self.config.emb_dropout_order == "before_norm":
            return self.emb_norm(self.emb_drop(e))
        return self.emb_drop(self.emb_norm(e))

    @property
    def items(self) -> Tensor:
        """Embeddings of items 1..N: [N, D]."""
        return self.item_emb.weight[1:]

    def condition(self, t: Tensor, r: Tensor) -> Tensor:
        """z = TimeEmb(t) + TimeEmb(r - t) (dual) or TimeEmb(t) (single). [*] -> [*, D]."""
        z = self.time_emb(t)
        return z + self.time_emb(r - t) if self.config.dual_time else z

    def forward(
        self, history: Tensor, x_t: Tensor, t: Tensor, r: Tensor, last_only: bool = False
    ) -> tuple[Tensor, Tensor | None]:
        """-> (f: x_1 prediction, h_mid: decoder input or None without a decoder), at every position [B, L, D].
        ``last_only`` (inference): f at the last position alone, [B, 1, D], computed without the other
        positions' outputs of the last block (:class:`TransformerEncoder`); h_mid is then [B, 1, D] when
        the decoder reads the last block."""
        return self.conditioned(history, x_t + self.condition(t, r), last_only)

    def conditioned(self, history: Tensor, cond: Tensor, last_only: bool = False) -> tuple[Tensor, Tensor | None]:
        """:meth:`forward` from its conditioning ``x_t + condition(t, r)`` ([B, D] or [B, L, D]), for a
        caller whose times are fixed (FAVE's one step: t = 0, r = 1, :class:`~fave.serving.scoring.OneStepAnchor`)."""
        e_s = self.embed_history(history)  # [B, L, D]
        if cond.dim() == 2:
            cond = cond[:, None, :]
        lam = self.config.delta + self.config.delta * torch.randn_like(e_s) if self.training else self.config.delta
        x = e_s + lam * cond
        out, hiddens = self.encoder(x, history, causal=self.causal, last_only=last_only)
        h_mid = hiddens[self.config.decoder_block - 1] if self.decoder is not None else None
        return self.out_norm(out), h_mid

    def target_ce(self, f: Tensor, target: Tensor) -> Tensor:
        """Target-side cross-entropy of predictions f [P, D] against all items (eq. 12), targets [P] in 1..N."""
        return next_item_ce(f, self.items, target, self.config.ce_loss, self.config.ce_negatives)

    def decode(self, h_mid: Tensor) -> Tensor:
        """History decoder D: [*, D] -> [*, N] reconstruction of the multi-hot history."""
        if self.decoder is None:
            raise FaveError("this backbone was built without a history decoder")
        if self.decoder_bias is None:
            return self.decoder(h_mid)
        return self.decoder(h_mid) @ self.items.T + self.decoder_bias  # tied: [*, D] . E^T

    def decode_entries(self, h: Tensor, rows: Tensor, items: Tensor) -> Tensor:
        """Entries ``decode(h)[rows, items - 1]`` without the [B, N] output: h [B, D]; rows,
        items [M] -> [M]. The last layer's rows of those items are gathered (linear: rows of the
        d2 x N weight; tied: of E and the item bias)."""
        if self.decoder is None:
            raise FaveError("this backbone was built without a history decoder")
        if self.decoder_bias is None:
            last = self.decoder[-1]
            z, w, b = self.decoder[:-1](h), last.weight, last.bias  # [B, d2], [N, d2], [N]
        else:
            z, w, b = self.decoder(h), self.items, self.decoder_bias  # [B, D], [N, D], [N]
        return (z[rows] * w[items - 1]).sum(-1) + b[items - 1]

    def reconstruction_loss(self, h_mid: Tensor, history: Tensor, position: Tensor | None = None) -> Tensor:
        """Balanced MSE (eq. 13, authors' variant): all positive entries of the multi-hot
        history A_u plus as many sampled zero entries (in expectation).

        h_mid [B, L, D]; history [B, L]; position [B]: read h_mid there and reconstruct
        the items at positions <= it (default: the last position, the whole history).
        """
        B, L = history.shape
        pos = position if position is not None else torch.full((B,), L - 1, device=history.device)
        if self.config.recon == "gathered":
            return self._gathered_reconstruction(h_mid[torch.arange(B), pos], history, pos)
        recon = self.decode(h_mid[torch.arange(B), pos])  # [B, N]
        seen = history * (torch.arange(L, device=history.device)[None, :] <= pos[:, None])
        target = torch.zeros(B, self.num_items + 1, device=history.device)
        target.scatter_(1, seen, 1.0)
        target = target[:, 1:]  # drop the padding column
        n_pos = target.sum(1, keepdim=True)  # [B, 1]
        rate = n_pos / (self.num_items - n_pos).clamp_min(1)  # as many zeros as positives, in expectation
        negatives = (torch.rand_like(target) < rate) & (target == 0)
        weight = (target > 0) | negatives
        denom = weight.numel() if self.config.recon_norm == "all" else weight.sum().clamp_min(1)
        return (F.mse_loss(recon, target, reduction="none") * weight).sum() / denom

    def _gathered_reconstruction(self, h: Tensor, history: Tensor, pos: Tensor) -> Tensor:
        """The balanced MSE on the selected entries only: the decoder's last layer is applied to the
        rows of W for each user's positives and as many uniformly drawn negatives, never to all N.
        h [B, D]; memory and time grow with the history lengths, not with N."""
        B, L = history.shape
        N = self.num_items
        seen = history * (torch.arange(L, device=history.device)[None, :] <= pos[:, None])  # [B, L]
        key = torch.unique(torch.arange(B, device=history.device)[:, None] * (N + 1) + seen)  # sorted (row, item)
        key = key[key % (N + 1) > 0]  # drop padding
        p_row, p_item = key // (N + 1), key % (N + 1)
        n_pos = torch.bincount(p_row, minlength=B)  # [B]
        n_row = torch.repeat_interleave(torch.arange(B, device=history.device), n_pos)
        n_item = torch.randint(1, N + 1, (len(n_row),), device=history.device)
        hit = torch.isin(n_row * (N + 1) + n_item, key)  # a draw that is a positive is dropped
        n_row, n_item = n_row[~hit], n_item[~hit]
        rows, items = torch.cat([p_row, n_row]), torch.cat([p_item, n_item])
        target = torch.cat([torch.ones(len(p_row)), torch.zeros(len(n_row))]).to(h.dtype)
        value = self.decode_entries(h, rows, items)
        sq = ((value - target) ** 2).sum()
        return sq / (B * N) if self.config.recon_norm == "all" else sq / max(1, len(rows))
