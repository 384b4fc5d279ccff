"""The README's results tables, from committed result files.

    .venv/bin/python scripts/readme_summary.py            # print them
    .venv/bin/python scripts/readme_summary.py --write    # replace the block between the README's markers

ML-100k: results/ml-100k-seeds.json (`SEEDS='0 1 2' bash scripts/table1.sh`: every model, epoch-capped
recipes, with per-user paired tests of FAVE against each). Beauty: results/beauty-table1.json
(`DATASET=beauty SEEDS='0 1 2' bash scripts/table1.sh`, the same). Test set, mean ± std over the seeds,
validation beside it.
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


def paired_table(result: dict, dataset: str) -> list[str]:
    """Table 1 of ``dataset`` with FAVE's paired difference to each model (t-test p, corrected)."""
    tests = paired(result)

    def diffs(name: str, _: dict) -> list[str]:
        out = []
        for metric in ("HR@20", "NDCG@20"):
            t = tests.get((name, metric))
            out.append(f"{100 * t['diff']:+.2f} ({p_value(t['t_p_holm'])})" if t else "-")
        return out

    return table(result, dataset, ("FAVE - model, H@20 (p)", "FAVE - model, N@20 (p)"), diffs)


def users(result: dict) -> str:
    """The number of test users the paired tests compare, e.g. "943"."""
    tests = (result.get("significance") or {}).get("tests", {}).get("paper", [])
    return f"{tests[0]['n_users']:,}" if tests else "?"


#: the packaged defaults measured after the tables above: (model, dataset, result file, run name in it).
#: Beauty's Table 1 (2026-12-08) runs every packaged default, so only ML-100k's newer defaults are listed.
DEFAULTS = [
    ("fave", "ml-100k", "results/ml-100k-shuffled.json", "shuffled"),
    ("fmrec", "ml-100k", "results/ml-100k-fmrec-shuffled.json", "shuffled"),
    ("dreamrec", "ml-100k", "results/ml-100k-dreamrec.json", "dreamrec"),
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


#: the Table-1 result files: (dataset, its name in the README, the file without its suffix)
TABLES = [("ml-100k", "ML-100k", "results/ml-100k-seeds"), ("beauty", "Beauty", "results/beauty-table1")]


def block() -> str:
    tables = []
    for dataset, name, path in TABLES:
        result = json.loads((ROOT / f"{path}.json").read_text())
        sig = result.get("significance") or {}
        tables += [
            f"**{name}** (`{result['command']}`, `{path}.md`): every model with its epoch-capped recipe",
            "(no wall-clock budget, so the numbers do not depend on the machine's load). `paper` protocol unless",
            "named; `masked` = the user's history removed. FAVE - model: difference of the per-user means on the",
            f"{users(result)} test users, two-sided paired t-test, p {sig.get('correction', '')}-corrected over all",
            "comparisons (Wilcoxon in the file).",
            "",
            *paired_table(result, dataset),
            "",
        ]
    lines = [
        *tables,
        "**ML-100k's packaged defaults changed after its table** (chosen on validation; `paper` protocol unless",
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
