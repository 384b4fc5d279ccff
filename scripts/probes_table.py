"""The table of ``bash scripts/reproduce.sh probes``: FAVE's test metrics with and without the flow input.

    python scripts/probes_table.py results/probes

Reads ``DIR/NAME.json`` and ``DIR/NAME-delta0.json`` (``fave evaluate RUN --json`` without and with
``--set params.delta=0``) for the runs the block probes and writes ``DIR/probes.md``.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

HEADER = [
    "# What the flow input contributes at inference (ML-100k, FAVE, test set)",
    "",
    "Produced by `bash scripts/reproduce.sh probes` (`fave evaluate RUN --json` and "
    "`fave evaluate RUN --set params.delta=0 --json`).",
    "`delta = 0` removes the flow state (anchor x_0) and the time embedding from the network input "
    "entirely (eq. 9 with lambda = 0);",
    "the weights are the same trained FAVE runs: `runs/ml-100k/fave-seed{0,1,2}` (trained with the paper's "
    "delta = 0.001) and `runs/ml-100k-delta/fave-delta1-seed0` (trained with delta = 1, `delta` block). "
    "Fractions in %.",
    "",
    "| run | protocol | H@20 | H@20 (delta=0) | N@20 | N@20 (delta=0) |",
    "|---|---|---|---|---|---|",
]
# (label, file stem) of every probed run, in table order; runs without their JSON are left out
PROBES = [*((f"delta 0.001, seed {s}", f"fave-ml-100k-seed{s}") for s in (0, 1, 2))]
PROBES.append(("delta 1, seed 0", "fave-delta1-ml-100k-seed0"))


def table(folder: Path) -> str:
    lines = list(HEADER)
    for label, stem in PROBES:
        if not (folder / f"{stem}.json").exists():
            continue
        a = json.loads((folder / f"{stem}.json").read_text())["test"]
        b = json.loads((folder / f"{stem}-delta0.json").read_text())["test"]
        for p in ("paper", "masked"):
            lines.append(
                f"| {label} | {p} | {100 * a[p]['HR@20']:.2f} | {100 * b[p]['HR@20']:.2f} | "
                f"{100 * a[p]['NDCG@20']:.2f} | {100 * b[p]['NDCG@20']:.2f} |"
            )
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folder", nargs="?", default="results/probes", help="where the probe JSON files are")
    folder = Path(parser.parse_args().folder)
    (folder / "probes.md").write_text(table(folder))


if __name__ == "__main__":
    main()
