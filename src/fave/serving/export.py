"""``fave export``: a run's inference graph as ONNX or TorchScript, checked against the library.

FAVE (after Stage 2, anchor prior) exports its one-step graph with the random draws as inputs:
``(history [B, L] int64, column [B] int64, keep [B, D] float32) -> scores [B, N]``
(:class:`fave.serving.scoring.OneStepAnchor`); models without draws at inference export
``history -> scores``. Column j of the scores is the raw item ``items[j]`` of the sidecar
``OUT.json``, which also holds what is needed to draw ``column`` and ``keep`` (docs/serving.md).
Fed the draws the library makes (:func:`fave.serving.scoring.anchor_draws`, seeded by the
eval seed), the exported model gives the library's top-K.
"""

from __future__ import annotations

import time
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from fave.data.batching import Batch
from fave.errors import FaveError
from fave.io_utils import atomic_write, atomic_write_json, atomic_write_text
from fave.models.base import SeqRecModel
from fave.rundir import load_run
from fave.serving.recommender import Recommender
from fave.serving.scoring import Scorer

FORMATS = ("onnx", "torchscript")
VERIFY_K = 10


class ScoreAll(nn.Module):
    """``history [B, L] -> score_all [B, N]`` for a model without random draws at inference."""

    def __init__(self, model: SeqRecModel) -> None:
        super().__init__()
        self.model = model

    def forward(self, history: Tensor) -> Tensor:
        return self.model.score_all(Batch(history=history, user=torch.zeros_like(history[:, 0])))


def inference_graph(scorer: Scorer) -> tuple[nn.Module, list[str]]:
    """The module to export and its input names, or a FaveError for a model with draws inside."""
    if scorer.kind == "one-step":
        return scorer.graph.eval(), ["history", "column", "keep"]
    if scorer.kind == "batched" and type(scorer.model).__name__ != "Pop":
        return ScoreAll(scorer.model).eval(), ["history"]
    raise FaveError(
        f"{type(scorer.model).__name__} cannot be exported: only FAVE after Stage 2 (anchor prior) and models "
        "without random draws at inference (SASRec, GRU4Rec, ...) have a fixed one-call graph"
    )


def example_inputs(scorer: Scorer, batch: int = 3) -> tuple[Tensor, ...]:
    width = max(2, min(7, scorer.max_len))
    g = torch.Generator().manual_seed(0)
    history = torch.randint(1, scorer.model.num_items + 1, (batch, width), generator=g)
    if scorer.kind != "one-step":
        return (history,)
    d = scorer.draws([h.numpy() for h in history], width)
    return history, d.column, d.keep


def _write_onnx(module: nn.Module, inputs: tuple[Tensor, ...], names: list[str], max_len: int, tmp: str) -> None:
    try:
        import onnxscript  # noqa: F401  (torch's ONNX exporter needs it)
    except ImportError:
        raise FaveError("ONNX export needs onnx and onnxscript: pip install 'fave[export]'") from None
    batch = torch.export.Dim("batch", min=1, max=1 << 16)
    length = torch.export.Dim("length", min=1, max=max(2, max_len))
    shapes = {n: ({0: batch, 1: length} if n == "history" else {0: batch}) for n in names}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        program = torch.onnx.export(
            module, inputs, input_names=names, output_names=["scores"], dynamic_shapes=shapes, dynamo=True
        )
        program.save(tmp)


def _write_torchscript(module: nn.Module, inputs: tuple[Tensor, ...], tmp: str) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        traced = torch.jit.trace(module, inputs, check_trace=False)
    traced.save(tmp)


def export_run(run_dir: str | Path, fmt: str, out: str | Path) -> dict[str, Any]:
    """Write the run's inference graph to ``out`` (atomically) and its sidecar ``out.json``."""
    if fmt not in FORMATS:
        raise FaveError(f"--format {fmt!r}; allowed: {', '.join(FORMATS)}")
    model, config, id_map = load_run(run_dir)
    scorer = Scorer(model, config.data.max_len, config.train.eval_seed)
    module, names = inference_graph(scorer)
    inputs = example_inputs(scorer)
    with torch.no_grad():
        if fmt == "onnx":
            atomic_write(out, lambda tmp: _write_onnx(module, inputs, names, config.data.max_len, tmp))
        else:
            atomic_write(out, lambda tmp: _write_torchscript(module, inputs, tmp))
    sidecar = Path(str(out) + ".json")
    meta: dict[str, Any] = {
        "format": fmt,
        "model": config.model,
        "run_dir": str(run_dir),
        "inputs": names,
        "outputs": ["scores"],
        "max_len": config.data.max_len,
        "num_items": model.num_items,
        "items": list(id_map.items),  # scores column j is raw item items[j]
    }
    if scorer.kind == "one-step":
        meta.update(hidden=model.config.hidden, p_keep=scorer.p_keep, eval_seed=scorer.seed)
    atomic_write_json(sidecar, meta)
    return {**meta, "sidecar": str(sidecar)}


class Exported:
    """A loaded exported graph: ``inputs (numpy) -> scores [B, N]`` (numpy)."""

    def __init__(self, path: str | Path, fmt: str, threads: int) -> None:
        self.fmt = fmt
        if fmt == "onnx":
            try:
                import onnxruntime as ort
            except ImportError:
                raise FaveError("checking an ONNX export needs onnxruntime: pip install 'fave[export]'") from None
            options = ort.SessionOptions()
            options.intra_op_num_threads = threads
            self.session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
            self.names = [i.name for i in self.session.get_inputs()]
        else:
            self.module = torch.jit.load(str(path), map_location="cpu")  # TorchScript: no pickle
            self.module.eval()

    def __call__(self, *inputs: np.ndarray) -> np.ndarray:
        if self.fmt == "onnx":
            return self.session.run(None, dict(zip(self.names, inputs, strict=True)))[0]
        with torch.no_grad():
            return self.module(*(torch.from_numpy(x) for x in inputs)).numpy()


def exported_inputs(scorer: Scorer, histories: list[np.ndarray]) -> tuple[np.ndarray, ...]:
    """What the exported graph takes for these histories: the padded ids (and the library's draws)."""
    history = scorer.pad(histories)
    if scorer.kind != "one-step":
        return (history.numpy(),)
    d = scorer.draws(histories, history.shape[1])
    return history.numpy(), d.column.numpy(), d.keep.numpy()


def top_k(scores: np.ndarray, histories: list[np.ndarray], k: int) -> list[list[int]]:
    """Top-k columns per row with each row's history left out (as the library does)."""
    out = []
    for row, h in zip(scores, histories, strict=True):
        row = row.astype(np.float64).copy()
        row[np.asarray(h, dtype=np.int64) - 1] = -np.inf
        best = np.argpartition(-row, k)[:k]
        out.append(best[np.argsort(-row[best], kind="stable")].tolist())
    return out


def _median_ms(fn, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return float(np.median(times) * 1000)


def verify_export(
    run_dir: str | Path,
    path: str | Path,
    fmt: str,
    data_dir: str | None = None,
    out: str | Path | None = None,
    batch_size: int = 256,
    repeats: int = 300,
) -> dict[str, Any]:
    """Top-10 of the exported graph against the library's for every test user, and both latencies."""
    from fave.data.load import load_split

    rec = Recommender.from_run(run_dir, data_dir)
    _, config, _ = load_run(run_dir)
    try:
        split = load_split(config, data_dir)
    except FaveError as e:
        raise FaveError(f"--verify needs the run's dataset: {e}") from None
    test = split.eval_set("test")
    exported = Exported(path, fmt, torch.get_num_threads())
    histories = [np.asarray(h[-config.data.max_len :], dtype=np.int64) for h in test.inputs]
    same, max_diff = 0, 0.0
    for start in range(0, len(histories), batch_size):
        chunk = histories[start : start + batch_size]
        theirs = exported(*exported_inputs(rec.scorer, chunk))
        ours = rec.scorer(chunk).numpy()
        max_diff = max(max_diff, float(np.abs(theirs - ours).max()))
        lib = rec.answer([rec.make_query(h, VERIFY_K, True) for h in chunk])
        lib_cols = [[rec.item_index[i] - 1 for i, _ in r] for r in lib]
        same += sum(a == b for a, b in zip(top_k(theirs, chunk, VERIFY_K), lib_cols, strict=True))
    rng = np.random.default_rng(0)
    picks = [histories[i] for i in rng.integers(0, len(histories), size=repeats)]
    raw = iter([[rec.id_map.raw_item(int(i)) for i in h] for h in picks])
    for_export, for_scores = iter(picks), iter(picks)

    def exported_recommend() -> None:
        h = next(for_export)
        top_k(exported(*exported_inputs(rec.scorer, [h])), [h], VERIFY_K)

    lib_ms = _median_ms(lambda: rec.recommend(next(raw), VERIFY_K), repeats)
    exp_ms = _median_ms(exported_recommend, repeats)
    lib_fwd_ms = _median_ms(lambda: rec.scorer([next(for_scores)]), repeats)
    report: dict[str, Any] = {
        "run_dir": str(run_dir),
        "dataset": config.dataset,
        "model": config.model,
        "format": fmt,
        "file": str(path),
        "users": len(histories),
        "identical_top10": same,
        "max_abs_score_diff": max_diff,
        "batch1_ms": {"library_recommend": lib_ms, "library_scores": lib_fwd_ms, f"{fmt}_recommend": exp_ms},
        "threads": torch.get_num_threads(),
        "repeats": repeats,
    }
    report["summary"] = (
        f"{fmt} export of {run_dir}: identical top-{VERIFY_K} for {same}/{len(histories)} test users "
        f"(max |score diff| {max_diff:.2e}); batch-1 median: library {lib_ms:.2f} ms, {fmt} {exp_ms:.2f} ms "
        f"(draws + graph + top-{VERIFY_K}; {torch.get_num_threads()} threads)"
    )
    if out is not None:
        atomic_write_json(Path(str(out) + ".json"), report)
        atomic_write_text(Path(str(out) + ".md"), _markdown(report))
    return report


def _markdown(r: dict[str, Any]) -> str:
    ms = r["batch1_ms"]
    rows = "\n".join(f"| {name} | {v:.3f} |" for name, v in ms.items())
    return (
        f"# Export check: {r['format']} of {r['run_dir']} ({r['model']}, {r['dataset']})\n\n"
        f"{r['summary']}.\n\n| batch-1 path | median ms |\n|---|---|\n{rows}\n\n"
        f"Median of {r['repeats']} calls on random test users; `library_scores` is the library's draws + "
        "forward without top-K. Machine: 2 shared CPU cores with a background training running: compare "
        "only the ratios within this file.\n"
    )
