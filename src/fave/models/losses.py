"""Next-item cross-entropy over a catalog: full, sampled (with logQ correction) or chunked exact.

All take ``h`` [P, D] (the states that predict a target), ``items`` [N, D] (embeddings of items
1..N) and ``target`` [P] (ids 1..N) and return the mean loss over the P targets.

- :func:`full_ce`: softmax over all N items ([P, N] logits).
- :func:`sampled_ce`: softmax over the target and ``negatives`` items, drawn uniformly or by
  popularity, either shared by the whole batch or drawn anew for every position (``per="position"``,
  as the public transformer benchmark's SASRec samples them: many more distinct items are pushed
  down per step, at ``negatives`` x D memory per position); every logit is corrected by
  ``- log Q(item)`` (sampled softmax, Jean et al. 2015; Yi et al. 2019), and a negative that equals
  the row's target is removed. Cost grows with ``negatives``, not with N.
- :func:`chunked_ce`: the full softmax computed over rows in chunks, each recomputed in the backward
  pass (activation checkpointing), so memory holds [chunk, N] logits at a time; same value as
  :func:`full_ce` up to float rounding.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor
from torch.utils.checkpoint import checkpoint

LOSSES = ("full", "sampled", "chunked")
SAMPLERS = ("uniform", "popularity")
NEGATIVES_PER = ("batch", "position")


def full_ce(h: Tensor, items: Tensor, target: Tensor) -> Tensor:
    return F.cross_entropy(h @ items.T, target - 1)


def _chunk_sum(h: Tensor, items: Tensor, target: Tensor) -> Tensor:
    return F.cross_entropy(h @ items.T, target - 1, reduction="sum")


def chunked_ce(h: Tensor, items: Tensor, target: Tensor, chunk: int = 4096) -> Tensor:
    total = h.new_zeros(())
    for i in range(0, h.shape[0], chunk):
        sl = slice(i, i + chunk)
        if torch.is_grad_enabled() and (h.requires_grad or items.requires_grad):
            total = total + checkpoint(_chunk_sum, h[sl], items, target[sl], use_reentrant=False)
        else:
            total = total + _chunk_sum(h[sl], items, target[sl])
    return total / max(1, h.shape[0])


def _draw(log_q: Tensor | None, N: int, shape: tuple[int, ...], device: torch.device) -> Tensor:
    """Item indices 0..N-1 of the given shape, uniform or by ``log_q``."""
    if log_q is None:
        return torch.randint(0, N, shape, device=device)
    return torch.multinomial(log_q.exp(), math.prod(shape), replacement=True).view(shape)


def sampled_ce(
    h: Tensor, items: Tensor, target: Tensor, negatives: int, log_q: Tensor | None = None, per: str = "batch"
) -> Tensor:
    """``log_q`` [N]: log-probabilities of drawing items 1..N (None: uniform).
    ``per``: "batch" draws ``negatives`` items shared by all P rows, "position" draws them for each row."""
    N = items.shape[0]
    pos = (h * items[target - 1]).sum(-1, keepdim=True)  # [P, 1]
    if per == "position":
        neg = _draw(log_q, N, (len(target), negatives), h.device)  # [P, n]
        if N <= negatives * items.shape[1]:  # all N logits cost less than gathering n x D per row
            neg_logits = (h @ items.T).gather(1, neg)  # [P, n]
        else:
            neg_logits = torch.bmm(items[neg], h.unsqueeze(-1)).squeeze(-1)  # [P, n]
    else:
        shared = _draw(log_q, N, (negatives,), h.device)  # [n]
        neg_logits = h @ items[shared].T  # [P, n]
        neg = shared.expand(len(target), -1)  # [P, n]
    cand = torch.cat([(target - 1)[:, None], neg], 1)  # [P, 1 + n]
    logits = torch.cat([pos, neg_logits], 1)  # [P, 1 + n]
    if log_q is not None:  # uniform Q shifts every logit by the same constant: nothing to correct
        logits = logits - log_q[cand]
    hit = cand[:, 1:] == cand[:, :1]  # a sampled negative that is the row's own target
    logits[:, 1:] = logits[:, 1:].masked_fill(hit, float("-inf"))
    return F.cross_entropy(logits, torch.zeros_like(target))


def popularity_log_q(counts: Tensor, smoothing: float = 1.0) -> Tensor:
    """log Q for the popularity sampler from item counts [N] (add-``smoothing``, so every item can be drawn)."""
    p = counts.float() + smoothing
    return (p / p.sum()).log()


def next_item_ce(
    h: Tensor,
    items: Tensor,
    target: Tensor,
    loss: str = "full",
    negatives: int = 256,
    log_q: Tensor | None = None,
    chunk: int = 4096,
    per: str = "batch",
) -> Tensor:
    """Dispatch on ``loss`` (full | sampled | chunked); ``per`` only matters for sampled."""
    if loss == "full":
        return full_ce(h, items, target)
    if loss == "chunked":
        return chunked_ce(h, items, target, chunk)
    return sampled_ce(h, items, target, negatives, log_q, per)
