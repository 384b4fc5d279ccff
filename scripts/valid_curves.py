"""Validation curves from training logs (log.txt), for runs that finished and runs that were stopped early.

Usage: .venv/bin/python scripts/valid_curves.py --out results/ml-100k-switches-curves RUN_DIR [RUN_DIR ...]
Writes OUT.json and OUT.md: the validation metric of every logged validation, per run and stage.
"""

from __future__ import annotations

import argparse
import re
from pathlib import Path

from fave.io_utils import atomic_write_json, atomic_write_text

LINE = re.compile(r"stage=(\S+) epoch=(\d+) .*?valid_(\w+)_(\S+)=([0-9.]+) .*?time=([0-9.]+)s")


def curve(run_dir: Path) -> list[dict]:
    rows = []
    for line in (run_dir / "log.txt").read_text(encoding="utf-8").splitlines():
        m = LINE.search(line)
        if m:
            stage, epoch, protocol, metric, value, seconds = m.groups()
            rows.append(
                {
                    "stage": stage,
                    "epoch": int(epoch),
                    "protocol": protocol,
                    "metric": metric,
                    "value": float(value),
                    "seconds": float(seconds),
                }
            )
    return rows


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("runs", nargs="+")
    ap.add_argument("--out", required=True)
    args = ap.parse_args()
    curves = {r: curve(Path(r)) for r in args.runs}
    cmd = f".venv/bin/python scripts/valid_curves.py --out {args.out} {' '.join(args.runs)}"
    epochs = sorted({(c["stage"], c["epoch"]) for cs in curves.values() for c in cs})
    lines = [
        "# Validation curves (from each run's log.txt)",
        "",
        f"Produced by `{cmd}`. Validation = the second-last item; metric: "
        + ", ".join(sorted({f"{c['protocol']} {c['metric']}" for cs in curves.values() for c in cs}))
        + ", in %; a run without `metrics.json` was stopped before its last epoch (no test score).",
        "",
        "| stage, epoch | " + " | ".join(Path(r).name if Path(r).name else r for r in args.runs) + " |",
        "|---|" + "---|" * len(args.runs),
    ]
    for stage, epoch in epochs:
        cells = []
        for r in args.runs:
            v = [c for c in curves[r] if c["stage"] == stage and c["epoch"] == epoch]
            cells.append(f"{100 * v[0]['value']:.2f}" if v else "")
        lines.append(f"| {stage} {epoch} | " + " | ".join(cells) + " |")
    finished = {r: (Path(r) / "metrics.json").is_file() for r in args.runs}
    lines += ["", "Finished (metrics.json): " + ", ".join(f"{r}: {'yes' if f else 'no'}" for r, f in finished.items())]
    atomic_write_json(Path(f"{args.out}.json"), {"command": cmd, "curves": curves, "finished": finished})
    atomic_write_text(Path(f"{args.out}.md"), "\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
