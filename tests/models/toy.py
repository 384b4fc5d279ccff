"""Shared pieces of the model tests: a deterministic item chain, a small random batch,
the loss-and-scores contract on one batch, and a short training loop with its hit count."""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor

from fave.data.batching import Batch, eval_batches, train_batches
from fave.models.base import LossOutput, SeqRecModel

N_ITEMS = 20


def chain(num_users: int = 8, length: int = 12, stride: int = 3) -> list[np.ndarray]:
    """Item i is always followed by i % N + 1; user u starts at item stride * u + 1."""
    return [np.array([(stride * u + k) % N_ITEMS + 1 for k in range(length)]) for u in range(num_users)]


def chain_data(num_users: int = 8, length: int = 12, stride: int = 3) -> tuple[list[np.ndarray], np.ndarray]:
    """:func:`chain` -> (training sequences, the next item after each)."""
    seqs = chain(num_users, length, stride)
    return [s[:-1] for s in seqs], np.array([s[-1] for s in seqs])


def random_train(rng: np.random.Generator | None = None) -> list[np.ndarray]:
    """Four random histories of 2, 5, 9 and 3 items (drawn from ``rng``, else seed 0)."""
    rng = np.random.default_rng(0) if rng is None else rng
    return [rng.integers(1, N_ITEMS + 1, size=n) for n in (2, 5, 9, 3)]


def first_batch(train: list[np.ndarray], layout: str, rng: np.random.Generator) -> Batch:
    """The first training batch (max_len 8, all four users) of ``train`` in ``layout``."""
    return next(train_batches(train, layout, max_len=8, batch_size=4, rng=rng))


def random_batch(layout: str) -> Batch:
    """:func:`first_batch` of :func:`random_train`, one generator (seed 0) for both."""
    rng = np.random.default_rng(0)
    return first_batch(random_train(rng), layout, rng)


def check_loss_and_scores(model: SeqRecModel, batch: Batch) -> tuple[LossOutput, Tensor]:
    """The contract on one batch: a finite loss whose gradient reaches every parameter, and
    finite [B, N] scores in eval mode (the model is back in training mode afterwards).
    -> (the loss output, the scores) for the model's own checks."""
    out = model.loss(batch)
    assert torch.isfinite(out.loss)
    model.zero_grad()
    out.loss.backward()
    assert all(p.grad is not None for p in model.parameters())
    model.eval()
    scores = model.score_all(batch)
    model.train()
    assert scores.shape == (len(batch), N_ITEMS) and torch.isfinite(scores).all()
    return out, scores


def overfit(
    model: SeqRecModel,
    seqs: list[np.ndarray],
    epochs: int,
    max_len: int,
    batch_size: int = 8,
    lr: float = 1e-2,
    layout: str = "parallel",
) -> list[float]:
    """Adam over every batch of ``seqs`` (sampler seed 0) for ``epochs`` passes. -> step losses."""
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    rng = np.random.default_rng(0)
    losses = []
    for _ in range(epochs):
        for batch in train_batches(seqs, layout, max_len=max_len, batch_size=batch_size, rng=rng):
            loss = model.loss(batch).loss
            opt.zero_grad()
            loss.backward()
            opt.step()
            losses.append(float(loss.detach()))
    return losses


def next_item_hits(
    model: SeqRecModel,
    train: list[np.ndarray],
    targets: np.ndarray,
    max_len: int,
    batch_size: int = 8,
    sample_seed: int | None = None,
) -> int:
    """In eval mode: for how many users the top-scored item is the target. A sampling
    model gets a fresh generator seeded ``sample_seed`` for every batch."""
    model.eval()
    users = np.arange(len(train))
    hits = 0
    for _, batch in eval_batches(users, train, targets, max_len=max_len, batch_size=batch_size):
        if sample_seed is None:
            scores = model.score_all(batch)
        else:
            scores = model.score_all(batch, torch.Generator().manual_seed(sample_seed))
        hits += int((scores.argmax(1) + 1 == batch.target).sum())
    return hits
