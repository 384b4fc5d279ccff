"""Shared building blocks: Transformer blocks over left-padded item sequences."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from fave.errors import FaveError


def attention_mask(history: Tensor, causal: bool, hide_padding: bool = True) -> Tensor:
    """Boolean mask [B, 1, L, L], True = may attend. Padding keys are hidden (unless
    ``hide_padding`` is False, as in the authors' code); every position may see itself, so
    rows of padding never attend to nothing (no NaN)."""
    B, L = history.shape
    keys = (history > 0)[:, None, None, :]  # [B, 1, 1, L]
    if not hide_padding:
        keys = torch.ones_like(keys)  # (a tensor op, not `| bool`: TorchScript traces it)
    eye = torch.eye(L, dtype=torch.bool, device=history.device)
    if causal:
        tril = torch.ones(L, L, dtype=torch.bool, device=history.device).tril()
        return (keys & tril) | eye
    return keys | eye


class RMSNorm(nn.Module):
    def __init__(self, dim: int, eps: float = 1e-6) -> None:
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(dim))

    def forward(self, x: Tensor) -> Tensor:
        if torch.compiler.is_exporting():  # the division form, which ONNX Runtime fuses into one kernel
            return x / torch.sqrt(x.pow(2).mean(-1, keepdim=True) + self.eps) * self.weight
        return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + self.eps) * self.weight


class DropPath(nn.Module):
    """Stochastic depth: drop the whole residual branch per sample."""

    def __init__(self, p: float) -> None:
        super().__init__()
        self.p = p

    def forward(self, x: Tensor) -> Tensor:
        if not self.training or self.p == 0.0:
            return x
        keep = x.new_empty(x.shape[0], *([1] * (x.dim() - 1))).bernoulli_(1 - self.p)
        return x * keep / (1 - self.p)


def rotary(x: Tensor) -> Tensor:
    """Rotary position encoding on [B, H, L, Dh] (positions count from the right end)."""
    L, d = x.shape[-2], x.shape[-1]
    half = d // 2
    freqs = 1.0 / (10000 ** (torch.arange(half, device=x.device, dtype=x.dtype) / half))
    pos = torch.arange(L, device=x.device, dtype=x.dtype)
    angles = pos[:, None] * freqs[None, :]  # [L, half]
    cos, sin = angles.cos(), angles.sin()
    x1, x2 = x[..., :half], x[..., half : 2 * half]
    out = torch.cat([x1 * cos - x2 * sin, x1 * sin + x2 * cos], dim=-1)
    return torch.cat([out, x[..., 2 * half :]], dim=-1) if d % 2 else out


class TransformerBlock(nn.Module):
    """Pre-norm self-attention + feed-forward block."""

    def __init__(
        self,
        hidden: int,
        heads: int,
        dropout: float,
        norm: str = "layer",
        drop_path: float = 0.0,
        use_rotary: bool = False,
        ffn_mult: int = 4,
        math_attention: bool = False,
    ) -> None:
        super().__init__()
        self.math_attention = math_attention  # plain softmax attention: supports forward-mode AD (JVP)
        if hidden % heads:
            raise FaveError(f"params.hidden={hidden} is not divisible by params.heads={heads}; change one of them")
        make_norm = (lambda: RMSNorm(hidden)) if norm == "rms" else (lambda: nn.LayerNorm(hidden))
        self.heads, self.use_rotary, self.dropout = heads, use_rotary, dropout
        self.norm1, self.norm2 = make_norm(), make_norm()
        self.qkv = nn.Linear(hidden, 3 * hidden)
        self.proj = nn.Linear(hidden, hidden)
        self.ffn = nn.Sequential(
            nn.Linear(hidden, ffn_mult * hidden), nn.GELU(), nn.Dropout(dropout), nn.Linear(ffn_mult * hidden, hidden)
        )
        self.drop = nn.Dropout(dropout)
        self.drop_path = DropPath(drop_path)

    def forward(self, x: Tensor, mask: Tensor, last_only: bool = False) -> Tensor:
        """x: [B, L, D], mask: [B, 1, L, L] bool -> [B, L, D], or [B, 1, D] with ``last_only``: the last
        position's output alone (keys and values still from every position; the same numbers as
        ``forward(x, mask)[:, -1:]`` up to float rounding, for a fraction of the cost)."""
        B, L, D = x.shape
        qkv = self.qkv(self.norm1(x)).view(B, L, 3, self.heads, D // self.heads).permute(2, 0, 3, 1, 4)
        if self.use_rotary:  # q and k in one call (elementwise: the same numbers as one call each, half the ops)
            (q, k), v = rotary(qkv[:2]).unbind(0), qkv[2]
        else:
            q, k, v = qkv.unbind(0)
        if last_only:  # queries, mask rows and residual stream of the last position only
            q, mask, x = q[:, :, -1:], mask[:, :, -1:], x[:, -1:]
        Lq = q.shape[-2]
        if self.math_attention:
            w = (q @ k.transpose(-1, -2)) / (q.shape[-1] ** 0.5)
            w = w.masked_fill(~mask, float("-inf")).softmax(-1)
            a = F.dropout(w, self.dropout, self.training) @ v
        else:
            p = self.dropout if self.training else 0.0
            a = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, dropout_p=p)
        x = x + self.drop_path(self.drop(self.proj(a.transpose(1, 2).reshape(B, Lq, D))))
        return x + self.drop_path(self.drop(self.ffn(self.norm2(x))))


class TransformerEncoder(nn.Module):
    """A stack of blocks over input embeddings [B, L, D]; returns every block's output."""

    def __init__(
        self,
        hidden: int,
        heads: int,
        layers: int,
        dropout: float,
        norm: str = "layer",
        drop_path: float = 0.0,
        use_rotary: bool = False,
        math_attention: bool = False,
        hide_padding: bool = True,
    ) -> None:
        super().__init__()
        self.hide_padding = hide_padding
        rates = [drop_path * i / max(1, layers - 1) for i in range(layers)]
        self.blocks = nn.ModuleList(
            TransformerBlock(hidden, heads, dropout, norm, r, use_rotary, math_attention=math_attention) for r in rates
        )
        self.final_norm = RMSNorm(hidden) if norm == "rms" else nn.LayerNorm(hidden)

    def forward(self, x: Tensor, history: Tensor, causal: bool, last_only: bool = False) -> tuple[Tensor, list[Tensor]]:
        """-> (final normalised output [B, L, D], outputs of each block). ``last_only``: the last block
        computes the last position alone (inference that reads only ``[:, -1]``): the final output and
        the last block's entry of the list are then [B, 1, D]; the earlier blocks' stay [B, L, D]."""
        mask = attention_mask(history, causal, self.hide_padding)
        outs = []
        for i, block in enumerate(self.blocks):
            x = block(x, mask, last_only=last_only and i == len(self.blocks) - 1)
            outs.append(x)
        return self.final_norm(x), outs


class PositionEmbedding(nn.Module):
    """Learned positions, right-aligned so the most recent item always has the same index."""

    def __init__(self, max_len: int, hidden: int) -> None:
        super().__init__()
        self.max_len = max_len
        self.emb = nn.Embedding(max_len, hidden)

    def forward(self, L: int) -> Tensor:
        idx = torch.arange(self.max_len - L, self.max_len, device=self.emb.weight.device)
        return self.emb(idx)  # [L, D]


def sinusoidal(t: Tensor, dim: int, scale: float = 1.0) -> Tensor:
    """Sinusoidal encoding of scalars t [B] -> [B, dim]."""
    half = dim // 2
    freqs = torch.exp(-math.log(10000.0) * torch.arange(half, device=t.device, dtype=torch.float32) / half)
    args = (t.float() * scale)[:, None] * freqs[None]
    return torch.cat([args.cos(), args.sin()], dim=-1)


def init_weights(module: nn.Module, std: float = 0.02) -> None:
    for m in module.modules():
        if isinstance(m, (nn.Linear, nn.Embedding)):
            nn.init.normal_(m.weight, 0.0, std)
            if isinstance(m, nn.Embedding) and m.padding_idx is not None:
                with torch.no_grad():
                    m.weight[m.padding_idx].zero_()
            if isinstance(m, nn.Linear) and m.bias is not None:
                nn.init.zeros_(m.bias)
