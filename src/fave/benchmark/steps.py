"""Accuracy as a function of sampling steps: a multi-step model (FMRec's Euler sampler,
DiffuRec's respaced chain) re-evaluated on the test set with ``config.sample_steps`` set to
1, 2, 5, 10, 30, beside FAVE's single step. JSON, Markdown and a PNG plot.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from fave.data.dataset import EvalSet
from fave.errors import FaveError
from fave.evaluation.evaluator import PROTOCOLS, evaluate
from fave.io_utils import atomic_write_json, atomic_write_text
from fave.models.base import SeqRecModel

METRICS = ("HR@10", "HR@20", "NDCG@10", "NDCG@20")


def _evaluate_seeds(model: SeqRecModel, eval_set: EvalSet, max_len: int, seeds: Sequence[int], batch_size: int) -> dict:
    """Mean and standard deviation over seeds of every metric, per protocol, and eval seconds."""
    runs, seconds = [], []
    for seed in seeds:
        start = time.perf_counter()
        runs.append(evaluate(model, eval_set, max_len, batch_size, seed=seed).metrics)
        seconds.append(time.perf_counter() - start)
    out: dict = {"eval_s": float(np.median(seconds)), "seeds": list(seeds)}
    for p in PROTOCOLS:
        values = {m: np.array([r[p][m] for r in runs]) for m in runs[0][p]}
        out[p] = {m: float(v.mean()) for m, v in values.items()}
        out[f"{p}_std"] = {m: float(v.std()) for m, v in values.items()}
    return out


def run_steps(
    model: SeqRecModel,
    eval_set: EvalSet,
    max_len: int,
    steps: Sequence[int] = (1, 2, 5, 10, 30),
    *,
    name: str = "fmrec",
    reference: SeqRecModel | None = None,
    reference_name: str = "fave",
    seeds: Sequence[int] = (12345,),
    batch_size: int = 512,
    dataset: str | None = None,
    log: Callable[[str], None] | None = None,
) -> dict:
    """Test metrics of ``model`` for each number of sampling steps (restored afterwards), and
    of ``reference`` (FAVE, one step) evaluated once per seed. Returns a JSON-ready dict."""
    say = log or (lambda _: None)
    if not hasattr(model.config, "sample_steps"):
        raise FaveError(f"{type(model).__name__} has no params.sample_steps; use an FMRec or DiffuRec run")
    original = model.config.sample_steps
    curve = []
    try:
        for k in steps:
            model.config.sample_steps = int(k)
            say(f"{name}: {k} step(s)")
            curve.append({"steps": int(k), **_evaluate_seeds(model, eval_set, max_len, seeds, batch_size)})
    finally:
        model.config.sample_steps = original
    result: dict = {
        "meta": {
            "dataset": dataset,
            "users": len(eval_set.targets),
            "max_len": max_len,
            "seeds": list(seeds),
            "trained_steps": original,
        },
        "model": name,
        "curve": curve,
        "reference": None,
    }
    if reference is not None:
        say(f"{reference_name}: one step")
        result["reference"] = {
            "name": reference_name,
            "steps": 1,
            **_evaluate_seeds(reference, eval_set, max_len, seeds, batch_size),
        }
    return result


def _cell(row: dict, protocol: str, metric: str) -> str:
    mean, std = 100 * row[protocol][metric], 100 * row[f"{protocol}_std"][metric]
    return f"{mean:.2f} ± {std:.2f}" if len(row["seeds"]) > 1 else f"{mean:.2f}"


def render_steps_markdown(result: dict, protocol: str = "paper") -> str:
    """Rows = (model, steps); columns = test metrics (%) under ``protocol`` and eval time."""
    meta = result["meta"]
    lines = [
        f"# Accuracy vs sampling steps on {meta.get('dataset') or 'the test set'} ({protocol} protocol)",
        "",
        f"{meta['users']} test users; metrics in %, mean"
        + (f" ± std over {len(meta['seeds'])} seeds" if len(meta["seeds"]) > 1 else f" (seed {meta['seeds'][0]})")
        + f"; {result['model']} was trained for {meta['trained_steps']} step(s).",
        "",
        "| Model | Steps | " + " | ".join(METRICS) + " | Test set eval (s) |",
        "|---|---:|" + "---:|" * len(METRICS) + "---:|",
    ]
    rows = [(result["model"], r) for r in result["curve"]]
    if result.get("reference"):
        rows.append((result["reference"]["name"], result["reference"]))
    for name, r in rows:
        cells = " | ".join(_cell(r, protocol, m) for m in METRICS)
        lines.append(f"| {name} | {r['steps']} | {cells} | {r['eval_s']:.2f} |")
    return "\n".join(lines) + "\n"


def plot_steps(
    result: dict,
    path: str | Path,
    protocol: str = "paper",
    metrics: Sequence[str] = ("HR@20", "NDCG@20"),
) -> Path:
    """One panel per metric: the model's curve over steps (log scale), FAVE's one step as a star."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(metrics), figsize=(4.5 * len(metrics), 3.6), squeeze=False)
    steps = [r["steps"] for r in result["curve"]]
    ref = result.get("reference")
    for ax, m in zip(axes[0], metrics, strict=True):
        y = [100 * r[protocol][m] for r in result["curve"]]
        err = [100 * r[f"{protocol}_std"][m] for r in result["curve"]]
        ax.errorbar(steps, y, yerr=err, marker="o", capsize=3, label=result["model"])
        if ref:
            v = 100 * ref[protocol][m]
            ax.axhline(v, color="C1", linestyle="--", linewidth=1)
            ax.plot(
                [1],
                [v],
                marker="*",
                markersize=14,
                color="C1",
                linestyle="none",
                label=f"{ref['name']} (1 step)",
            )
        ax.set_xscale("log")
        ax.set_xticks(steps, [str(s) for s in steps])
        ax.set_xlabel("sampling steps (network calls)")
        ax.set_ylabel(f"{m} (%)")
        ax.grid(alpha=0.3)
        ax.legend()
    fig.suptitle(f"{result['meta'].get('dataset') or ''} test, {protocol} protocol".strip())
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=150)
    plt.close(fig)
    return path


def write_steps(result: dict, out_dir: str | Path, protocol: str = "paper") -> list[Path]:
    """``steps.json``, ``steps.md`` and ``steps.png`` in ``out_dir``."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_json(out / "steps.json", result)
    atomic_write_text(out / "steps.md", render_steps_markdown(result, protocol))
    return [out / "steps.json", out / "steps.md", plot_steps(result, out / "steps.png", protocol)]
