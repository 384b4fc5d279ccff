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

import json
import os
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
    """A loaded exported graph: ``inputs (numpy) -> scores [B, N]`` (numpy). ``spin=False`` turns ONNX
    Runtime's spin-wait of its pool threads off (the bench: spinning after a call would slow the model
    timed next on the same cores)."""

    def __init__(self, path: str | Path, fmt: str, threads: int, spin: bool = True) -> None:
        self.fmt = fmt
        if fmt == "onnx":
            try:
                import onnxruntime as ort
            except ImportError:
                raise FaveError("checking an ONNX export needs onnxruntime: pip install 'fave[export]'") from None
            options = ort.SessionOptions()
            options.intra_op_num_threads = threads
            if not spin:
                options.add_session_config_entry("session.intra_op.allow_spinning", "0")
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


def load_runtime(path: str | Path, config: Any, id_map: Any, model: SeqRecModel) -> Exported:
    """An ONNX export of this run, checked against its sidecar, ready to score (ONNX Runtime)."""
    sidecar = Path(str(path) + ".json")
    if not Path(path).is_file() or not sidecar.is_file():
        raise FaveError(
            f"{path} or its sidecar {sidecar.name} is missing; write both with `fave export RUN --out {path}`"
        )
    try:
        meta = json.loads(sidecar.read_text(encoding="utf-8"))
    except (ValueError, UnicodeDecodeError):
        meta = None
    expected = {"format": "onnx", "model": config.model, "max_len": config.data.max_len, "items": list(id_map.items)}
    if type(model).__name__ == "FAVE":
        expected["hidden"] = model.config.hidden
    if not isinstance(meta, dict) or any(meta.get(k) != v for k, v in expected.items()):
        raise FaveError(f"{path} was not exported from this run (its sidecar differs); rerun `fave export` for it")
    return Exported(path, "onnx", torch.get_num_threads())


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
    repeats: int = 200,
    rounds: int = 3,
    compare_compile: bool = False,
    command: str = "",
) -> dict[str, Any]:
    """Top-10 of the exported graph against the library's for every test user, and the batch-1
    latency of ``recommend`` with torch eager, with the export as the runtime (and torch.compile)."""
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
    if rec.scorer.kind == "one-step" and not rec.scorer.graph.net.encoder.hide_padding:
        batch_size = 1  # padding keys are attended to: the graph sees one unpadded history at a time
    for start in range(0, len(histories), batch_size):
        chunk = histories[start : start + batch_size]
        theirs = exported(*exported_inputs(rec.scorer, chunk))
        ours = rec.scorer(chunk).numpy()
        max_diff = max(max_diff, float(np.abs(theirs - ours).max()))
        lib = rec.answer([rec.make_query(h, VERIFY_K, True) for h in chunk])
        lib_cols = [[rec.item_index[i] - 1 for i, _ in r] for r in lib]
        same += sum(a == b for a, b in zip(top_k(theirs, chunk, VERIFY_K), lib_cols, strict=True))
    engines = {
        "torch eager": rec,
        fmt: Recommender(rec.model, rec.id_map, rec.max_len, seed=rec.seed, runtime=exported),
    }
    if compare_compile:  # torch.compile of the same graph (compile time reported apart)
        compiled = Recommender(rec.model, rec.id_map, rec.max_len, seed=rec.seed)
        compiled.scorer.graph = torch.compile(compiled.scorer.graph, dynamic=True)
        start = time.perf_counter()
        compiled.recommend([rec.id_map.raw_item(int(i)) for i in histories[0]], VERIFY_K)
        compile_s = time.perf_counter() - start
        engines["torch.compile"] = compiled
    rng = np.random.default_rng(0)
    picks = [[rec.id_map.raw_item(int(i)) for i in histories[u]] for u in rng.integers(0, len(histories), size=repeats)]
    items = lambda e, h: [i for i, _ in e.recommend(h, VERIFY_K)]  # noqa: E731
    agree = {name: all(items(e, h) == items(rec, h) for h in picks[:50]) for name, e in engines.items()}
    times: dict[str, list[float]] = {name: [] for name in engines}
    for _ in range(rounds):  # interleaved, so the background load hits every engine alike
        for name, engine in engines.items():
            for h in picks:
                start = time.perf_counter()
                engine.recommend(h, VERIFY_K)
                times[name].append(time.perf_counter() - start)
    batch1 = {
        name: {"p50_ms": float(np.median(t) * 1000), "p95_ms": float(np.percentile(t, 95) * 1000)}
        for name, t in times.items()
    }
    report: dict[str, Any] = {
        "command": command,
        "run_dir": str(run_dir),
        "dataset": config.dataset,
        "model": config.model,
        "format": fmt,
        "file": str(path),
        "users": len(histories),
        "identical_top10": same,
        "max_abs_score_diff": max_diff,
        "batch1_recommend": batch1,
        "same_top10_as_eager_on_50_histories": agree,
        "threads": torch.get_num_threads(),
        "calls_per_engine": repeats * rounds,
        "load_average": [round(x, 2) for x in os.getloadavg()],
    }
    if compare_compile:
        report["torch_compile_seconds"] = round(compile_s, 1)
    eager, ours = batch1["torch eager"]["p50_ms"], batch1[fmt]["p50_ms"]
    report["summary"] = (
        f"{fmt} export of {run_dir}: identical top-{VERIFY_K} for {same}/{len(histories)} test users "
        f"(max |score diff| {max_diff:.2e}); batch-1 recommend p50: torch eager {eager:.2f} ms, {fmt} {ours:.2f} ms "
        f"({eager / ours:.1f}x; {torch.get_num_threads()} threads)"
    )
    if out is not None:
        atomic_write_json(Path(str(out) + ".json"), report)
        atomic_write_text(Path(str(out) + ".md"), _markdown(report))
    return report


def _markdown(r: dict[str, Any]) -> str:
    rows = "\n".join(f"| {name} | {v['p50_ms']:.2f} | {v['p95_ms']:.2f} |" for name, v in r["batch1_recommend"].items())
    compiled = f" torch.compile took {r['torch_compile_seconds']} s to compile." if "torch_compile_seconds" in r else ""
    return (
        f"# Export check: {r['format']} of {r['run_dir']} ({r['model']}, {r['dataset']})\n\n"
        f"Command: `{r['command']}`\n\n{r['summary']}.\n\n"
        f"| `Recommender.recommend`, batch 1, k=10 | p50 ms | p95 ms |\n|---|---|---|\n{rows}\n\n"
        f"{r['calls_per_engine']} calls per engine on random test users' histories, interleaved by round; "
        "each call maps ids, draws the anchor and mask, runs the graph and takes the top-10 with the history "
        f"left out. Same top-10 as eager on 50 of them: {r['same_top10_as_eager_on_50_histories']}.{compiled} "
        f"Machine: {os.cpu_count()} CPU cores, load average {r['load_average']} (1, 5, 15 min) at the end: "
        "compare only ratios within this file. Accuracy does not matter for latency.\n"
    )
