"""Figure 3: inference trajectories of FAVE (one step from its anchor prior) and FMRec (30 Euler
steps from Gaussian noise) on test users, t-SNE of the l2-normalised states with the targets.

The number behind the picture: the distance of each state to the user's target item, per
step, averaged over the test users (not only the plotted ones). FAVE and FMRec have different
item embedding tables, so each model's trajectories are mapped with its own targets and item
embeddings, one panel each; coordinates are not comparable across panels.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from fave.errors import FaveError
from fave.figures.geometry import DISTANCES, distances, mean_std, path_length, tsne_2d
from fave.figures.output import pyplot, write_figure
from fave.figures.runs import FigureRun, hit_rate, open_run, raw_items, raw_users, same_data
from fave.figures.states import collect, fave_states, fmrec_states, one_step_inference, subset, target_embeddings
from fave.models.fave import FAVE
from fave.models.fmrec import FMRec

NAMES = {"fave": "FAVE", "fmrec": "FMRec"}
NOTE = (
    "FAVE and FMRec have different item embedding tables: each panel is its own t-SNE of that "
    "model's states, its own target embeddings and a sample of its own item embeddings (grey); "
    "coordinates are not comparable across panels. All vectors are l2-normalised before t-SNE."
)


def trajectory_summary(states: Tensor, targets: Tensor) -> dict[str, Any]:
    """Distances of every state to the target, per step, over users. states [S, n, D], targets [n, D]."""
    S = states.shape[0]
    d = distances(states, targets[None])  # each [S, n]
    out: dict[str, Any] = {"t": [k / (S - 1) for k in range(S)], "users": int(states.shape[1])}
    out.update({name: mean_std(d[name], dim=1) for name in DISTANCES})
    out["path_length_unit"] = mean_std(path_length(states), dim=0)
    out["start_to_end_l2_unit"] = mean_std(distances(states[-1], states[0])["l2_unit"], dim=0)
    return out


def sample_rows(n: int, k: int, seed: int) -> np.ndarray:
    """``k`` of ``n`` rows, seeded and sorted (all of them when k is 0 or at least n)."""
    if k <= 0 or k >= n:
        return np.arange(n)
    return np.sort(np.random.default_rng(seed).choice(n, size=k, replace=False))


def model_states(run: FigureRun, rows: np.ndarray, seed: int, batch_size: int) -> tuple[Tensor, bool]:
    """The trajectories of test rows ``rows`` under ``seed``: [S, n, D], and whether FAVE was Stage-1-only."""
    test = subset(run.test_set(), rows)
    model, max_len = run.model, run.config.data.max_len
    run.model.observe(list(test.inputs))
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        if isinstance(model, FAVE):
            with one_step_inference(model) as stage1_only:
                return collect(lambda h: fave_states(model, h), test, max_len, batch_size, model.device), stage1_only
        if isinstance(model, FMRec):
            return collect(lambda h: fmrec_states(model, h), test, max_len, batch_size, model.device), False
    raise FaveError(f"{run.path}: trajectories are drawn for fave and fmrec runs, not {run.name}")


def panel_map(run: FigureRun, states: Tensor, targets: Tensor, background: int, seed: int) -> dict[str, Any]:
    """t-SNE of [background items; targets; states] for the plotted users. states [S, u, D], targets [u, D]."""
    S, u, D = states.shape
    items = run.model.net.items.detach().cpu()
    rng = np.random.default_rng(seed)
    bg = (
        np.sort(rng.choice(len(items), size=min(background, len(items)), replace=False))
        if background
        else np.zeros(0, int)
    )
    points = torch.cat([items[bg], targets, states.transpose(0, 1).reshape(u * S, D)]).numpy()
    xy = tsne_2d(points, seed)
    nb = len(bg)
    return {
        "background_items": raw_items(run, bg + 1),
        "background_xy": xy[:nb].tolist(),
        "target_xy": xy[nb : nb + u].tolist(),
        "states_xy": xy[nb + u :].reshape(u, S, 2).tolist(),  # [user][step] -> (x, y)
    }


def run_trajectories(
    fave_run: str | Path,
    fmrec_run: str | Path,
    users: int = 5,
    seed: int = 0,
    eval_users: int = 0,
    background: int = 300,
    batch_size: int = 512,
    data_dir: str | Path | None = None,
    command: str = "",
    note: str = "",
) -> dict[str, Any]:
    """Figure 3's data: per-step distances over ``eval_users`` test users (0: all) and the t-SNE
    maps of ``users`` of them (seeded; the same users in both panels)."""
    fave = open_run(fave_run, data_dir)
    fmrec = open_run(fmrec_run, data_dir, split=fave.split)
    same_data(fave, fmrec)
    for run, cls in ((fave, FAVE), (fmrec, FMRec)):
        if not isinstance(run.model, cls):
            raise FaveError(f"{run.path} is a {run.name} run; pass a {cls.__name__.lower()} run in that place")
    full = fave.test_set()
    rows = sample_rows(len(full.users), eval_users, seed)
    test = subset(full, rows)
    plotted = np.sort(np.random.default_rng(seed).choice(len(rows), size=min(users, len(rows)), replace=False))
    result: dict[str, Any] = {
        "figure": "trajectories (paper Figure 3)",
        "command": command,
        "dataset": fave.config.dataset,
        "split": "test: each user's last item, input = training part + validation item (leave-one-out)",
        "seed": seed,
        "note": NOTE,
        "conditions": note,
        "runs": {"fave": fave.describe(), "fmrec": fmrec.describe()},
        "plotted_users": raw_users(fave, test.users[plotted]),
        "plotted_targets": raw_items(fave, test.targets[plotted]),
        "distance_to_target": {},
        "maps": {},
    }
    for key, run in (("fave", fave), ("fmrec", fmrec)):
        states, stage1_only = model_states(run, rows, seed, batch_size)
        targets = target_embeddings(run.model, test.targets)
        summary = trajectory_summary(states, targets)
        summary["final_paper_HR@20"] = hit_rate(states[-1], run.model.net.items.detach().cpu(), test.targets)
        summary["inference"] = _inference(run, stage1_only)
        result["distance_to_target"][key] = summary
        result["maps"][key] = panel_map(run, states[:, plotted], targets[plotted], background, seed)
        result["maps"][key]["cosine_per_step"] = distances(states[:, plotted], targets[plotted][None])[
            "cosine"
        ].T.tolist()
    return result


def _inference(run: FigureRun, stage1_only: bool) -> str:
    if isinstance(run.model, FMRec):
        return f"{run.model.config.sample_steps} Euler steps from x_0 ~ N(0, I) (FMRec.generate; every state kept)"
    text = "one step x_1_hat = f(x_0, 0, 1) from the semantic anchor prior x_0 = m * e_k (FAVE.prior, FAVE.generate)"
    if stage1_only:
        text += (
            "; this run is Stage-1-only: its network was trained on Gaussian-noise paths only, and its own "
            "evaluation samples with Euler from noise instead"
        )
    return text


def plot_trajectories(result: dict[str, Any]) -> Any:
    """Three panels: FAVE's map, FMRec's map, mean cosine distance to the target against t."""
    plt = pyplot()
    fig, axes = plt.subplots(1, 3, figsize=(16, 5.2), gridspec_kw={"width_ratios": [1, 1, 0.9]})
    colors = plt.get_cmap("tab10").colors
    stage1 = "Stage-1-only" in result["distance_to_target"]["fave"]["inference"]
    titles = {
        "fave": "FAVE" + (" (Stage-1-only run)" if stage1 else "") + ": one step from the anchor prior",
        "fmrec": f"FMRec: {len(result['distance_to_target']['fmrec']['t']) - 1} Euler steps from Gaussian noise",
    }
    for ax, key in zip(axes[:2], ("fave", "fmrec"), strict=True):
        m = result["maps"][key]
        bg = np.asarray(m["background_xy"]).reshape(-1, 2)
        ax.scatter(bg[:, 0], bg[:, 1], s=5, c="0.82", label="other items", zorder=1)
        for i, (path, tgt) in enumerate(zip(m["states_xy"], m["target_xy"], strict=True)):
            c = colors[i % len(colors)]
            p = np.asarray(path)
            ax.plot(p[:, 0], p[:, 1], "-", color=c, lw=1.0, alpha=0.7, zorder=2)
            ax.scatter(p[1:-1, 0], p[1:-1, 1], s=9, color=c, zorder=3)
            ax.scatter(p[0, 0], p[0, 1], s=45, facecolors="white", edgecolors=[c], lw=1.5, zorder=4)
            ax.scatter(p[-1, 0], p[-1, 1], s=55, marker="X", color=c, zorder=5)
            ax.scatter(tgt[0], tgt[1], s=160, marker="*", color=c, edgecolors="k", lw=0.6, zorder=6)
            ax.annotate(str(i + 1), tgt, textcoords="offset points", xytext=(5, 5), fontsize=8)
        ax.set_title(titles[key], fontsize=10)
        ax.set_xticks([])
        ax.set_yticks([])
    handles = [
        plt.Line2D([], [], ls="", marker="o", mfc="white", mec="k", label="start x_0"),
        plt.Line2D([], [], ls="", marker="X", color="k", label="final x_1_hat"),
        plt.Line2D([], [], ls="", marker="*", color="k", ms=11, label="target item"),
        plt.Line2D([], [], ls="", marker=".", color="0.75", label="other items"),
    ]
    axes[0].legend(handles=handles, fontsize=8, loc="best")
    ax = axes[2]
    for key, style in (("fave", "o-"), ("fmrec", ".-")):
        d = result["distance_to_target"][key]
        mean, std = np.asarray(d["cosine"]["mean"]), np.asarray(d["cosine"]["std"])
        steps = len(d["t"]) - 1
        ax.plot(d["t"], mean, style, label=f"{NAMES[key]} ({steps} step{'s' if steps > 1 else ''})")
        ax.fill_between(d["t"], mean - std, mean + std, alpha=0.15)
    n = result["distance_to_target"]["fave"]["users"]
    ax.set_xlabel("t (0: prior, 1: output)")
    ax.set_ylabel("cosine distance to the target item")
    ax.set_title(f"mean ± std over {n} test users", fontsize=10)
    ax.legend(fontsize=8)
    fig.suptitle(f"Inference trajectories on {result['dataset']} (t-SNE of l2-normalised states)", fontsize=11)
    fig.tight_layout()
    return fig


def render_markdown(result: dict[str, Any], png: str = "trajectories.png") -> str:
    d = result["distance_to_target"]
    lines = [
        f"# Inference trajectories on {result['dataset']} (paper Figure 3)",
        "",
        f"Command: `{result['command']}`" if result["command"] else "",
        "",
        f"![trajectories]({png})",
        "",
        f"Split: {result['split']}. Seed {result['seed']} (users drawn, priors and noise).",
        *([f"Conditions: {result['conditions']}", ""] if result.get("conditions") else [""]),
        "| model | run | stage | seed | inference |",
        "|---|---|---|---|---|",
    ]
    for key in ("fave", "fmrec"):
        r = result["runs"][key]
        lines.append(f"| {key} | `{r['run']}` | {r.get('stage', '-')} | {r['seed']} | {d[key]['inference']} |")
    lines += [
        "",
        f"Distance of the state to the user's target item, mean ± std over {d['fave']['users']} test users "
        "(cosine distance and l2 of the unit vectors: what the picture shows; raw l2 also sees the lengths):",
        "",
        "| model | t | cosine | l2 (unit) | l2 (raw) |",
        "|---|---|---|---|---|",
    ]
    for key in ("fave", "fmrec"):
        t = d[key]["t"]
        show = sorted({0, len(t) - 1, *range(0, len(t), 5)})
        for k in show:
            cells = [f"{d[key][n]['mean'][k]:.3f} ± {d[key][n]['std'][k]:.3f}" for n in DISTANCES]
            lines.append(f"| {key} | {t[k]:.3f} | " + " | ".join(cells) + " |")
    lines += [
        "",
        "| model | path length (unit vectors) | start-to-end (unit l2) | H@20 of the final state (paper protocol) |",
        "|---|---|---|---|",
    ]
    for key in ("fave", "fmrec"):
        pl, se = d[key]["path_length_unit"], d[key]["start_to_end_l2_unit"]
        lines.append(
            f"| {key} | {pl['mean']:.3f} ± {pl['std']:.3f} | {se['mean']:.3f} ± {se['std']:.3f} | "
            f"{100 * d[key]['final_paper_HR@20']:.2f} |"
        )
    lines += [
        "",
        f"Plotted users (numbered 1..{len(result['plotted_users'])} in the panels): "
        + ", ".join(
            f"{u} (target {i})" for u, i in zip(result["plotted_users"], result["plotted_targets"], strict=True)
        ),
        "",
        result["note"],
        "Every FMRec step is in the JSON (`distance_to_target.fmrec`); the table shows every fifth.",
        "",
    ]
    return "\n".join(lines)


def write_trajectories(result: dict[str, Any], out: str | Path) -> list[Path]:
    return write_figure(plot_trajectories(result), result, render_markdown(result, Path(out).name + ".png"), out)
