"""Wall time of the whole test evaluation (both protocols, full ranking), per run.

fave bench-eval runs/ml-100k/sasrec-seed0 runs/beauty/sasrec-seed0 --out results/eval-time
"""

from __future__ import annotations

import argparse
import platform
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from fave.errors import FaveError
from fave.evaluation.evaluator import evaluate
from fave.io_utils import atomic_write_json, atomic_write_text


def time_evaluation(
    run_dir: str | Path, repeats: int = 3, data_dir: str | None = None, warmup: bool = True
) -> dict[str, Any]:
    """Median seconds of ``evaluate`` on the test set (after one warm-up pass unless ``warmup`` is False:
    a pass over a big catalog costs minutes, and a cold pass is what a user's ``fave evaluate`` sees)."""
    from fave.data.load import load_split
    from fave.rundir import load_run

    model, config, _ = load_run(run_dir)
    test = load_split(config, data_dir).eval_set("test")
    run = lambda: evaluate(model, test, config.data.max_len, config.train.eval_batch_size)  # noqa: E731
    if warmup:
        run()
    seconds = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        run()
        seconds.append(time.perf_counter() - t0)
    return {
        "run": str(run_dir),
        "model": config.model,
        "dataset": config.dataset,
        "users": len(test.targets),
        "items": model.num_items,
        "batch_size": config.train.eval_batch_size,
        "repeats": repeats,
        "warmup": warmup,
        "median_s": float(np.median(seconds)),
        "runs_s": seconds,
    }


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("bench-eval", help="time the whole test evaluation (both protocols) of trained runs")
    p.add_argument("runs", nargs="+")
    p.add_argument("--out", required=True, help="output path without extension")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--no-warmup", action="store_true", help="time the first pass too (no untimed warm-up pass)")
    p.add_argument("--data-dir", default=None)


def cmd(args: argparse.Namespace) -> int:
    if args.repeats < 1:
        raise FaveError(f"--repeats {args.repeats}: time at least one pass")
    rows = [time_evaluation(r, args.repeats, args.data_dir, warmup=not args.no_warmup) for r in args.runs]
    env = {
        "machine": platform.machine(),
        "processor": platform.processor(),
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
    }
    out = Path(args.out)
    atomic_write_json(out.with_suffix(".json"), {"environment": env, "results": rows})
    lines = [
        "# Whole test evaluation time",
        "",
        f"`fave bench-eval {' '.join(args.runs)} --out {args.out}"
        f"{' --repeats ' + str(args.repeats) if args.repeats != 3 else ''}{' --no-warmup' if args.no_warmup else ''}` "
        f"({env['threads']} torch threads, torch {env['torch']}). One pass = score all test users against all items, "
        f"rank under both protocols; median of the timed passes{'' if args.no_warmup else ' after one warm-up'}.",
        "",
        "| run | model | dataset | users | items | median s | passes (s) |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        passes = ", ".join(f"{s:.2f}" for s in r["runs_s"])
        lines.append(
            f"| {r['run']} | {r['model']} | {r['dataset']} | {r['users']} | {r['items']} | "
            f"{r['median_s']:.2f} | {passes} |"
        )
    atomic_write_text(out.with_suffix(".md"), "\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0
