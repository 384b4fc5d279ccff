"""Tables over finished runs: mean and spread over seeds, both protocols, beside the paper.

Runs are grouped by label: the run directory's name without a trailing ``-seed<N>``
(``runs/ml-100k/fave-seed1`` -> ``fave``), or the label given as ``LABEL=DIR``
(``sasrec=runs/beauty-sasrec-order/balanced-seed0``: runs of different experiments side by side).
Every number comes from a run's ``metrics.json``.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from fave.config import init_source
from fave.errors import FaveError
from fave.io_utils import atomic_write_json, atomic_write_text

# Paper Table 1 (%, `paper` protocol), for side-by-side comparison only (FAVE-NOTES sec. 7).
# Caser, STOSA and AutoSeqRec are not in the notes: they are read from the paper's Table 1 text,
# whose extraction is garbled (values run into the gap subscripts); each value was checked against
# its printed gap to the group's first model, and Caser / AutoSeqRec ML-100k N@20 against Table 4.
# STOSA's ML-100k N@10 cannot be read reliably: None.
PAPER: dict[str, dict[str, tuple[float | None, ...]]] = {
    "ml-100k": {
        "gru4rec": (12.20, 21.85, 6.03, 8.47),
        "sasrec": (13.57, 22.69, 6.34, 8.63),
        "bert4rec": (9.33, 16.86, 4.46, 6.34),
        "caser": (11.24, 19.52, 5.07, 7.14),
        "stosa": (13.65, 21.78, None, 8.33),
        "autoseqrec": (14.66, 22.87, 7.40, 9.46),
        "diffurec": (12.85, 19.41, 6.41, 8.05),
        "dreamrec": (12.44, 20.84, 5.98, 7.82),
        "fmrec": (15.49, 24.31, 7.66, 9.82),
        "fave": (15.87, 26.13, 8.20, 10.79),
    },
    "beauty": {
        "gru4rec": (1.94, 3.85, 0.90, 1.38),
        "sasrec": (6.26, 8.98, 3.23, 3.66),
        "bert4rec": (3.72, 5.79, 1.83, 2.35),
        "caser": (2.82, 4.40, 1.36, 1.76),
        "stosa": (6.13, 9.10, 3.21, 3.95),
        "autoseqrec": (7.10, 9.33, 4.02, 5.01),
        "diffurec": (7.84, 10.94, 4.70, 5.48),
        "dreamrec": (6.98, 9.45, 3.98, 4.99),
        "fmrec": (8.27, 11.63, 4.95, 5.79),
        "fave": (8.48, 11.90, 4.97, 5.84),
    },
}
KEYS = ("HR@10", "HR@20", "NDCG@10", "NDCG@20")
# the rows' order in tables: the paper's Table 1 (RNN/CNN, Transformer, generative), then the rest
TABLE_ORDER = (
    "pop",
    "gru4rec",
    "caser",
    "sasrec",
    "bert4rec",
    "stosa",
    "diffurec",
    "autoseqrec",
    "dreamrec",
    "fmrec",
    "fave",
)


def label_of(run_dir: Path) -> str:
    return re.sub(r"-seed\d+$", "", run_dir.name)


def split_label(arg: str | Path) -> tuple[str | None, str]:
    """``LABEL=REST`` -> ``(LABEL, REST)``; anything else (an existing path with "=" in it too) -> ``(None, arg)``."""
    m = re.fullmatch(r"([\w.+-]+)=(.+)", str(arg))
    if m and not Path(arg).exists():
        return m.group(1), m.group(2)
    return None, str(arg)


def labelled(run: str | Path) -> tuple[str, Path]:
    """``(label, directory)`` of a report argument: ``LABEL=DIR``, or a directory labelled by :func:`label_of`."""
    label, d = split_label(run)
    return label or label_of(Path(d)), Path(d)


def grouped(run_dirs: list[str | Path]) -> dict[str, list[Path]]:
    """The report's run directories by label, in the order given."""
    groups: dict[str, list[Path]] = {}
    for label, d in map(labelled, run_dirs):
        groups.setdefault(label, []).append(d)
    return groups


def aggregate(run_dirs: list[str | Path]) -> dict[str, Any]:
    """-> {label: {model, dataset, seeds, train_seconds, stage_seconds, test: {protocol: {metric: {mean, std}}}}}."""
    out: dict[str, Any] = {}
    for label, dirs in grouped(run_dirs).items():
        runs = [_with_init_stages(d) for d in dirs]
        entry: dict[str, Any] = {
            "model": runs[0]["model"],
            "dataset": runs[0]["dataset"],
            "seeds": [r["seed"] for r in runs],
            "train_seconds": seed_stat([r["train_seconds"] for r in runs]),
        }
        stages: dict[str, list[float]] = {}
        for r in runs:
            for s in r.get("stages", []):
                stages.setdefault(s["name"], []).append(s["seconds"])
        entry["stage_seconds"] = {k: seed_stat(v) for k, v in stages.items()}
        # epochs trained per seed (one count per stage): wall-clock budgets make them depend on the machine's speed
        entry["epochs"] = [[s.get("epochs") for s in r.get("stages", [])] for r in runs]
        for phase in ("valid", "test"):
            entry[phase] = {
                p: {k: seed_stat([r[phase][p][k] for r in runs]) for k in runs[0][phase][p]}
                for p in ("paper", "masked")
            }
        if all("diversity" in r for r in runs):
            entry["diversity"] = {
                p: {k: seed_stat([r["diversity"][p][k] for r in runs]) for k in runs[0]["diversity"][p]}
                for p in runs[0]["diversity"]
            }
        out[label] = entry
    return out


def _read_metrics(d: Path) -> dict[str, Any]:
    f = d / "metrics.json"
    if not f.is_file():
        raise FaveError(f"{f} not found; is {d} a finished run directory?")
    return json.loads(f.read_text())


def _with_init_stages(d: Path) -> dict[str, Any]:
    """A run's metrics; when it was initialised from another run (FAVE Stage 2 from a Stage-1
    run, or from a two-stage run's ``stage1.safetensors``), that run's stages up to the one it
    started from and their training time are counted too."""
    m = _read_metrics(d)
    cfg = d / "config.yaml"
    init = yaml.safe_load(cfg.read_text()).get("train", {}).get("init_from") if cfg.is_file() else ""
    init_dir, stage = init_source(init) if init else (Path(), "")
    if init and (init_dir / "metrics.json").is_file():
        first = _read_metrics(init_dir)
        stages, seconds = first.get("stages", []), first["train_seconds"]
        names = [s["name"] for s in stages]
        if stage in names:  # a stage's weights (stage1.safetensors): only the stages up to it
            stages = stages[: names.index(stage) + 1]
            seconds = sum(s["seconds"] for s in stages)
        m = {**m, "stages": stages + m.get("stages", []), "train_seconds": seconds + m["train_seconds"]}
    return m


def pct(stat: dict[str, float]) -> str:
    """A mean ± std fraction as percent: "20.11 ± 0.69"."""
    return f"{100 * stat['mean']:.2f} ± {100 * stat['std']:.2f}"


def seed_stat(values: list[float]) -> dict[str, float]:
    """Mean, sample std (ddof 1; 0 for one value) and count of one number over seeds."""
    a = np.asarray(values, dtype=float)
    return {"mean": float(a.mean()), "std": float(a.std(ddof=1)) if len(a) > 1 else 0.0, "n": len(a)}


def markdown(table: dict[str, Any], title: str, command: str = "") -> str:
    lines = [f"# {title}", ""]
    if command:
        lines += ["Produced by:", "", "```", command, "```", ""]
    lines += [
        "Test set, leave-one-out, full ranking over all items; mean ± std over seeds (%). Training time: "
        "wall-clock seconds of training on this machine (per stage in brackets; validation excluded); "
        "epochs: per seed, Stage 1 + Stage 2 where there are two.",
        "`paper` = history not removed (as the published numbers); `masked` = the user's history removed.",
        "",
        "| run | protocol | " + " | ".join(KEYS) + " | seeds | train time (s) | epochs "
        "| paper's row (H@10 H@20 N@10 N@20) | ours - paper (H@20 / N@20) |",
        "|---|---|" + "---|" * len(KEYS) + "---|---|---|---|---|",
    ]
    rank = {m: i for i, m in enumerate(TABLE_ORDER)}
    for label, e in sorted(table.items(), key=lambda kv: rank.get(kv[1]["model"], len(rank))):
        paper = PAPER.get(e["dataset"], {}).get(label) if label == e["model"] else None
        ref = " / ".join("?" if v is None else f"{v:.2f}" for v in paper) if paper else "-"
        gap = (
            f"{100 * e['test']['paper']['HR@20']['mean'] - paper[1]:+.2f} / "
            f"{100 * e['test']['paper']['NDCG@20']['mean'] - paper[3]:+.2f}"
            if paper
            else ""
        )
        t = e["train_seconds"]
        stage = ", ".join(f"{k} {v['mean']:.0f}" for k, v in e.get("stage_seconds", {}).items())
        epochs = ", ".join("+".join("?" if n is None else str(n) for n in ep) for ep in e.get("epochs", []))
        for p in ("paper", "masked"):
            cells = " | ".join(pct(e["test"][p][k]) for k in KEYS)
            time_cell = f"{t['mean']:.0f}" + (f" ({stage})" if stage and len(e["stage_seconds"]) > 1 else "")
            lines.append(
                f"| {label} | {p} | {cells} | {len(e['seeds'])} | {time_cell} | {epochs} "
                f"| {ref if p == 'paper' else ''} | {gap if p == 'paper' else ''} |"
            )
    lines += [
        "",
        "Validation (the second-last item; the split that selects the epoch), the same runs:",
        "",
        "| run | split, protocol | " + " | ".join(KEYS) + " | seeds |",
        "|---|---|" + "---|" * len(KEYS) + "---|",
    ]
    for label, e in sorted(table.items(), key=lambda kv: rank.get(kv[1]["model"], len(rank))):
        for p in ("paper", "masked"):
            cells = " | ".join(pct(e["valid"][p][k]) for k in KEYS)
            lines.append(f"| {label} | valid {p} | {cells} | {len(e['seeds'])} |")
    return "\n".join(lines) + "\n"


SIGNIFICANCE_NOTE = (
    "Per-user HR/NDCG on the test users, from each run's saved per-user ranks (ranks.npz). Seeds: each user's "
    "value is the mean over that model's seeds (seeds are not paired across models), and the samples are the "
    "users every compared run has, so n = users. Two-sided paired t-test and Wilcoxon signed-rank test (scipy; "
    "users with equal values dropped), p-values corrected with Holm-Bonferroni over all (baseline, metric) "
    "comparisons of each test and protocol."
)


def significance(run_dirs: list[str | Path], table: dict[str, Any], reference: str = "fave") -> dict[str, Any] | None:
    """Paired tests of the ``reference`` label against every label of another model on the same
    dataset, where every run of both has saved ranks. None when the reference is not in the table."""
    from fave.evaluation.significance import CORRECTION, as_dicts, compare_runs, load_ranks

    ref = table.get(reference)
    if ref is None:
        return None
    ranks = {label: [load_ranks(d) for d in dirs] for label, dirs in grouped(run_dirs).items()}
    out: dict[str, Any] = {
        "reference": reference,
        "phase": "test",
        "metrics": list(KEYS),
        "correction": CORRECTION,
        "note": SIGNIFICANCE_NOTE,
        "without_ranks": sorted(k for k, v in ranks.items() if any(r is None for r in v)),
        "tests": {},
    }
    if reference in out["without_ranks"]:
        return out
    baselines = {
        label: runs
        for label, runs in ranks.items()
        if label not in out["without_ranks"]
        and table[label]["model"] != ref["model"]
        and table[label]["dataset"] == ref["dataset"]
    }
    if not baselines:
        return out
    try:
        for p in ("paper", "masked"):
            out["tests"][p] = as_dicts(compare_runs(ranks[reference], baselines, "test", p, KEYS))
    except ImportError:
        out["error"] = "scipy is not installed (pip install scipy): no p-values"
    return out


def _p(p: float) -> str:
    return "-" if p != p else f"{p:.2g}"


def significance_markdown(sig: dict[str, Any] | None) -> str:
    if not sig:
        return ""
    ref = sig["reference"]
    lines = ["", f"## Paired significance: {ref} against each baseline ({sig['phase']} users)", "", sig["note"], ""]
    if sig.get("error"):
        lines.append(sig["error"])
    if sig["without_ranks"]:
        lines.append(
            "No saved per-user ranks (trained before they were saved; `fave evaluate RUN --save-ranks` adds them): "
            + ", ".join(sig["without_ranks"])
            + "."
        )
        lines.append("")
    if sig["tests"]:
        lines += [
            f"| baseline | protocol | metric | {ref} | baseline | {ref} - baseline | t-test p (Holm) "
            "| Wilcoxon p (Holm) | users |",
            "|---|---|---|---|---|---|---|---|---|",
        ]
        for p, tests in sig["tests"].items():
            for t in tests:
                lines.append(
                    f"| {t['baseline']} | {p} | {t['metric']} | {100 * t['mean']:.2f} | {100 * t['mean_baseline']:.2f} "
                    f"| {100 * t['diff']:+.2f} | {_p(t['t_p'])} ({_p(t['t_p_holm'])}) "
                    f"| {_p(t['wilcoxon_p'])} ({_p(t['wilcoxon_p_holm'])}) | {t['n_users']} |"
                )
    return "\n".join(lines) + "\n"


def write_report(
    run_dirs: list[str], out_stem: str | Path, title: str, command: str = "", reference: str = "fave"
) -> dict[str, Any]:
    """The table of :func:`aggregate` as JSON and Markdown, with :func:`significance` of
    ``reference`` against the other models when their runs saved per-user ranks."""
    table = aggregate(run_dirs)
    sig = significance(run_dirs, table, reference)
    out_stem = Path(out_stem)
    doc = {"title": title, "command": command, "runs": [str(d) for d in run_dirs], "results": table}
    if sig is not None:
        doc["significance"] = sig
    atomic_write_json(out_stem.with_suffix(".json"), doc)
    atomic_write_text(out_stem.with_suffix(".md"), markdown(table, title, command) + significance_markdown(sig))
    return table


# -- Table 4: diversity ------------------------------------------------------------------
# Paper Table 4 (ML-100k, ILD@20 / N@20 in %), FAVE-NOTES sec. 7; Caser and AutoSeqRec from the paper's
# table itself (0.7440 / 7.1439, 0.3350 / 9.4584), which the notes leave out. For side-by-side comparison only.
PAPER_DIVERSITY: dict[str, dict[str, tuple[float, float]]] = {
    "ml-100k": {
        "caser": (0.744, 7.14),
        "sasrec": (0.887, 8.63),
        "autoseqrec": (0.335, 9.46),
        "diffurec": (0.831, 8.05),
        "fmrec": (0.379, 9.82),
        "fave": (0.435, 10.79),
    },
}
# The vectors each model's ``item_representation()`` returns, on which ILD is computed. The rule: the
# vectors the model scores items with (score = query . vector), i.e. the model's own item geometry;
# the paper does not say which it used. ILD of different models is measured in different spaces.
ITEM_VECTORS: dict[str, str] = {
    "gru4rec": "tied item embeddings (input = output table)",
    "sasrec": "tied item embeddings (input = output table)",
    "bert4rec": "tied item embeddings (input = output table, [mask] row excluded)",
    "caser": "output item vectors W' [2d] (not the input embeddings)",
    "stosa": "means of the stochastic (Gaussian) item embeddings",
    "autoseqrec": "the user decoder's output weights, one vector per item",
    "diffurec": "item embedding table: diffusion targets x0 and the scoring table",
    "dreamrec": "item embedding table: diffusion targets x0, encoder inputs and the scoring table",
    "fmrec": "item embedding table: flow targets x1 and the scoring table",
    "fave": "item embedding table: flow targets x1 and the scoring table",
    "pop": "none (no item vectors: coverage only)",
}
DIVERSITY_ORDER = ("caser", "sasrec", "autoseqrec", "diffurec", "fmrec", "fave")


def diversity_rows(table: dict[str, Any], k: int = 20) -> list[dict[str, Any]]:
    """One row per label and protocol: ILD@k, NDCG@k and Coverage@k (mean, std over seeds), the
    item vectors ILD is computed on, and the paper's Table-4 values where it has them."""
    first = {m: i for i, m in enumerate(DIVERSITY_ORDER)}
    rank = {m: len(first) + i for i, m in enumerate(TABLE_ORDER)} | first
    rows = []
    for label, e in sorted(table.items(), key=lambda kv: rank.get(kv[1]["model"], len(rank))):
        paper = PAPER_DIVERSITY.get(e["dataset"], {}).get(label) if label == e["model"] else None
        for p in ("paper", "masked"):
            div = e.get("diversity", {}).get(p, {})
            rows.append(
                {
                    "run": label,
                    "model": e["model"],
                    "protocol": p,
                    "seeds": e["seeds"],
                    f"ILD@{k}": div.get(f"ILD@{k}"),
                    f"NDCG@{k}": e["test"][p].get(f"NDCG@{k}"),
                    f"Coverage@{k}": div.get(f"Coverage@{k}"),
                    "item_vectors": ITEM_VECTORS.get(e["model"], "the model's item_representation()"),
                    "paper_ILD": paper[0] if paper and p == "paper" else None,
                    "paper_NDCG": paper[1] if paper and p == "paper" else None,
                }
            )
    return rows


def _mean_std(stat: dict[str, float] | None, scale: float = 1.0, digits: int = 3) -> str:
    return "-" if stat is None else f"{scale * stat['mean']:.{digits}f} ± {scale * stat['std']:.{digits}f}"


def diversity_markdown(rows: list[dict[str, Any]], title: str, command: str = "", k: int = 20) -> str:
    lines = [f"# {title}", ""]
    if command:
        lines += ["Produced by:", "", "```", command, "```", ""]
    lines += [
        f"Test set, full ranking; every user's top-{k} list. ILD@{k} = mean pairwise cosine distance within a list, "
        f"averaged over users; Coverage@{k} = fraction of the catalog in at least one user's top-{k}; NDCG@{k} in %. "
        "Mean ± std over seeds. `paper` = history not removed (the paper's Table 4 protocol); `masked` = the "
        "user's history removed before the top-K is taken.",
        "ILD is computed on each model's own item vectors (`item_representation()`: the vectors it scores items "
        "with), so values of different models live in different spaces; the paper does not say which it used. "
        "The paper's columns are its published Table 4 (ML-100k), not reruns.",
        "",
        f"| run | protocol | ILD@{k} | N@{k} (%) | Coverage@{k} | seeds | paper ILD@{k} | paper N@{k} | "
        "ILD computed on |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        paper_ild = "" if r["paper_ILD"] is None else f"{r['paper_ILD']:.3f}"
        paper_n = "" if r["paper_NDCG"] is None else f"{r['paper_NDCG']:.2f}"
        lines.append(
            f"| {r['run']} | {r['protocol']} | {_mean_std(r[f'ILD@{k}'])} | {_mean_std(r[f'NDCG@{k}'], 100, 2)} "
            f"| {_mean_std(r[f'Coverage@{k}'])} | {len(r['seeds'])} | {paper_ild} | {paper_n} | {r['item_vectors']} |"
        )
    return "\n".join(lines) + "\n"


def write_diversity_report(
    run_dirs: list[str], out_stem: str | Path, title: str, command: str = "", k: int = 20
) -> list[dict[str, Any]]:
    """Table 4 over finished runs (their metrics.json ``diversity`` block) as JSON and Markdown."""
    rows = diversity_rows(aggregate(run_dirs), k)
    out_stem = Path(out_stem)
    doc = {
        "title": title,
        "command": command,
        "runs": [str(d) for d in run_dirs],
        "k": k,
        "paper_table4": PAPER_DIVERSITY,
        "rows": rows,
    }
    atomic_write_json(out_stem.with_suffix(".json"), doc)
    atomic_write_text(out_stem.with_suffix(".md"), diversity_markdown(rows, title, command, k))
    return rows
