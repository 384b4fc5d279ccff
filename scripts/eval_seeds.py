"""How much a trained run's test score moves with the evaluation seed (FAVE's anchor draw and mask,
FMRec's Gaussian start): the spread that selecting over inference draws could exploit.

Usage: .venv/bin/python scripts/eval_seeds.py RUN_DIR [RUN_DIR ...] --seeds 10 --out results/fave-eval-seeds
Writes OUT.json and OUT.md (test and validation, both protocols, mean/std/min/max over seeds 0..K-1).
"""

from __future__ import annotations

import argparse
import statistics
from pathlib import Path

from fave.io_utils import atomic_write_json, atomic_write_text
from fave.training.checkpoint import load_run
from fave.training.run import evaluate_both, load_split

KEYS = ("HR@20", "NDCG@20")


def spread(run_dir: str, seeds: int) -> dict:
    model, config, _ = load_run(run_dir)
    split = load_split(config, None)
    values: dict[str, list[float]] = {}
    for s in range(seeds):
        config.train.eval_seed = s
        m = evaluate_both(model, split, config, diversity_k=None)
        for phase in ("valid", "test"):
            for protocol in ("paper", "masked"):
                for k in KEYS:
                    values.setdefault(f"{phase} {protocol} {k}", []).append(100 * m[phase][protocol][k])
    return {
        name: {"mean": statistics.mean(v), "std": statistics.stdev(v), "min": min(v), "max": max(v), "n": len(v)}
        for name, v in values.items()
    }


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("runs", nargs="+")
    ap.add_argument("--seeds", type=int, default=10)
    ap.add_argument("--out", required=True)
    args = ap.parse_args()
    out = {r: spread(r, args.seeds) for r in args.runs}
    cmd = f".venv/bin/python scripts/eval_seeds.py {' '.join(args.runs)} --seeds {args.seeds} --out {args.out}"
    lines = [
        "# Test and validation scores over evaluation seeds (inference draws), same weights",
        "",
        f"Produced by `{cmd}`. Leave-one-out, full ranking; values in %; evaluation seeds 0..{args.seeds - 1}.",
        "",
        "| run | split / protocol / metric | mean | std | min | max | max - mean |",
        "|---|---|---|---|---|---|---|",
    ]
    for r, stats in out.items():
        for name, s in stats.items():
            lines.append(
                f"| {r} | {name} | {s['mean']:.2f} | {s['std']:.2f} | {s['min']:.2f} | {s['max']:.2f} | "
                f"{s['max'] - s['mean']:+.2f} |"
            )
    atomic_write_json(Path(f"{args.out}.json"), {"command": cmd, "runs": out})
    atomic_write_text(Path(f"{args.out}.md"), "\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
