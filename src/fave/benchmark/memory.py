"""Peak memory of one scoring call, counted on tensors rather than on the process.

``tracemalloc`` does not see torch's allocations and the process's peak RSS only grows,
so on the CPU the benchmark follows every tensor the call creates (a dispatch mode) and
reports the peak of their live bytes: activations, noise, score matrices; weights excluded.
On CUDA it uses the allocator's own peak. The same pass records which parameters the call
reads, so parameters used at inference (FAVE's training-only decoder excluded) are counted.
"""

from __future__ import annotations

import weakref
from dataclasses import dataclass

import torch
from torch import Tensor, nn
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_flatten

from fave.benchmark.flops import Scorer
from fave.data.batching import Batch


class PeakTensorMemory(TorchDispatchMode):
    """Live bytes of the storages created inside the mode, their peak, and the storages read."""

    def __init__(self) -> None:
        super().__init__()
        self.live = 0
        self.peak = 0
        self._tensors: set[int] = set()  # id() of tracked tensors still alive
        self._refs: dict[int, int] = {}  # storage pointer -> live tracked tensors on it
        self._bytes: dict[int, int] = {}
        self.read: set[int] = set()  # storage pointers of every op argument
        self._external: set[int] = set()  # storages made outside the mode (weights, inputs)

    def _release(self, tid: int, key: int) -> None:
        self._tensors.discard(tid)
        self._refs[key] -= 1
        if self._refs[key] == 0:
            self.live -= self._bytes.pop(key)
            del self._refs[key]

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        for a in tree_flatten((args, kwargs or {}))[0]:
            if isinstance(a, Tensor):
                key = a.untyped_storage().data_ptr()
                self.read.add(key)
                if key not in self._refs:
                    self._external.add(key)
        out = func(*args, **(kwargs or {}))
        for t in tree_flatten(out)[0]:
            if not isinstance(t, Tensor) or id(t) in self._tensors:
                continue
            storage = t.untyped_storage()
            key, nbytes = storage.data_ptr(), storage.nbytes()
            if nbytes == 0 or key in self._external:
                continue  # a view of a tensor made outside the mode (weights, inputs)
            self._tensors.add(id(t))
            if key not in self._refs:
                self._refs[key], self._bytes[key] = 0, nbytes
                self.live += nbytes
                self.peak = max(self.peak, self.live)
            self._refs[key] += 1
            weakref.finalize(t, self._release, id(t), key)
        return out


@dataclass
class MemoryResult:
    peak_mb: float  # peak live tensor memory of the call (CPU) or allocator peak (CUDA)
    inference_params: int  # parameters the call reads


@torch.no_grad()
def measure_memory(scorer: Scorer, batch: Batch, model: nn.Module | None) -> MemoryResult:
    """Peak memory of ``scorer(batch)`` and the number of parameters of ``model`` it reads."""
    device = batch.history.device
    if device.type == "cuda":
        torch.cuda.synchronize(device)
        torch.cuda.reset_peak_memory_stats(device)
        base = torch.cuda.memory_allocated(device)
    tracker = PeakTensorMemory()
    with tracker:
        scorer(batch)
    if device.type == "cuda":
        torch.cuda.synchronize(device)
        peak = torch.cuda.max_memory_allocated(device) - base
    else:
        peak = tracker.peak
    used = 0
    if model is not None:
        used = sum(p.numel() for p in model.parameters() if p.untyped_storage().data_ptr() in tracker.read)
    return MemoryResult(peak / 2**20, used)
