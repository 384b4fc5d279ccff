"""FLOPs of a whole recommendation, counted by ``torch.utils.flop_counter.FlopCounterMode``.

The counter sees matrix products (linear layers, attention, scoring against all items) and
convolutions, i.e. what dominates; element-wise work (norms, activations, the samplers'
updates) is not counted, as in the usual profilers (thop, fvcore).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

import torch
from torch import Tensor
from torch.utils.flop_counter import FlopCounterMode

from fave.data.batching import Batch

Scorer = Callable[[Batch], Tensor]  # a batch of users -> scores [B, N]


@torch.no_grad()
def count_flops(scorer: Scorer, batches: Iterable[Batch]) -> int:
    """Total FLOPs of ``scorer`` over ``batches`` (every sampling step included)."""
    counter = FlopCounterMode(display=False)
    with counter:
        for batch in batches:
            scorer(batch)
    return int(counter.get_total_flops())
