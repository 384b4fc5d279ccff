"""Figure 4: where the priors start. Gaussian noise ``x_0 ~ N(0, I)`` (Stage 1, FMRec), FAVE's
semantic anchor prior ``x_0 = m * e_k`` (eq. 14, drawn by :meth:`FAVE.anchor` exactly as Stage-2
inference draws it: k uniform over the user's real history items, ``m ~ Bernoulli(p)`` per
channel with the inference retention) and the ground-truth target embeddings, on test users.

The quantitative claim behind the picture: each prior's distance to the user's target item,
averaged over all test users; a uniformly random catalog item is the reference a prior made of
item embeddings has to beat. All vectors come from the FAVE run's own item embedding table.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from fave.data.dataset import EvalSet
from fave.errors import FaveError
from fave.figures.geometry import DISTANCES, distances, mean_std, tsne_2d, unit
from fave.figures.output import pyplot, write_figure
from fave.figures.runs import FigureRun, open_run, raw_users
from fave.figures.states import collect, inference_p_keep, subset, target_embeddings
from fave.figures.trajectories import sample_rows
from fave.models.fave import FAVE

PRIORS = ("gaussian", "anchor", "random_item")
LABELS = {
    "gaussian": "Gaussian noise N(0, I)",
    "anchor": "semantic anchor prior m * e_k",
    "random_item": "random catalog item (reference)",
    "target": "ground-truth target e_target",
}


def draw_priors(run: FigureRun, test: EvalSet, seed: int, batch_size: int) -> dict[str, Tensor]:
    """[n, D] each: Gaussian noise, the anchor prior, a uniformly random item, and the target embedding."""
    model = run.model
    if not isinstance(model, FAVE):
        raise FaveError(f"{run.path} is a {run.name} run; the anchor prior is FAVE's (pass a fave run)")
    p = inference_p_keep(model)
    D, N, device = model.config.hidden, model.num_items, model.device

    def fn(history: Tensor) -> Tensor:
        B = history.shape[0]
        anchor = model.anchor(history, p)[:, -1]  # what FAVE.prior returns at Stage-2 inference
        gaussian = torch.randn(B, D, device=device)
        random_item = model.net.item_emb(torch.randint(1, N + 1, (B,), device=device))
        return torch.stack([gaussian, anchor, random_item])

    model.observe(list(test.inputs))
    with torch.random.fork_rng(devices=[]), torch.no_grad():
        torch.manual_seed(seed)
        drawn = collect(fn, test, run.config.data.max_len, batch_size, device)
    out = dict(zip(PRIORS, drawn, strict=True))
    out["target"] = target_embeddings(model, test.targets)
    return out


def spread(x: Tensor) -> dict[str, float]:
    """How dispersed a set is on the unit sphere: mean l2 of the unit vectors to their (unit) mean direction."""
    u = unit(x)
    centre = unit(u.mean(0))
    return mean_std((u - centre).norm(dim=-1), dim=0)


def run_priors(
    fave_run: str | Path,
    points: int = 300,
    seed: int = 0,
    eval_users: int = 0,
    batch_size: int = 512,
    data_dir: str | Path | None = None,
    command: str = "",
    note: str = "",
) -> dict[str, Any]:
    """Figure 4's data: distances over ``eval_users`` test users (0: all) and a t-SNE map of
    ``points`` of them (seeded), each contributing its Gaussian draw, its anchor and its target."""
    run = open_run(fave_run, data_dir)
    full = run.test_set()
    test = subset(full, sample_rows(len(full.users), eval_users, seed))
    v = draw_priors(run, test, seed, batch_size)
    n = len(test.targets)
    shown = sample_rows(n, points, seed)
    stage = str(run.model.config.stage)
    result: dict[str, Any] = {
        "figure": "prior distributions (paper Figure 4)",
        "command": command,
        "dataset": run.config.dataset,
        "split": "test: each user's last item, input = training part + validation item (leave-one-out)",
        "seed": seed,
        "conditions": note,
        "run": run.describe(),
        "anchor": {
            "p_keep_inference": inference_p_keep(run.model),
            "anchor_positions": run.model.config.anchor_positions,
            "drawn_by": "FAVE.anchor(history, p)[:, -1], what FAVE.prior returns at Stage-2 inference",
            "stage1_only_run": stage == "1",
        },
        "users": n,
        "distance_to_target": {
            name: {d: mean_std(x, dim=0) for d, x in distances(v[name], v["target"]).items()} for name in PRIORS
        },
        "norm": {name: mean_std(v[name].norm(dim=-1), dim=0) for name in (*PRIORS, "target")},
        "spread_unit": {name: spread(v[name]) for name in (*PRIORS, "target")},
        "note": "vectors l2-normalised before t-SNE; distances as in fave.figures.geometry",
    }
    kinds = ("gaussian", "anchor", "target")
    xy = tsne_2d(torch.cat([v[k][shown] for k in kinds]).numpy(), seed)
    m = len(shown)
    result["map"] = {
        "users": raw_users(run, test.users[shown]),
        **{k: xy[i * m : (i + 1) * m].tolist() for i, k in enumerate(kinds)},
    }
    result["cosine_histogram"] = {
        name: distances(v[name], v["target"])["cosine"].tolist() for name in ("gaussian", "anchor", "random_item")
    }
    return result


def plot_priors(result: dict[str, Any]) -> Any:
    """The t-SNE map (Gaussian, anchor, target) and histograms of each prior's cosine distance to its target."""
    plt = pyplot()
    fig, (ax, hx) = plt.subplots(1, 2, figsize=(12.5, 5.2), gridspec_kw={"width_ratios": [1.15, 1]})
    colors = {"gaussian": "tab:blue", "anchor": "tab:orange", "target": "tab:green", "random_item": "0.55"}
    for kind in ("gaussian", "anchor", "target"):
        p = np.asarray(result["map"][kind]).reshape(-1, 2)
        ax.scatter(p[:, 0], p[:, 1], s=9, alpha=0.75, color=colors[kind], label=LABELS[kind])
    ax.set_xticks([])
    ax.set_yticks([])
    ax.legend(fontsize=8, loc="best")
    ax.set_title(f"t-SNE of {len(result['map']['users'])} test users' vectors (l2-normalised)", fontsize=10)
    bins = np.linspace(0, 2, 41)
    for name in ("gaussian", "anchor", "random_item"):
        d = result["distance_to_target"][name]["cosine"]
        hx.hist(
            result["cosine_histogram"][name],
            bins=bins,
            alpha=0.55,
            color=colors[name],
            label=f"{LABELS[name]}: mean {d['mean']:.3f}",
        )
    hx.set_xlabel("cosine distance to the user's target item")
    hx.set_ylabel("test users")
    hx.set_title(f"over all {result['users']} test users", fontsize=10)
    hx.legend(fontsize=8)
    fig.suptitle(f"Prior distributions on {result['dataset']} (FAVE run {result['run']['run']})", fontsize=11)
    fig.tight_layout()
    return fig


def render_markdown(result: dict[str, Any], png: str = "prior-distribution.png") -> str:
    r, a = result["run"], result["anchor"]
    lines = [
        f"# Prior distributions on {result['dataset']} (paper Figure 4)",
        "",
        f"Command: `{result['command']}`" if result["command"] else "",
        "",
        f"![prior distributions]({png})",
        "",
        f"FAVE run `{r['run']}` (stage {r.get('stage', '-')}, seed {r['seed']}). Split: {result['split']}. "
        f"Seed {result['seed']} (users drawn, noise, anchors).",
        f"Anchor prior: {a['drawn_by']}; retention p = {a['p_keep_inference']}, k over `{a['anchor_positions']}`.",
    ]
    if result.get("conditions"):
        lines.append(f"Conditions: {result['conditions']}")
    if a["stage1_only_run"]:
        lines.append(
            "This run is Stage-1-only: the anchor uses its item table (Stage 2 would freeze that table, so the "
            "anchors a Stage-2 run on top of it draws are the same vectors)."
        )
    lines += [
        "",
        f"Distance of each prior to the user's target item embedding, mean ± std over {result['users']} test users:",
        "",
        "| prior | cosine | l2 (unit vectors) | l2 (raw) | norm |",
        "|---|---|---|---|---|",
    ]
    for name in PRIORS:
        d = result["distance_to_target"][name]
        cells = [f"{d[k]['mean']:.3f} ± {d[k]['std']:.3f}" for k in DISTANCES]
        nm = result["norm"][name]
        lines.append(f"| {LABELS[name]} | " + " | ".join(cells) + f" | {nm['mean']:.3f} |")
    nt = result["norm"]["target"]
    lines += [
        f"| (target norm) | | | | {nt['mean']:.3f} |",
        "",
        "Spread on the unit sphere (mean l2 of the unit vectors to their mean direction; larger = more dispersed): "
        + ", ".join(f"{k} {v['mean']:.3f}" for k, v in result["spread_unit"].items()),
        "",
        "The random catalog item (uniform over all items) is a reference, not a prior any model uses: an item "
        "embedding drawn without looking at the user; the anchor's gain over it is what the user's own history adds.",
        "",
    ]
    return "\n".join(lines)


def write_priors(result: dict[str, Any], out: str | Path) -> list[Path]:
    return write_figure(plot_priors(result), result, render_markdown(result, Path(out).name + ".png"), out)
