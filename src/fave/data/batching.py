"""Batches for training and evaluation.

Two training layouts:
- ``prefix`` (the paper's): one sample per training prefix, ``history = i_1..i_k``,
  ``target = i_{k+1}`` for k >= 1.
- ``parallel`` (for causal models): one sample per user, ``history = i_1..i_{n-1}``,
  ``targets = i_2..i_n``: every position is supervised in one pass.

Histories keep the last ``max_len`` items and are left-padded with 0. Batches are bucketed
by length: samples are sorted by length (random tie-break) and each batch is padded only to
its own longest history, so short histories are not padded to ``max_len``.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor


@dataclass
class Batch:
    """A batch of users. ``history`` is left-padded with 0.

    - ``history``: [B, L] item ids.
    - ``target``: [B] next item (prefix layout and evaluation) or None.
    - ``targets``: [B, L] next item after every position, 0 where none (parallel layout) or None.
    - ``user``: [B] user indices.
    """

    history: Tensor
    user: Tensor
    target: Tensor | None = None
    targets: Tensor | None = None

    def __len__(self) -> int:
        return int(self.history.shape[0])

    def to(self, device: torch.device | str) -> Batch:
        move = lambda x: None if x is None else x.to(device)  # noqa: E731
        return Batch(move(self.history), move(self.user), move(self.target), move(self.targets))


def left_pad(seqs: Sequence[np.ndarray], max_len: int) -> np.ndarray:
    """Stack the last ``max_len`` items of each sequence, left-padded with 0. -> [B, L]."""
    width = max(1, min(max_len, max((len(s) for s in seqs), default=1)))
    out = np.zeros((len(seqs), width), dtype=np.int64)
    for row, s in enumerate(seqs):
        s = s[-width:]
        if len(s):
            out[row, width - len(s) :] = s
    return out


def _bucketed_order(lengths: np.ndarray, batch_size: int, rng: np.random.Generator) -> list[np.ndarray]:
    """Sort by length with a random tie-break, cut into batches, shuffle the batch order."""
    order = np.lexsort((rng.random(len(lengths)), lengths))
    batches = [order[i : i + batch_size] for i in range(0, len(order), batch_size)]
    rng.shuffle(batches)
    return batches


def prefix_samples(train: Sequence[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """All (user, k) with a target: history = seq[:k], target = seq[k], k >= 1."""
    users, cuts = [], []
    for u, s in enumerate(train):
        if len(s) >= 2:
            k = np.arange(1, len(s))
            users.append(np.full(len(k), u))
            cuts.append(k)
    if not users:
        return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64)
    return np.concatenate(users), np.concatenate(cuts)


def prefix_batches(
    train: Sequence[np.ndarray], max_len: int, batch_size: int, rng: np.random.Generator
) -> Iterator[Batch]:
    """The paper's layout: one sample per training prefix, bucketed by history length."""
    users, cuts = prefix_samples(train)
    lengths = np.minimum(cuts, max_len)
    for idx in _bucketed_order(lengths, batch_size, rng):
        hist = [train[u][max(0, k - max_len) : k] for u, k in zip(users[idx], cuts[idx], strict=True)]
        target = np.array([train[u][k] for u, k in zip(users[idx], cuts[idx], strict=True)])
        yield Batch(
            history=torch.from_numpy(left_pad(hist, max_len)),
            user=torch.from_numpy(users[idx].astype(np.int64)),
            target=torch.from_numpy(target.astype(np.int64)),
        )


def parallel_windows(train: Sequence[np.ndarray], max_len: int, windows: str) -> tuple[np.ndarray, np.ndarray]:
    """(user, end) of every training window ``seq[max(0, end - max_len - 1):end]``.

    ``last``: one window per user, its last ``max_len + 1`` items (original SASRec).
    ``all``: windows ending at n, n - max_len, n - 2 max_len, ...: every training target is
    supervised exactly once per epoch (the paper's recipe trains on every prefix).
    """
    users, ends = [], []
    for u, s in enumerate(train):
        n = len(s)
        if n < 2:
            continue
        stops = [n] if windows == "last" else list(range(n, 1, -max_len))
        users += [u] * len(stops)
        ends += stops
    return np.asarray(users, dtype=np.int64), np.asarray(ends, dtype=np.int64)


def parallel_batches(
    train: Sequence[np.ndarray], max_len: int, batch_size: int, rng: np.random.Generator, windows: str = "last"
) -> Iterator[Batch]:
    """Windows of up to ``max_len + 1`` items, every position supervised, bucketed by length.

    Within a window, position i sees the window's items up to i (at most ``max_len``).
    """
    users, ends = parallel_windows(train, max_len, windows)
    starts = np.maximum(0, ends - max_len - 1)
    lengths = ends - starts - 1
    for idx in _bucketed_order(lengths, batch_size, rng):
        seqs = [train[u][a:e] for u, a, e in zip(users[idx], starts[idx], ends[idx], strict=True)]
        yield Batch(
            history=torch.from_numpy(left_pad([s[:-1] for s in seqs], max_len)),
            user=torch.from_numpy(users[idx]),
            targets=torch.from_numpy(left_pad([s[1:] for s in seqs], max_len)),
        )


def count_batches(
    train: Sequence[np.ndarray], layout: str, batch_size: int, max_len: int = 50, windows: str = "last"
) -> int:
    if layout == "prefix":
        n = int(sum(max(0, len(s) - 1) for s in train))
    else:
        n = len(parallel_windows(train, max_len, windows)[0])
    return (n + batch_size - 1) // batch_size


def train_batches(
    train: Sequence[np.ndarray],
    layout: str,
    max_len: int,
    batch_size: int,
    rng: np.random.Generator,
    windows: str = "last",
) -> Iterator[Batch]:
    if layout == "prefix":
        return prefix_batches(train, max_len, batch_size, rng)
    if layout == "parallel":
        return parallel_batches(train, max_len, batch_size, rng, windows)
    raise ValueError(f"unknown layout {layout!r}; expected 'prefix' or 'parallel'")


def eval_batches(
    users: np.ndarray, inputs: Sequence[np.ndarray], targets: np.ndarray, max_len: int, batch_size: int
) -> Iterator[tuple[np.ndarray, Batch]]:
    """Evaluation batches in length order (padding stays small). Yields (row indices, batch)."""
    lengths = np.array([min(len(s), max_len) for s in inputs])
    order = np.argsort(lengths, kind="stable")
    for i in range(0, len(order), batch_size):
        idx = order[i : i + batch_size]
        yield (
            idx,
            Batch(
                history=torch.from_numpy(left_pad([inputs[j] for j in idx], max_len)),
                user=torch.from_numpy(users[idx].astype(np.int64)),
                target=torch.from_numpy(targets[idx].astype(np.int64)),
            ),
        )
