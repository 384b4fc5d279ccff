"""Most-popular baseline: every user gets items ranked by interaction count.

Counts come from the input part of every user's sequence at the phase being evaluated
(training parts for validation; training + validation parts for test). It has no
parameters, which makes it the model-free check of data, split and evaluator.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from fave.data.batching import Batch
from fave.models.base import LossOutput, SeqRecModel


@dataclass
class PopConfig:
    pass


class Pop(SeqRecModel):
    Config = PopConfig
    trainable = False

    def __init__(self, config: PopConfig, num_items: int) -> None:
        super().__init__(config, num_items)
        self.register_buffer("counts", torch.zeros(num_items))

    def observe(self, inputs: list[np.ndarray]) -> None:
        flat = np.concatenate([np.asarray(s, dtype=np.int64) for s in inputs]) if inputs else np.zeros(0, np.int64)
        counts = np.bincount(flat, minlength=self.num_items + 1)[1:]
        self.counts = torch.as_tensor(counts, dtype=torch.float32)

    def loss(self, batch: Batch) -> LossOutput:
        raise RuntimeError("pop has nothing to train")

    def score_all(self, batch: Batch) -> Tensor:
        return self.counts.unsqueeze(0).expand(len(batch), -1)
