"""The README's results tables, from committed result files.

    .venv/bin/python scripts/readme_summary.py            # print them
    .venv/bin/python scripts/readme_summary.py --write    # replace the block between the README's markers

ML-100k: results/ml-100k-seeds.json (`SEEDS='0 1 2' bash scripts/table1.sh`: every model, epoch-capped
recipes, with per-user paired tests of FAVE against each). Beauty: results/beauty.json
(`bash scripts/reproduce.sh report`). Test set, mean ± std over the seeds, validation beside it.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from fave.reporting import PAPER, TABLE_ORDER, pct  # noqa: E402

START, END = "<!-- results-table -->", "<!-- /results-table -->"


def p_value(p: float) -> str:
    return f"{p:.2g}" if p >= 1e-3 else "<0.001"


def paired(result: dict) -> dict[tuple[str, str], dict]:
    """(baseline, metric) -> the `paper`-protocol paired test against FAVE."""
    tests = (result.get("significance") or {}).get("tests", {}).get("paper", [])
    return {(t["baseline"], t["metric"]): t for t in tests}


def table(result: dict, dataset: str, extra: tuple[str, ...], cells) -> list[str]:
    """Rows of every model of ``result`` in Table-1 order: seeds, test (both protocols), validation,
    the ``extra`` columns (``cells(name, entry)`` gives their values), then the paper's row."""
    rows = result["results"]
    head = ["model", "seeds", "test H@20", "test N@20", "masked H@20", "masked N@20", "valid H@20", "valid N@20"]
    head += [*extra, "paper's H@20 / N@20"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for name in (m for m in TABLE_ORDER if m in rows):
        e = rows[name]
        test, masked, valid = e["test"]["paper"], e["test"]["masked"], e["valid"]["paper"]
        ref = PAPER[dataset].get(name)
        values = [name, str(len(e["seeds"]))]
        values += [pct(s[m]) for s in (test, masked, valid) for m in ("HR@20", "NDCG@20")]
        values += [*cells(name, e), f"{ref[1]:.2f} / {ref[3]:.2f}" if ref else "-"]
        lines.append("| " + " | ".join(values) + " |")
    return lines


def ml100k_table(result: dict) -> list[str]:
    tests = paired(result)

    def diffs(name: str, _: dict) -> list[str]:
        out = []
        for metric in ("HR@20", "NDCG@20"):
            t = tests.get((name, metric))
            out.append(f"{100 * t['diff']:+.2f} ({p_value(t['t_p_holm'])})" if t else "-")
        return out

    return table(result, "ml-100k", ("FAVE - model, H@20 (p)", "FAVE - model, N@20 (p)"), diffs)


def beauty_table(result: dict) -> list[str]:
    return table(result, "beauty", ("train s",), lambda _, e: [f"{e['train_seconds']['mean']:.0f}"])


#: the packaged defaults measured after the tables above: (model, dataset, result file, run name in it)
DEFAULTS = [
    ("fave", "ml-100k", "results/ml-100k-shuffled.json", "shuffled"),
    ("fave", "beauty", "results/beauty-balanced.json", "balanced"),
    ("fmrec", "ml-100k", "results/ml-100k-fmrec-shuffled.json", "shuffled"),
    ("fmrec", "beauty", "results/beauty-fmrec-recipe.json", "fave-stage1-recipe"),
    ("sasrec", "beauty", "results/beauty-sasrec-order.json", "balanced"),
    ("dreamrec", "ml-100k", "results/ml-100k-dreamrec.json", "dreamrec"),
    ("dreamrec", "beauty", "results/beauty-seeds.json", "dreamrec"),
]


def defaults_table() -> list[str]:
    """One row per packaged default that is newer than the tables: test (both protocols) and validation."""
    head = ["model", "dataset", "result file (run)", "seeds", "test H@20", "test N@20", "masked H@10", "masked N@10"]
    head += ["valid H@20", "valid N@20", "train s", "paper's H@20 / N@20"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for model, dataset, path, run in DEFAULTS:
        e = json.loads((ROOT / path).read_text())["results"][run]
        test, masked, valid = e["test"]["paper"], e["test"]["masked"], e["valid"]["paper"]
        ref = PAPER[dataset].get(model)
        values = [model, dataset, f"`{path}` ({run})", str(len(e["seeds"]))]
        values += [pct(test[m]) for m in ("HR@20", "NDCG@20")] + [pct(masked[m]) for m in ("HR@10", "NDCG@10")]
        values += [pct(valid[m]) for m in ("HR@20", "NDCG@20")]
        values += [f"{e['train_seconds']['mean']:.0f}", f"{ref[1]:.2f} / {ref[3]:.2f}" if ref else "-"]
        lines.append("| " + " | ".join(values) + " |")
    return lines


def block() -> str:
    ml = json.loads((ROOT / "results/ml-100k-seeds.json").read_text())
    beauty = json.loads((ROOT / "results/beauty.json").read_text())
    sig = ml.get("significance") or {}
    lines = [
        f"**ML-100k** (`{ml['command']}`, `results/ml-100k-seeds.md`): every model with its epoch-capped recipe",
        "(no wall-clock budget, so the numbers do not depend on the machine's load). `paper` protocol unless",
        "named; `masked` = the user's history removed. FAVE - model: difference of the per-user means on the",
        f"943 test users, two-sided paired t-test, p {sig.get('correction', '')}-corrected over all comparisons",
        "(Wilcoxon in the file).",
        "",
        *ml100k_table(ml),
        "",
        "**Beauty** (`bash scripts/reproduce.sh report`, `results/beauty.md`): the CPU recipes with their",
        "wall-clock budgets (train s: seconds of training).",
        "",
        *beauty_table(beauty),
        "",
        "**The packaged defaults changed after these tables** (chosen on validation; `paper` protocol unless",
        "named; each result file names its command):",
        "",
        *defaults_table(),
    ]
    return "\n".join(lines)


def main() -> int:
    text = block()
    if "--write" not in sys.argv[1:]:
        print(text)
        return 0
    readme = ROOT / "README.md"
    body = readme.read_text(encoding="utf-8")
    if START not in body or END not in body:
        print(f"README.md has no {START} ... {END} block to replace", file=sys.stderr)
        return 2
    head, rest = body.split(START, 1)
    _, tail = rest.split(END, 1)
    readme.write_text(f"{head}{START}\n{text}\n{END}{tail}", encoding="utf-8")
    print(f"wrote {readme} ({len(text.splitlines())} lines between the markers)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
