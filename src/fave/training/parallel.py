"""One global batch split over processes and micro-batches, with the gradient of the whole batch.

``train.batch_size`` is the global batch. With W processes (torchrun) and A =
``train.micro_batches`` in each, every batch is cut into S = W * A parts (rows split as evenly as
possible: part sizes differ by at most one), and process r computes parts r*A .. r*A + A - 1. Every
process builds the same global batches from the same seed, so only gradients travel.

The losses are means over a batch's supervised targets (every real target position of a parallel
batch, one per row of a prefix batch). Part s, with n_s of the batch's N targets, is weighted by
``W * n_s / N``: summed over a process's parts and averaged over the W processes by
DistributedDataParallel, the gradient is the whole batch's, however unevenly its targets fall.
A loss term normalised otherwise (BERT4Rec's masked positions, AutoSeqRec's rows, the flow
models' sampled history reconstruction) gets the target-weighted mean of its parts instead.

Part s draws its random numbers (dropout, noise, times) from stream s of the epoch; stream 0 is
the epoch's own seed, so one process with one part trains exactly as before. One process with
A = W parts therefore reproduces a W-process run draw for draw; W processes against one plain
process agree exactly only where the loss draws nothing.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from fave.data.batching import Batch
from fave.distributed import World
from fave.errors import FaveError
from fave.models.base import SeqRecModel


def supervised(batch: Batch) -> int:
    """How many targets ``batch`` supervises: real positions of ``targets`` (parallel), else one per row."""
    if batch.targets is not None:
        return int((batch.targets > 0).sum())
    return len(batch)


def take_rows(batch: Batch, start: int, stop: int) -> Batch:
    """Rows ``start:stop`` of ``batch`` (the padded width is kept: each row is what the whole batch holds)."""
    rows = slice(start, stop)
    pick = lambda x: None if x is None else x[rows]  # noqa: E731
    return Batch(batch.history[rows], batch.user[rows], pick(batch.target), pick(batch.targets))


@dataclass
class Part:
    """One process's share of a global batch: its rows, its random stream, its share of the targets."""

    batch: Batch
    stream: int  # index among the S parts, and of the random stream it draws from
    share: float  # n_s / N: the fraction of the global batch's supervised targets in these rows


@dataclass(frozen=True)
class BatchPlan:
    """How a global batch is cut: S = ``world.size * micro_batches`` parts, this process's ``micro_batches`` of them."""

    world: World
    micro_batches: int = 1

    @property
    def parts(self) -> int:
        return self.world.size * self.micro_batches

    @property
    def streams(self) -> list[int]:
        """The parts (and random streams) this process computes."""
        first = self.world.rank * self.micro_batches
        return list(range(first, first + self.micro_batches))

    def check(self, batch_size: int) -> None:
        """Full batches must split evenly, or ranks would train on different numbers of rows."""
        if batch_size % self.parts:
            raise FaveError(
                f"train.batch_size={batch_size} is the global batch and must be divisible by "
                f"{self.world.size} process(es) x train.micro_batches={self.micro_batches} = {self.parts}; "
                f"set batch_size to a multiple of {self.parts}"
            )

    def mine(self, batch: Batch) -> list[Part]:
        """This process's parts of ``batch``. A part left without rows (the epoch's last, short batch)
        computes the first row with share 0, so that every process still joins the gradient all-reduce."""
        n, S = len(batch), self.parts
        if S == 1:
            return [Part(batch, 0, 1.0)]
        bounds = np.cumsum([0] + [n // S + (s < n % S) for s in range(S)])
        total = max(1, supervised(batch))
        out = []
        for s in self.streams:
            rows = take_rows(batch, int(bounds[s]), int(bounds[s + 1]))
            out.append(Part(rows, s, supervised(rows) / total) if len(rows) else Part(take_rows(batch, 0, 1), s, 0.0))
        return out


def stream_seed(seed: int, stream: int) -> int:
    """The seed of random stream ``stream`` of an epoch seeded ``seed`` (stream 0: ``seed`` itself)."""
    if stream == 0:
        return seed
    return int(np.random.SeedSequence([seed, stream]).generate_state(1, dtype=np.uint64)[0] >> 1)


class RandomStreams:
    """torch's global generators (CPU, and the training GPU's) as one stream per part.

    Models draw from the global generators; each part's draws continue its own stream from batch
    to batch, so a part's numbers do not depend on how many other parts share the process. With a
    single stream the generators are only seeded, never switched.
    """

    def __init__(self, seed: int, streams: list[int], device: torch.device) -> None:
        self.cuda = device if device.type == "cuda" else None
        self.states: dict[int, tuple[Tensor, Tensor | None]] = {}
        for s in streams:
            torch.manual_seed(stream_seed(seed, s))
            if len(streams) > 1:
                self.states[s] = self._get()

    def _get(self) -> tuple[Tensor, Tensor | None]:
        return torch.get_rng_state(), torch.cuda.get_rng_state(self.cuda) if self.cuda else None

    @contextmanager
    def use(self, stream: int) -> Iterator[None]:
        if not self.states:
            yield
            return
        cpu, gpu = self.states[stream]
        torch.set_rng_state(cpu)
        if gpu is not None:
            torch.cuda.set_rng_state(gpu, self.cuda)
        try:
            yield
        finally:
            self.states[stream] = self._get()


class LossStep(nn.Module):
    """The model's weighted loss as a forward pass: the module DistributedDataParallel wraps.

    DDP hooks ``forward``, the models expose ``loss``. Only the parameters that train in this
    stage are registered (the model itself is not a submodule), so DDP reduces their gradients and
    nothing else: buffers (pop counts, AutoSeqRec's sparse matrices) are computed alike on every rank.
    """

    def __init__(self, model: SeqRecModel) -> None:
        super().__init__()
        self.trained = nn.ParameterList([p for p in model.parameters() if p.requires_grad])
        self.__dict__["model"] = model

    def forward(self, batch: Batch, weight: float) -> tuple[Tensor, Tensor, dict[str, float]]:
        """-> (``weight`` x loss, to backpropagate; the loss, detached; its named parts)."""
        out = self.model.loss(batch)
        weighted = out.loss if weight == 1.0 else out.loss * weight
        return weighted, out.loss.detach(), out.parts


def wrap(step: LossStep, world: World, device: torch.device) -> nn.Module:
    """``step`` as DistributedDataParallel when there are several processes.

    DDP's fast path: every trainable parameter must get a gradient from every loss (the model
    contract, tests/models/test_contract.py), which spares DDP a search of the graph per step."""
    if not world.distributed:
        return step
    from torch.nn.parallel import DistributedDataParallel

    ids: Any = [device.index] if device.type == "cuda" else None
    return DistributedDataParallel(step, device_ids=ids)
