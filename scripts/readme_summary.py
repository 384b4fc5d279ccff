# Prints the README results table from results/ml-100k.json and results/beauty.json.
# Usage: python scripts/readme_summary.py
import json

rows = []
for ds in ("ml-100k", "beauty"):
    r = json.load(open(f"results/{ds}.json"))["results"]
    for label in ("fave", "sasrec", "pop"):
        e = r[label]
        p = e["test"]["paper"]
        m = e["test"]["masked"]
        f = lambda d, k: f"{100 * d[k]['mean']:.2f} ± {100 * d[k]['std']:.2f}"
        rows.append(
            f"| {ds} | {label} | {len(e['seeds'])} | {f(p, 'HR@20')} | {f(p, 'NDCG@20')} | {f(m, 'HR@20')} | {f(m, 'NDCG@20')} | {e['train_seconds']['mean']:.0f} |"
        )
print("| dataset | model | seeds | H@20 paper | N@20 paper | H@20 masked | N@20 masked | train s |")
print("|---|---|---|---|---|---|---|---|")
print("\n".join(rows))
