"""Time FAVE's training step with the history decoder's full [B, N] output (``params.recon=full``)
against the gathered form (``params.recon=gathered``: the last layer applied only to each user's
positives and as many uniform negatives), on real datasets, in one run. Both are the balanced MSE
of eq. 13 over the same kind of entries; gathered never builds the [B, N] output.
Writes results/recon-step/recon-step.{json,md}.

Usage: .venv/bin/python scripts/recon_step.py [--datasets ml-100k beauty] [--steps 10]
One thread per cell (fave.benchmark.scale.measure_cell); run it on an idle machine and compare the
ratios, not the absolute times.
"""

import argparse
import platform

import torch

from fave.benchmark.scale import measure_cell
from fave.data.paths import resolve_data_dir
from fave.io_utils import atomic_write_json, atomic_write_text

RECONS = ("full", "gathered")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--datasets", nargs="+", default=["ml-100k", "beauty"])
    ap.add_argument("--steps", type=int, default=10)
    ap.add_argument("--data-dir", default=None)
    args = ap.parse_args()
    data_dir = str(resolve_data_dir(args.data_dir))
    rows = []
    for data in args.datasets:
        cells = {}
        for recon in RECONS:
            cell = measure_cell(data, data_dir, "fave", [f"params.recon={recon}"], args.steps, eval_users=1)
            cells[recon] = {"items": cell["items"], "batch_size": cell["batch_size"], "stages": cell["stages"]}
            print(data, recon, [round(s["step_s"], 3) for s in cell["stages"]], flush=True)
        rows.append({"dataset": data, "cells": cells})
    command = f".venv/bin/python scripts/recon_step.py --datasets {' '.join(args.datasets)} --steps {args.steps}"
    out = "results/recon-step/recon-step"
    atomic_write_json(
        out + ".json",
        {
            "command": command,
            "torch": torch.__version__,
            "machine": platform.processor() or platform.machine(),
            "threads": 1,
            "rows": rows,
        },
    )
    lines = [
        "# FAVE training step: the decoder's full [B, N] output against the gathered entries",
        "",
        f"Produced by:\n\n```\n{command}\n```\n",
        f"torch {torch.__version__}, one thread, the dataset's packaged FAVE recipe otherwise. Median seconds per "
        f"training step (forward, backward, clip, fused Adam) over {args.steps} steps after one warm-up step;"
        " Stage 2 continues from the weights of the timed Stage-1 steps.",
        "",
        "| dataset | items | batch | stage | full (s/step) | gathered (s/step) | gathered / full |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        full, gath = r["cells"]["full"], r["cells"]["gathered"]
        for sf, sg in zip(full["stages"], gath["stages"], strict=True):
            lines.append(
                f"| {r['dataset']} | {full['items']:,} | {full['batch_size']} | {sf['stage']} | {sf['step_s']:.3f} | "
                f"{sg['step_s']:.3f} | {sg['step_s'] / sf['step_s']:.2f} |"
            )
    atomic_write_text(out + ".md", "\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
