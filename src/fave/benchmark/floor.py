"""The latency floor of a one-step flow model: one bare forward pass of its network plus
scoring against all items, with the prior construction (anchor sampling, masks) left out.

For FAVE this is ``net(history, x_0, t = 0, r = 1)`` at the last position, ``@ E^T``; the
gap between FAVE's measured latency and this floor is what its prior and bookkeeping cost.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from fave.data.batching import Batch
from fave.models.flow_backbone import FlowBackbone


def flow_net(model: nn.Module) -> FlowBackbone | None:
    """The model's shared flow approximator, if it has one (FAVE, FMRec, DiffuRec)."""
    net = getattr(model, "net", None)
    return net if isinstance(net, FlowBackbone) else None


class FloorScorer:
    """``batch -> net(history, x_0, 0, 1)[:, -1] @ E^T`` with x_0, t, r made once per batch size."""

    def __init__(self, net: FlowBackbone) -> None:
        self.net = net
        self._inputs: dict[tuple[int, str], tuple[Tensor, Tensor, Tensor]] = {}

    def _prepared(self, batch_size: int, device: torch.device) -> tuple[Tensor, Tensor, Tensor]:
        key = (batch_size, str(device))
        if key not in self._inputs:
            x_0 = torch.zeros(batch_size, self.net.config.hidden, device=device)
            t = torch.zeros(batch_size, device=device)
            self._inputs[key] = (x_0, t, torch.ones_like(t))
        return self._inputs[key]

    def __call__(self, batch: Batch) -> Tensor:
        x_0, t, r = self._prepared(len(batch), batch.history.device)
        return self.net(batch.history, x_0, t, r)[0][:, -1] @ self.net.items.T
