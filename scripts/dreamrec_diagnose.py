"""Where a trained DreamRec run loses accuracy: sampler, guidance, readout or item table.

    .venv/bin/python scripts/dreamrec_diagnose.py runs/ml-100k/dreamrec-seed0 --out results/dreamrec-diagnosis

Validation users only (the run's own validation set and eval seed), `paper` protocol (history
not removed). Every row changes inference only, on the same weights:
- the 100-step guided sampler at several guidance weights w;
- one guided denoiser call at the noisiest step from x = 0 (the conditional mean, no sampling);
- the exact popularity mean ``sum_i p_i e_i`` of the run's item table as every user's query
  (what an inner-product readout of a mean vector can express in this table);
- the sampled x0 against length-normalised item vectors (removes the norm bias).
Plus the item table itself: norms against popularity and the mean pairwise cosine.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from fave.evaluation.evaluator import evaluate
from fave.io_utils import atomic_write_json, atomic_write_text
from fave.training.checkpoint import load_run
from fave.training.run import load_split
from fave.training.trainer import validation_users


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("run_dir")
    ap.add_argument("--out", default="", help="write OUT.json and OUT.md")
    ap.add_argument("--data-dir", default=None)
    args = ap.parse_args()
    torch.set_num_threads(1)
    model, config, _ = load_run(args.run_dir)
    split = load_split(config, args.data_dir)
    val = validation_users(split, config.train)
    E = model.item_emb.weight[1:].detach()  # [N, D]
    pop = np.bincount(np.concatenate(split.train), minlength=split.num_items + 1)[1:].astype(np.float64)
    w0 = model.config.guidance
    rows: list[dict] = []

    def run(name: str, score) -> None:
        model.score_all = score  # type: ignore[method-assign]
        m = evaluate(model, val, config.data.max_len, config.train.eval_batch_size, seed=config.train.eval_seed)
        r = m.metrics["paper"]
        rows.append({"inference": name, "HR@20": r["HR@20"], "NDCG@20": r["NDCG@20"]})
        print(f"{name:60s} H@20={100 * r['HR@20']:.2f} N@20={100 * r['NDCG@20']:.2f}", flush=True)

    def h_of(b):
        return model.encode(b.history)[:, -1]

    for w in sorted({w0, 0.0, 1.0, 4.0}):
        model.config.guidance = w
        run(
            f"sampler, {model.config.steps} steps, w={w:g}" + (" (run's setting)" if w == w0 else ""),
            lambda b, g=None: model.sample(h_of(b), g) @ E.T,
        )
    model.config.guidance = w0

    def one_step(b, g=None):
        h = h_of(b)
        B, D = h.shape
        k = torch.full((2 * B,), model.config.steps - 1)
        f = model.denoiser(torch.zeros(2 * B, D), torch.cat([h, model.null.expand(B, D)]), k)
        return ((1 + w0) * f[:B] - w0 * f[B:]) @ E.T

    run(f"one guided call at the noisiest step from x=0, w={w0:g}", one_step)
    mean = torch.tensor(pop / pop.sum(), dtype=E.dtype) @ E
    run("exact popularity mean sum_i p_i e_i, every user", lambda b, g=None: (mean @ E.T).expand(len(b), -1))
    run(
        f"sampler, w={w0:g}, against normalised item vectors",
        lambda b, g=None: model.sample(h_of(b), g) @ F.normalize(E, dim=1).T,
    )
    norms = E.norm(dim=1).numpy()
    order = np.argsort(-pop)
    c = F.normalize(E, dim=1)
    table = {
        "mean_norm": float(norms.mean()),
        "init_norm_expected": float(model.config.emb_std * np.sqrt(E.shape[1])),
        "norm_top100_popular": float(norms[order[:100]].mean()),
        "norm_rarest500": float(norms[order[-500:]].mean()),
        "spearman_popularity_norm": float(
            np.corrcoef(np.argsort(np.argsort(pop)), np.argsort(np.argsort(norms)))[0, 1]
        ),
        "mean_pairwise_cosine": float(((c @ c.T).sum() - len(c)) / (len(c) * (len(c) - 1))),
    }
    print(json.dumps(table, indent=2))
    if args.out:
        out = Path(args.out)
        doc = {"run": args.run_dir, "phase": "valid", "protocol": "paper", "rows": rows, "item_table": table}
        atomic_write_json(out.with_suffix(".json"), doc)
        lines = [
            f"# DreamRec diagnosis: {args.run_dir} (validation, `paper` protocol, eval seed {config.train.eval_seed})",
            "",
            "Produced by `.venv/bin/python scripts/dreamrec_diagnose.py "
            f"{args.run_dir} --out {args.out}`. Same weights, inference changed only.",
            "",
            "| inference | H@20 (%) | N@20 (%) |",
            "|---|---|---|",
            *(f"| {r['inference']} | {100 * r['HR@20']:.2f} | {100 * r['NDCG@20']:.2f} |" for r in rows),
            "",
            "Item table: " + ", ".join(f"{k} = {v:.3f}" for k, v in table.items()),
            "",
        ]
        atomic_write_text(out.with_suffix(".md"), "\n".join(lines))


if __name__ == "__main__":
    main()
