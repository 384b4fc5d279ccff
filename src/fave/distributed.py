"""Several processes training one model (torchrun): who is who, how they join, how they agree.

A process learns its place from the variables torchrun sets (``WORLD_SIZE``, ``RANK``,
``LOCAL_RANK``, ``MASTER_ADDR``/``MASTER_PORT``). Without them, or with ``WORLD_SIZE=1``, a run
is one process and nothing here communicates: :data:`SINGLE` answers every collective itself,
so the single-process code path is the distributed one with a world of one.

Rank 0 alone writes the run directory and prints; what it decides alone (is this run directory
ours, where does a resumed run stand) reaches the others through :meth:`World.on_main`, so a
user error on rank 0 becomes the same one-line error on every rank instead of a hang.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, TypeVar

import torch
import torch.distributed as dist

from fave.config import TrainConfig
from fave.errors import FaveError

T = TypeVar("T")
BACKENDS = ("auto", "gloo", "nccl")


@dataclass(frozen=True)
class World:
    """This process's place among ``size`` training processes; ``device`` carries the collectives' tensors."""

    rank: int = 0
    size: int = 1
    local_rank: int = 0
    device: str = "cpu"

    @property
    def main(self) -> bool:
        """Whether this process writes the run directory and the log (rank 0)."""
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.size > 1

    def barrier(self) -> None:
        if self.distributed:
            dist.barrier()

    def broadcast(self, obj: T) -> T:
        """Rank 0's ``obj`` on every rank (pickled: for results and states, not per-step tensors)."""
        if not self.distributed:
            return obj
        box = [obj]
        dist.broadcast_object_list(box, src=0, device=torch.device(self.device))
        return box[0]

    def gather(self, obj: Any) -> list[Any]:
        """Every rank's ``obj``, in rank order, on every rank."""
        if not self.distributed:
            return [obj]
        out: list[Any] = [None] * self.size
        dist.all_gather_object(out, obj)
        return out

    def sum(self, values: list[float]) -> list[float]:
        """Element-wise sums over the ranks (float64, so counts and loss sums stay exact enough)."""
        if not self.distributed:
            return list(values)
        t = torch.tensor(values, dtype=torch.float64, device=self.device)
        dist.all_reduce(t, op=dist.ReduceOp.SUM)
        return t.tolist()

    def max(self, value: float) -> float:
        """The largest ``value`` over the ranks: one clock for decisions every rank must take alike."""
        if not self.distributed:
            return value
        t = torch.tensor([value], dtype=torch.float64, device=self.device)
        dist.all_reduce(t, op=dist.ReduceOp.MAX)
        return float(t.item())

    def on_main(self, fn: Callable[[], T]) -> T:
        """``fn()`` run by rank 0 alone, its result on every rank; a FaveError it raises is raised on every rank."""
        if not self.distributed:
            return fn()
        outcome: tuple[bool, Any] = (True, None)
        if self.main:
            try:
                outcome = (True, fn())
            except FaveError as e:
                outcome = (False, str(e))
        ok, value = self.broadcast(outcome)
        if not ok:
            raise FaveError(value)
        return value


SINGLE = World()


def _env_int(env: Mapping[str, str], name: str, default: int) -> int:
    raw = env.get(name)
    if raw is None or raw == "":
        return default
    try:
        return int(raw)
    except ValueError:
        raise FaveError(f"{name}={raw!r} is not an integer; launch with torchrun, which sets it") from None


def world_from_env(env: Mapping[str, str] = os.environ) -> World:
    """The world torchrun describes in ``env`` (a single process when ``WORLD_SIZE`` is unset)."""
    size = _env_int(env, "WORLD_SIZE", 1)
    rank = _env_int(env, "RANK", 0)
    local = _env_int(env, "LOCAL_RANK", rank)
    if size < 1 or not 0 <= rank < size or local < 0:
        raise FaveError(f"RANK={rank} WORLD_SIZE={size} LOCAL_RANK={local}: need 0 <= RANK < WORLD_SIZE")
    return World(rank, size, local)


def backend_for(tc: TrainConfig, device: torch.device) -> str:
    """``train.dist_backend`` checked against the device: nccl moves CUDA tensors, gloo CPU (or CUDA) ones."""
    name = tc.dist_backend
    if name == "auto":
        return "nccl" if device.type == "cuda" else "gloo"
    if name == "nccl":
        if not torch.cuda.is_available() or not dist.is_nccl_available():
            raise FaveError("train.dist_backend=nccl needs CUDA GPUs and an NCCL build of torch; use gloo (or auto)")
        if device.type != "cuda":
            raise FaveError(f"train.dist_backend=nccl with train.device={device}: nccl needs device=cuda; use gloo")
    return name


def rank_device(device: torch.device, world: World) -> torch.device:
    """The device of this rank: ``cuda:LOCAL_RANK`` when training on GPUs (one GPU per process), else ``device``."""
    if device.type != "cuda" or not world.distributed:
        return device
    if world.local_rank >= torch.cuda.device_count():
        raise FaveError(
            f"LOCAL_RANK={world.local_rank} but only {torch.cuda.device_count()} GPU(s) are visible; "
            "start at most one process per GPU (torchrun --nproc-per-node)"
        )
    return torch.device("cuda", world.local_rank)


def _connect(world: World, backend: str, timeout_s: float) -> None:
    """init_process_group, bounded by ``timeout_s``; an unreachable or missing rendezvous is a FaveError."""
    addr, port = os.environ.get("MASTER_ADDR"), os.environ.get("MASTER_PORT")
    if not addr or not port:
        raise FaveError(
            f"WORLD_SIZE={world.size} is set but MASTER_ADDR/MASTER_PORT are not; launch with torchrun "
            "(or `fave train --nproc N`), which sets them"
        )
    try:
        dist.init_process_group(
            backend, init_method="env://", rank=world.rank, world_size=world.size, timeout=timedelta(seconds=timeout_s)
        )
    except (RuntimeError, ValueError, OSError) as e:  # DistStoreError and DistNetworkError are RuntimeErrors
        reason = str(e).strip().splitlines()[0][:200] if str(e).strip() else e.__class__.__name__
        raise FaveError(
            f"rank {world.rank} of {world.size} could not join the process group at {addr}:{port} within "
            f"{timeout_s:g} s ({reason}); check that every rank is started and that MASTER_ADDR/MASTER_PORT "
            "(torchrun's --rdzv-endpoint) reach rank 0, or raise train.dist_timeout_s"
        ) from None


@contextmanager
def joined(tc: TrainConfig, device: torch.device) -> Iterator[tuple[World, torch.device]]:
    """This process's world and device for a run, the process group joined for its duration.

    A group that is already initialised (by a caller, or a test harness) is used and left open;
    one this function opens it closes. A world of one joins nothing.
    """
    if dist.is_available() and dist.is_initialized():
        world = World(dist.get_rank(), dist.get_world_size(), world_from_env().local_rank)
        device = rank_device(device, world)
        yield _with_device(world, device), device
        return
    world = world_from_env()
    if not world.distributed:
        yield world, device
        return
    if not dist.is_available():
        raise FaveError(f"WORLD_SIZE={world.size} but this torch build has no torch.distributed")
    backend = backend_for(tc, device)
    device = rank_device(device, world)
    if device.type == "cuda":
        torch.cuda.set_device(device)
    _connect(world, backend, tc.dist_timeout_s)
    try:
        yield _with_device(world, device), device
    finally:
        dist.destroy_process_group()


def _with_device(world: World, device: torch.device) -> World:
    """``world`` whose collectives use ``device``'s kind (nccl reduces CUDA tensors only)."""
    on_cuda = dist.get_backend() == "nccl"
    return World(world.rank, world.size, world.local_rank, str(device) if on_cuda else "cpu")
