"""Test accuracy by history length: where one model gains or loses against another (issue 13).

Each LABEL=RUN_DIR[,RUN_DIR...] names a model's runs (seeds); per-user test values come from the runs' saved ranks
(ranks.npz) and are averaged over each label's seeds, on the users every run has, as the report's paired tests do.
Users are grouped by the length of their test input (all items but the last); for each group: users, every
label's mean HR@20 / NDCG@20 (`paper` protocol), and each label's difference to the first label with a paired
t-test p (no correction: a diagnostic, not a claim). Writes OUT.json and OUT.md.

    .venv/bin/python scripts/by_length.py --dataset beauty --out results/beauty-by-length \\
        fave=runs/beauty/fave-seed0,runs/beauty/fave-seed1,runs/beauty/fave-seed2 \\
        sasrec=runs/beauty/sasrec-seed0,runs/beauty/sasrec-seed1,runs/beauty/sasrec-seed2
"""

from __future__ import annotations

import argparse
import shlex
import sys

import numpy as np

from fave.data.load import load_dataset
from fave.evaluation.significance import load_ranks, paired_test, seed_mean, shared_users
from fave.io_utils import atomic_write_json, atomic_write_text
from fave.reporting import split_label

METRICS = ("HR@20", "NDCG@20")


def groups(edges: list[int], lengths: np.ndarray) -> list[tuple[str, np.ndarray]]:
    """(name, boolean mask) per length group: [edges[i], edges[i+1]), the last one open."""
    out = []
    for lo, hi in zip(edges, [*edges[1:], None], strict=True):
        mask = lengths >= lo if hi is None else (lengths >= lo) & (lengths < hi)
        name = f"{lo}+" if hi is None else str(lo) if hi == lo + 1 else f"{lo}-{hi - 1}"
        out.append((name, mask))
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("runs", nargs="+", help="LABEL=RUN_DIR[,RUN_DIR...]: a model's runs; the first is the reference")
    ap.add_argument("--dataset", required=True, help="the runs' dataset (name or file), for the history lengths")
    ap.add_argument("--edges", help="lower edges of the length groups, e.g. 4,6,9,16 (default: the length quartiles)")
    ap.add_argument("--out", required=True, help="output path without suffix")
    args = ap.parse_args(argv)
    argv = sys.argv[1:] if argv is None else argv
    labelled = {}
    for arg in args.runs:
        label, dirs = split_label(arg)
        if label is None:
            print(f"error: {arg!r} is not LABEL=RUN_DIR[,RUN_DIR...]", file=sys.stderr)
            return 2
        ranks = [load_ranks(d) for d in dirs.split(",")]
        if any(r is None for r in ranks):
            print(f"error: a run of {label!r} has no ranks.npz; run `fave evaluate RUN --save-ranks`", file=sys.stderr)
            return 2
        labelled[label] = ranks
    data = load_dataset(args.dataset, download=False)
    users = shared_users([r for runs in labelled.values() for r in runs], "test")
    lengths = np.array([len(data.sequences[u]) - 1 for u in users])
    values = {label: seed_mean(runs, "test", "paper", METRICS, users) for label, runs in labelled.items()}
    ref = next(iter(values))
    rows = []
    if args.edges:
        edges = sorted({int(e) for e in args.edges.split(",")})
    else:  # quartiles of the test input lengths: four groups of about as many users
        edges = sorted({int(lengths.min()), *(int(np.ceil(q)) for q in np.quantile(lengths, [0.25, 0.5, 0.75]))})
    for name, mask in groups(edges, lengths):
        if not mask.any():
            continue
        row = {"length": name, "users": int(mask.sum()), "models": {}}
        for label, v in values.items():
            cell = {m: float(v[m][mask].mean()) for m in METRICS}
            if label != ref and mask.sum() > 1:
                for m in METRICS:
                    cell[f"{m} diff"] = float((v[m][mask] - values[ref][m][mask]).mean())
                    cell[f"{m} t_p"] = paired_test(v[m][mask], values[ref][m][mask])[0]
            row["models"][label] = cell
        rows.append(row)
    command = "scripts/by_length.py " + " ".join(shlex.quote(a) for a in argv)
    atomic_write_json(f"{args.out}.json", {"command": command, "reference": ref, "metrics": METRICS, "rows": rows})
    head = ["test input length", "users"] + [f"{label} {m}" for label in values for m in METRICS]
    head += [f"{label} - {ref} {m} (p)" for label in values if label != ref for m in METRICS]
    lines = [
        f"# Test accuracy by history length ({args.dataset}, `paper` protocol, %)",
        "",
        f"Produced by `.venv/bin/python {command}`.",
        "",
        "Leave-one-out test, full ranking; each user's value is the mean over that model's seeds; p: paired t-test",
        "within the group, uncorrected (a diagnostic).",
        "",
        "| " + " | ".join(head) + " |",
        "|" + "---|" * len(head),
    ]
    for row in rows:
        cells = [row["length"], f"{row['users']:,}"]
        cells += [f"{100 * row['models'][label][m]:.2f}" for label in values for m in METRICS]
        for label in values:
            if label == ref:
                continue
            c = row["models"][label]
            cells += [
                f"{100 * c[f'{m} diff']:+.2f} ({c[f'{m} t_p']:.2g})" if f"{m} diff" in c else "-" for m in METRICS
            ]
        lines.append("| " + " | ".join(cells) + " |")
    atomic_write_text(f"{args.out}.md", "\n".join(lines) + "\n")
    print(f"wrote {args.out}.json and {args.out}.md")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
