"""A one-step flow model's network as bench scorers: its latency floor, and FAVE's optimised path.

The floor is one bare forward pass of the network plus scoring against all items, in eager
torch, with the prior construction (anchor sampling, masks) left out: for FAVE
``net(history, x_0, t = 0, r = 1)`` at the last position, ``@ E^T``, computed as the model's own
inference computes it (the last block at the last position only, ``last_only``), so the floor and
FAVE's row do the same arithmetic and their ratio measures the runtime alone. FAVE's own row runs the
optimised path (:func:`row_path`): the one-step graph exported to ONNX on the fly and run by
ONNX Runtime with the library's draws, checked against eager on every test user
(:func:`same_top_k`); the issue's goal is FAVE's batch-1 latency at most half the floor's.
"""

from __future__ import annotations

import contextlib
import importlib.util
import io
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import Tensor, nn

from fave.benchmark.flops import Scorer
from fave.data.batching import Batch
from fave.data.dataset import EvalSet
from fave.errors import FaveError
from fave.models.base import SeqRecModel
from fave.models.flow_backbone import FlowBackbone
from fave.serving.scoring import Scorer as ServingScorer
from fave.serving.scoring import is_one_step_anchor


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
        return self.net(batch.history, x_0, t, r, last_only=True)[0][:, -1] @ self.net.items.T


# -- FAVE's row: the optimised path ----------------------------------------------------------

PATHS = ("auto", "onnx", "eager")  # BenchSettings.fave_path
TOP_K = 10


@dataclass
class RowPath:
    """How a model's row is timed: ``scorer`` (batch -> scores) on ``path`` (onnx or eager), with
    ``note`` saying why an eager fallback happened; ``runtime`` the serving scorer behind an onnx row."""

    scorer: Scorer
    path: str = "eager"
    note: str | None = None
    runtime: ServingScorer | None = None


class OnnxOneStep:
    """``batch -> scores [B, N]`` through ONNX Runtime: FAVE's one-step graph exported by
    :mod:`fave.serving.export`, fed the library's per-history draws by the serving
    :class:`~fave.serving.scoring.Scorer` (seeded), exactly as ``fave serve --onnx`` scores."""

    def __init__(self, scorer: ServingScorer) -> None:
        self.scorer = scorer

    def __call__(self, batch: Batch) -> Tensor:
        return self.scorer.padded(batch.history)  # [B, L] left-padded


def _missing_onnx() -> str | None:
    """Why the ONNX path cannot run here (None: it can)."""
    missing = [m for m in ("onnxruntime", "onnxscript") if importlib.util.find_spec(m) is None]
    return f"{' and '.join(missing)} not installed (pip install 'fave[export]')" if missing else None


def onnx_runtime(model: SeqRecModel, max_len: int, seed: int) -> ServingScorer:
    """Export ``model``'s one-step graph into a temporary directory (from the weights in memory)
    and load it into ONNX Runtime with torch's thread count; -> the serving scorer running it."""
    from fave.serving.export import Exported, _write_onnx, example_inputs, inference_graph

    eager = ServingScorer(model, max_len, seed)
    module, names = inference_graph(eager)
    with tempfile.TemporaryDirectory(prefix="fave-bench-") as tmp, torch.no_grad():
        path = str(Path(tmp) / "fave.onnx")
        with contextlib.redirect_stdout(io.StringIO()):  # the exporter's progress lines
            _write_onnx(module, example_inputs(eager), names, max_len, path)
        runtime = Exported(path, "onnx", torch.get_num_threads(), spin=False)  # the session holds the graph
    return ServingScorer(model, max_len, seed, runtime=runtime)


def row_path(model: SeqRecModel, max_len: int, seed: int, device: torch.device, mode: str = "auto") -> RowPath:
    """The path of a model's row: FAVE after Stage 2 (anchor prior) runs its exported one-step graph
    in ONNX Runtime unless ``mode`` is "eager"; any other model, or no onnxruntime under "auto",
    runs ``score_all`` in eager torch (FAVE's row then says why). "onnx" makes a fallback an error."""
    if mode not in PATHS:
        raise FaveError(f"fave path {mode!r}; allowed: {', '.join(PATHS)}")
    eager = RowPath(model.score_all)
    if type(model).__name__ != "FAVE":
        return eager
    if mode == "eager":
        return RowPath(model.score_all, note="eager torch (asked for)")
    why = _missing_onnx()
    if not is_one_step_anchor(model):
        why = "no one-step graph to export (FAVE Stage 1 or the Gaussian prior)"
    elif device.type != "cpu":
        why = f"the ONNX Runtime path runs on the CPU, the bench on {device.type}"
    if why is not None:
        if mode == "onnx":
            raise FaveError(f"--fave-path onnx: {why}")
        return RowPath(model.score_all, note=f"eager torch: {why}")
    runtime = onnx_runtime(model, max_len, seed)
    return RowPath(OnnxOneStep(runtime), "onnx", runtime=runtime)


def same_top_k(
    fast: ServingScorer, eval_set: EvalSet, max_len: int, batch_size: int = 512, k: int = TOP_K
) -> dict[str, float | int]:
    """Top-``k`` (history left out) of ``fast`` against the same one-step graph in eager torch with
    the same draws (which is ``score_all`` of each history alone under the seed, tests/serving)
    for every user of ``eval_set``: identical users, users and the largest score difference."""
    from fave.serving.export import top_k

    eager = ServingScorer(fast.model, max_len, fast.seed)
    histories = [np.asarray(h[-max_len:], dtype=np.int64) for h in eval_set.inputs]
    same, diff = 0, 0.0
    for start in range(0, len(histories), batch_size):
        chunk = histories[start : start + batch_size]
        ours, theirs = eager(chunk).numpy(), fast(chunk).numpy()
        diff = max(diff, float(np.abs(ours - theirs).max()))
        same += sum(a == b for a, b in zip(top_k(theirs, chunk, k), top_k(ours, chunk, k), strict=True))
    return {"identical": same, "users": len(histories), "k": k, "max_abs_score_diff": diff}
