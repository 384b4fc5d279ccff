"""Validation against test, model by model, beside the paper's Table-1 rows (issue 13, item 6).

Reads the committed result files (results/ml-100k.json, beauty.json, gpu-ml-100k.json,
gpu-beauty.json; `paper` protocol) and writes results/valid-test-gap.{json,md}. Besides the
numbers: the binomial standard error of a test HR@20 for the number of test users, and which
of our two levels (validation or test) the paper's row is closer to.

Usage: .venv/bin/python scripts/valid_test_gap.py
"""

from __future__ import annotations

import json
import math
from pathlib import Path

from fave.io_utils import atomic_write_json, atomic_write_text
from fave.reporting import PAPER

FILES = {"ml-100k": ["ml-100k", "gpu-ml-100k"], "beauty": ["beauty", "gpu-beauty"]}
USERS = {"ml-100k": 943, "beauty": 22363}
PAPER_INDEX = {"HR@20": 1, "NDCG@20": 3}  # PAPER rows: H@10, H@20, N@10, N@20


def rows() -> list[dict]:
    out = []
    for dataset, names in FILES.items():
        for name in names:
            path = Path("results") / f"{name}.json"
            if not path.is_file():
                continue
            for label, e in json.loads(path.read_text())["results"].items():
                ref = PAPER[dataset].get(label.removesuffix("-prefix"))
                if ref is None or "stage1" in label:
                    continue
                row = {"dataset": dataset, "file": path.name, "model": label, "seeds": len(e["seeds"])}
                for m, i in PAPER_INDEX.items():
                    v, t = 100 * e["valid"]["paper"][m]["mean"], 100 * e["test"]["paper"][m]["mean"]
                    row[m] = {"valid": v, "test": t, "paper": ref[i], "gap": v - t}
                    row[m]["closer_to"] = "valid" if abs(ref[i] - v) < abs(ref[i] - t) else "test"
                p = row["HR@20"]["test"] / 100
                row["se_test_HR@20"] = 100 * math.sqrt(p * (1 - p) / USERS[dataset])
                out.append(row)
    return out


def markdown(rs: list[dict]) -> str:
    lines = [
        "# Validation against test, and the paper's Table-1 rows",
        "",
        "Produced by `.venv/bin/python scripts/valid_test_gap.py` from the committed result files named in the",
        "`file` column. Leave-one-out, full ranking, `paper` protocol (history not removed), mean over the seeds",
        "listed; validation = the second-last item with the training part as input, test = the last item with",
        "the validation item appended. SE: binomial standard error of one run's test HR@20.",
        "",
        "| dataset | file | model | seeds | H@20 valid | H@20 test | valid - test | paper H@20 | paper closer to "
        "| N@20 valid | N@20 test | paper N@20 | paper closer to | SE test H@20 |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rs:
        h, n = r["HR@20"], r["NDCG@20"]
        lines.append(
            f"| {r['dataset']} | {r['file']} | {r['model']} | {r['seeds']} | {h['valid']:.2f} | {h['test']:.2f} | "
            f"{h['gap']:+.2f} | {h['paper']:.2f} | {h['closer_to']} | {n['valid']:.2f} | {n['test']:.2f} | "
            f"{n['paper']:.2f} | {n['closer_to']} | {r['se_test_HR@20']:.2f} |"
        )
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    rs = rows()
    atomic_write_json(Path("results/valid-test-gap.json"), {"command": "scripts/valid_test_gap.py", "rows": rs})
    atomic_write_text(Path("results/valid-test-gap.md"), markdown(rs))
    print(markdown(rs))
