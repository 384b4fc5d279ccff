"""Print the README results table from results/ml-100k.json and results/beauty.json.

Usage: .venv/bin/python scripts/readme_summary.py
"""

import json

from fave.reporting import PAPER, TABLE_ORDER, pct

print(
    "| dataset | model | seeds | H@20 paper | N@20 paper | H@20 masked | N@20 masked | train s | paper's H@20 / N@20 |"
)
print("|---|---|---|---|---|---|---|---|---|")
for dataset in ("ml-100k", "beauty"):
    results = json.load(open(f"results/{dataset}.json"))["results"]
    for label in (m for m in TABLE_ORDER if m in results):
        e = results[label]
        paper, masked = e["test"]["paper"], e["test"]["masked"]
        ref = PAPER[dataset].get(label)
        print(
            f"| {dataset} | {label} | {len(e['seeds'])} | {pct(paper['HR@20'])} | {pct(paper['NDCG@20'])} | "
            f"{pct(masked['HR@20'])} | {pct(masked['NDCG@20'])} | {e['train_seconds']['mean']:.0f} | "
            f"{f'{ref[1]:.2f} / {ref[3]:.2f}' if ref else '-'} |"
        )
