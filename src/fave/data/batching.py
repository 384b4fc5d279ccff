"""Batches for training and evaluation.

Two training layouts:
- ``prefix`` (the paper's): one sample per training prefix, ``history = i_1..i_k``,
  ``target = i_{k+1}`` for k >= 1.
- ``parallel`` (for causal models): one sample per user, ``history = i_1..i_{n-1}``,
  ``targets = i_2..i_n``: every position is supervised in one pass.

Histories keep the last ``max_len`` items and are left-padded with 0. Batches are bucketed
by length: samples are sorted by length (random tie-break) and each batch is padded only to
its own longest history, so short histories are not padded to ``max_len``.
``balanced`` buckets too, but cuts the sorted samples into batches of about the same number of
supervised targets (the batch count stays that of fixed-size batches), as token-budget batching
in machine translation: with per-target mean losses, a target then weighs the same in every
batch, as in shuffled batches, at the padding cost of buckets.
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


BATCH_ORDERS = ("bucketed", "shuffled", "balanced")


def _bucketed_order(
    lengths: np.ndarray,
    batch_size: int,
    rng: np.random.Generator,
    order_by: str = "bucketed",
    targets: np.ndarray | None = None,
) -> list[np.ndarray]:
    """Cut the samples into batches in a random order.

    ``bucketed``: sorted by length with a random tie-break (little padding), batch order shuffled;
    ``shuffled``: a plain random permutation, as the authors' code (FAVE-NOTES sec. 9);
    ``balanced``: sorted as ``bucketed``, cut where the running count of supervised ``targets``
    (one per sample when None) crosses each multiple of total / batches, batch order shuffled.
    """
    if order_by not in BATCH_ORDERS:
        raise ValueError(f"unknown batch order {order_by!r}; expected one of {BATCH_ORDERS}")
    if order_by == "shuffled":
        order = rng.permutation(len(lengths))
        return [order[i : i + batch_size] for i in range(0, len(order), batch_size)]
    order = np.lexsort((rng.random(len(lengths)), lengths))
    if order_by == "balanced" and len(order):
        count = np.cumsum(np.ones(len(order)) if targets is None else targets[order])
        n_batches = -(-len(order) // batch_size)
        cuts = np.searchsorted(count, count[-1] * np.arange(1, n_batches) / n_batches, side="right")
        batches = [b for b in np.split(order, cuts) if len(b)]
    else:
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
    train: Sequence[np.ndarray], max_len: int, batch_size: int, rng: np.random.Generator, order_by: str = "bucketed"
) -> Iterator[Batch]:
    """The paper's layout: one sample per training prefix, bucketed by history length (or shuffled)."""
    users, cuts = prefix_samples(train)
    lengths = np.minimum(cuts, max_len)
    for idx in _bucketed_order(lengths, batch_size, rng, order_by):
        hist = [train[u][max(0, k - max_len) : k] for u, k in zip(users[idx], cuts[idx], strict=True)]
        target = np.array([train[u][k] for u, k in zip(users[idx], cuts[idx], strict=True)])
        yield Batch(
            history=torch.from_numpy(left_pad(hist, max_len)),
            user=torch.from_numpy(users[idx].astype(np.int64)),
            target=torch.from_numpy(target.astype(np.int64)),
        )


def parallel_windows(
    train: Sequence[np.ndarray], max_len: int, windows: str, offset_rng: np.random.Generator | None = None
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(user, end, supervised) of every training window ``seq[max(0, end - max_len - 1):end]``;
    ``supervised``: how many of the window's last targets carry a loss.

    ``last``: one window per user, its last ``max_len + 1`` items (original SASRec).
    ``all``: windows ending at n, n - max_len, n - 2 max_len, ...: every training target is
    supervised exactly once per epoch (the paper's recipe trains on every prefix). With
    ``offset_rng`` each user's window ends move by a random offset o in [0, max_len): the window
    ending at n supervises only its last o targets, the others end at n - o, n - o - max_len, ...
    Every target is still supervised exactly once, but with a context that changes between epochs.
    """
    users, ends, sup = [], [], []
    for u, s in enumerate(train):
        n = len(s)
        if n < 2:
            continue
        if windows == "last":
            stops, counts = [n], [min(max_len, n - 1)]
        else:
            o = int(offset_rng.integers(0, max_len)) if offset_rng is not None else 0
            rest = list(range(n - o, 1, -max_len)) if o < n - 1 else []
            stops = ([n] if o > 0 else []) + rest
            counts = ([min(o, n - 1)] if o > 0 else []) + [min(max_len, e - 1) for e in rest]
        users += [u] * len(stops)
        ends += stops
        sup += counts
    as_array = lambda x: np.asarray(x, dtype=np.int64)  # noqa: E731
    return as_array(users), as_array(ends), as_array(sup)


def parallel_batches(
    train: Sequence[np.ndarray],
    max_len: int,
    batch_size: int,
    rng: np.random.Generator,
    windows: str = "last",
    order_by: str = "bucketed",
    random_offsets: bool = False,
) -> Iterator[Batch]:
    """Windows of up to ``max_len + 1`` items, every supervised position a target, bucketed by length.

    Within a window, position i sees the window's items up to i (at most ``max_len``); targets
    that are not supervised (see :func:`parallel_windows`) are set to padding (0).
    """
    users, ends, sup = parallel_windows(train, max_len, windows, rng if random_offsets else None)
    starts = np.maximum(0, ends - max_len - 1)
    lengths = ends - starts - 1
    for idx in _bucketed_order(lengths, batch_size, rng, order_by, targets=sup):
        seqs = [train[u][a:e] for u, a, e in zip(users[idx], starts[idx], ends[idx], strict=True)]
        targets = [s[1:].copy() for s in seqs]
        for tgt, k in zip(targets, sup[idx], strict=True):
            tgt[: len(tgt) - k] = 0
        yield Batch(
            history=torch.from_numpy(left_pad([s[:-1] for s in seqs], max_len)),
            user=torch.from_numpy(users[idx]),
            targets=torch.from_numpy(left_pad(targets, max_len)),
        )


def count_batches(
    train: Sequence[np.ndarray], layout: str, batch_size: int, max_len: int = 50, windows: str = "last"
) -> int:
    """Batches per epoch (with random window offsets: about, at most one more window per user)."""
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
    order_by: str = "bucketed",
    random_offsets: bool = False,
) -> Iterator[Batch]:
    if layout == "prefix":
        return prefix_batches(train, max_len, batch_size, rng, order_by)
    if layout == "parallel":
        return parallel_batches(train, max_len, batch_size, rng, windows, order_by, random_offsets)
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
