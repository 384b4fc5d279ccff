"""Figure 5: hyperparameter sensitivity. HR@20 and NDCG@20 of FAVE against each of the four
parameters the paper varies (Sec. 6.7), the other three at the paper's chosen values:
alpha (weight of L_tgt), beta (L_src), gamma (L_cons) and p (anchor retention, ``p_keep``).

The figure reads finished runs only (``config.yaml`` for the values, ``metrics.json`` for the
numbers); it trains nothing (``scripts/figure5.sh`` trains the grid). Which parameter a run varies
is the one of the four that differs from the chosen values, or what the user names
(``alpha=RUN``); a run at the chosen values is the chosen point of every parameter drawn.

Where the parameters act (:mod:`fave.models.fave`): alpha and beta weigh losses of both stages
(``FAVE._stage1_loss`` passes them to ``matching_loss``; ``FAVE._stage2_loss`` adds
``alpha L_tgt + beta L_src``), gamma only the Stage-2 objective, and p only the anchor prior, which
Stage 1 never draws (``FAVE.prior`` returns Gaussian noise in Stage 1). A Stage-2 run trained from
a Stage-1 run (``train.init_from``) is therefore a valid point for gamma and p, and for alpha and
beta only when its Stage 1 was trained with the same alpha and beta (checked).
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from fave.config import RunConfig
from fave.errors import FaveError
from fave.figures.output import pyplot, write_figure
from fave.reporting import KEYS, seed_stat
from fave.rundir import CONFIG, METRICS, read_config
from fave.training.run import PROTOCOL_NOTE

# the paper's chosen values (Sec. 6.7; FAVEConfig's defaults), by the figure's names
CHOSEN = {"alpha": 0.5, "beta": 0.2, "gamma": 0.1, "p": 0.75}
CONFIG_KEY = {"alpha": "alpha", "beta": "beta", "gamma": "gamma", "p": "p_keep"}  # FAVEConfig fields
LABELS = {
    "alpha": "(a) alpha: weight of L_tgt",
    "beta": "(b) beta: weight of L_src",
    "gamma": "(c) gamma: weight of L_cons",
    "p": "(d) p: anchor retention rate",
}
ACTS_IN = {"alpha": "Stages 1 and 2", "beta": "Stages 1 and 2", "gamma": "Stage 2", "p": "Stage 2"}
PHASES, PROTOCOLS = ("valid", "test"), ("paper", "masked")
SHOWN = ("HR@20", "NDCG@20")  # the metrics drawn
BOTH = "both stages in one run"
# config keys that do not make two runs different experiments: the four parameters, how the stages
# were split over runs, the seed, and where and how fast a run trained
IGNORED = {
    *(f"params.{k}" for k in (*CONFIG_KEY.values(), "stage")),
    "train.init_from",
    "train.device",
    "train.threads",
    "seed",
}


@dataclass
class SensitivityRun:
    """One finished FAVE run as a point of the figure."""

    path: str
    seed: int
    values: dict[str, float]  # alpha, beta, gamma, p -> the run's value
    varied: str | None  # the parameter that differs from CHOSEN; None: all four at the chosen values
    stage1: str | None  # the Stage-1 run this Stage-2 run started from; None: both stages in this run
    metrics: dict[str, dict[str, dict[str, float]]]  # phase -> protocol -> metric -> value
    setup: dict[str, Any]  # the flattened config without the IGNORED keys: equal across the figure's runs

    @property
    def trained(self) -> str:
        return f"Stage 2 from {self.stage1}" if self.stage1 else BOTH


def _flat(d: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in d.items():
        if isinstance(v, dict):
            out.update(_flat(v, f"{prefix}{k}."))
        else:
            out[f"{prefix}{k}"] = v
    return out


def _setup(config: RunConfig) -> dict[str, Any]:
    return {k: v for k, v in _flat(config.to_dict()).items() if k not in IGNORED}


def _difference(a: dict[str, Any], b: dict[str, Any]) -> str | None:
    """The first key whose value differs between two setups, as ``key: a -> b``, or None."""
    for key in sorted(set(a) | set(b)):
        if a.get(key) != b.get(key):
            return f"{key}: {a.get(key)!r} -> {b.get(key)!r}"
    return None


def _values(config: RunConfig) -> dict[str, float]:
    return {name: float(getattr(config.params, key)) for name, key in CONFIG_KEY.items()}


def _varied(path: str | Path, values: dict[str, float]) -> str | None:
    differ = [n for n in CHOSEN if not math.isclose(values[n], CHOSEN[n], rel_tol=1e-9, abs_tol=1e-12)]
    if len(differ) > 1:
        shown = ", ".join(f"{n}={values[n]:g}" for n in differ)
        raise FaveError(
            f"{path} differs from the paper's values in {' and '.join(differ)} ({shown}); "
            "a sensitivity run varies one of alpha, beta, gamma, p"
        )
    return differ[0] if differ else None


def _stage1_of(path: str | Path, config: RunConfig, values: dict[str, float]) -> str:
    """The Stage-1 run a Stage-2 run started from, checked to be the same experiment's Stage 1."""
    init = config.train.init_from
    if not init:
        raise FaveError(f"{path} trains Stage 2 from scratch (no train.init_from); pass runs whose Stage 1 is known")
    if not (Path(init) / CONFIG).is_file():
        raise FaveError(
            f"{path} starts from {init} (train.init_from), which is not a run directory from here; "
            "draw the figure from the directory the runs were trained in"
        )
    first = read_config(init)
    if first.model != "fave" or str(first.params.stage) != "1":
        raise FaveError(f"{path} starts from {init}, which is not a FAVE Stage-1 run (params.stage=1)")
    if first.seed != config.seed:
        raise FaveError(f"{path} (seed {config.seed}) starts from {init}, a Stage 1 of seed {first.seed}")
    for name in ("alpha", "beta"):  # they weigh Stage-1 losses too
        before = _values(first)[name]
        if not math.isclose(before, values[name], rel_tol=1e-9):
            raise FaveError(
                f"{path} trains Stage 2 with {name}={values[name]:g} from {init}, trained with {name}={before:g}; "
                f"{name} acts in Stage 1 too: train both stages with the value"
            )
    diff = _difference(_setup(first), _setup(config))
    if diff:
        raise FaveError(f"{path} and its Stage-1 run {init} differ in {diff}")
    return str(init)


def read_run(path: str | Path) -> SensitivityRun:
    """A finished FAVE run (two stages, or Stage 2 from a Stage-1 run) with its values and metrics."""
    config = read_config(path)
    if config.model != "fave":
        raise FaveError(f"{path} is a {config.model} run; the sensitivity figure draws FAVE runs")
    metrics_file = Path(path) / METRICS
    if not metrics_file.is_file():
        raise FaveError(f"{metrics_file} not found: the run has not finished (rerun its `fave train` to resume it)")
    stage = str(config.params.stage)
    if stage == "1":
        raise FaveError(f"{path} is a Stage-1-only run; pass the Stage-2 runs trained from it")
    values = _values(config)
    varied = _varied(path, values)
    stage1 = _stage1_of(path, config, values) if stage == "2" else None
    raw = json.loads(metrics_file.read_text(encoding="utf-8"))
    try:
        metrics = {ph: {pr: {k: float(raw[ph][pr][k]) for k in KEYS} for pr in PROTOCOLS} for ph in PHASES}
    except (KeyError, TypeError, ValueError):
        raise FaveError(f"{metrics_file} lacks valid/test metrics of both protocols; re-evaluate the run") from None
    return SensitivityRun(str(path), config.seed, values, varied, stage1, metrics, _setup(config))


def parse_spec(spec: str) -> tuple[str | None, str]:
    """``alpha=RUN`` -> ("alpha", RUN); a plain ``RUN`` -> (None, RUN)."""
    name, sep, rest = spec.partition("=")
    return (name, rest) if sep and name in CHOSEN else (None, spec)


def group_runs(specs: list[str]) -> dict[str, list[SensitivityRun]]:
    """Runs by the parameter they vary (figure order). A run at the chosen values joins every group
    that lacks a chosen-value run of its seed; all runs must share everything else in their config.
    A Stage-1-only run is skipped where another run given starts from it (a glob over a grid's
    directories lists the shared Stage 1 too), and refused otherwise."""
    runs: list[tuple[str | None, SensitivityRun]] = []
    stage1_only: list[str] = []
    for spec in specs:
        name, path = parse_spec(spec)
        if name is None and str(read_config(path).params.stage) == "1":
            stage1_only.append(path)
            continue
        run = read_run(path)
        if name is not None and run.varied not in (None, name):
            raise FaveError(f"{path} is given as a {name} run but varies {run.varied}")
        runs.append((name or run.varied, run))
    started = {Path(r.stage1).resolve() for _, r in runs if r.stage1}
    for path in stage1_only:
        if Path(path).resolve() not in started:
            raise FaveError(f"{path} is a Stage-1-only run; pass the Stage-2 runs trained from it")
    for _, run in runs[1:]:
        diff = _difference(runs[0][1].setup, run.setup)
        if diff:
            raise FaveError(f"{runs[0][1].path} and {run.path} differ in {diff}; draw runs of one experiment")
    groups: dict[str, list[SensitivityRun]] = {}
    for name, run in runs:
        if name is not None:
            groups.setdefault(name, []).append(run)
    if not groups:
        chosen = "/".join(f"{v:g}" for v in CHOSEN.values())
        raise FaveError(f"no run varies alpha, beta, gamma or p (all at {chosen}); pass the runs that vary one")
    for name, run in runs:
        if name is None:  # inferred chosen-value run
            for members in groups.values():
                if not any(m.varied is None and m.seed == run.seed for m in members):
                    members.append(run)
    for param, members in groups.items():
        members[:] = list({m.path: m for m in members}.values())  # a run given twice counts once
        seen: dict[tuple[float, int], str] = {}
        for m in members:
            key = (m.values[param], m.seed)
            if key in seen and seen[key] != m.path:
                raise FaveError(f"two runs of {param}={key[0]:g} at seed {key[1]}: {seen[key]} and {m.path}")
            seen[key] = m.path
    return {p: groups[p] for p in CHOSEN if p in groups}


def _point(value: float, members: list[SensitivityRun]) -> dict[str, Any]:
    members = sorted(members, key=lambda m: m.seed)
    return {
        "value": value,
        "chosen": members[0].varied is None,
        "seeds": [m.seed for m in members],
        "runs": [m.path for m in members],
        "trained": [m.trained for m in members],
        **{
            ph: {pr: {k: seed_stat([m.metrics[ph][pr][k] for m in members]) for k in KEYS} for pr in PROTOCOLS}
            for ph in PHASES
        },
    }


def _stage1_sharing(members: list[SensitivityRun]) -> str:
    """How the group's Stage 1 was trained: ``shared`` (every point is Stage 2 from one Stage-1 run per
    seed), ``partly`` (some points are) or ``no`` (every point trained both stages)."""
    firsts = [m.stage1 for m in members]
    if all(f is None for f in firsts):
        return "no"
    per_seed: dict[int, set[str | None]] = {}
    for m in members:
        per_seed.setdefault(m.seed, set()).add(m.stage1)
    return "shared" if None not in firsts and all(len(v) == 1 for v in per_seed.values()) else "partly"


def run_sensitivity(specs: list[str], command: str = "", trained_by: str = "", note: str = "") -> dict[str, Any]:
    """Figure 5's data: per parameter, every value's metrics (mean ± std over seeds) and runs."""
    groups = group_runs(specs)
    params: dict[str, Any] = {}
    for param, members in groups.items():
        by_value: dict[float, list[SensitivityRun]] = {}
        for m in members:
            by_value.setdefault(m.values[param], []).append(m)
        params[param] = {
            "label": LABELS[param],
            "config_key": f"params.{CONFIG_KEY[param]}",
            "acts_in": ACTS_IN[param],
            "chosen": CHOSEN[param],
            "stage1_shared": _stage1_sharing(members),
            "stage1_runs": sorted({m.stage1 for m in members if m.stage1}),
            "points": [_point(v, by_value[v]) for v in sorted(by_value)],
        }
    every = {m.path: m for members in groups.values() for m in members}
    first = next(iter(every.values()))
    return {
        "figure": "hyperparameter sensitivity (paper Figure 5)",
        "command": command,
        "trained_by": trained_by,
        "conditions": note,
        "dataset": first.setup.get("dataset"),
        "split": "leave-one-out: valid = second-last item, test = last item; full ranking over all items",
        "protocols": PROTOCOL_NOTE,
        "chosen": CHOSEN,
        "seeds": sorted({m.seed for m in every.values()}),
        "setup": first.setup,  # what the runs share (config without the four values): --keep compares it
        "params": params,
        "runs": [
            {"run": m.path, "seed": m.seed, "varies": m.varied, "values": m.values, "trained": m.trained, **m.metrics}
            for m in every.values()
        ],
        "note": "mean ± sample std (ddof 1) over seeds; fractions, not percent",
    }


def keep_panels(result: dict[str, Any], previous: str | Path) -> dict[str, Any]:
    """``result`` with the panels of an earlier figure's JSON (``fave figure sensitivity --keep``) for the
    parameters its runs do not vary, so a panel can be added without retraining the others. The earlier
    file's dataset and chosen values must match; its runs' setup too where it recorded one (files written
    before 2026-12-03 did not: the Markdown then says it was not checked)."""
    path = Path(previous)
    try:
        prev = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise FaveError(f"--keep {path}: not readable as JSON ({e}); pass the OUT.json of a figure") from None
    if not isinstance(prev, dict) or not isinstance(prev.get("params"), dict):
        raise FaveError(f"--keep {path} is not a sensitivity figure's JSON (no params); pass its OUT.json")
    for key in ("dataset", "chosen"):
        if prev.get(key) != result[key]:
            theirs = prev.get(key)
            raise FaveError(f"--keep {path} has {key} {theirs!r}, these runs {result[key]!r}; pass a matching figure")
    kept = [p for p in CHOSEN if p in prev["params"] and p not in result["params"]]
    if not kept:
        raise FaveError(f"--keep {path}: the given runs vary every parameter it holds; nothing to keep, drop --keep")
    checked = "setup" in prev
    if checked:
        if not isinstance(prev["setup"], dict):
            raise FaveError(f"--keep {path}: its setup is not a mapping; pass an unedited OUT.json")
        diff = _difference(prev["setup"], json.loads(json.dumps(result["setup"])))  # as a file holds it (lists)
        if diff:
            raise FaveError(f"--keep {path}: its runs and these differ in {diff}; train the kept panels like them")
    params = {
        p: result["params"][p] if p in result["params"] else prev["params"][p]
        for p in CHOSEN
        if p in {*result["params"], *kept}
    }
    try:
        used = {run for p in kept for point in prev["params"][p]["points"] for run in point["runs"]}
        seeds = {s for p in kept for point in prev["params"][p]["points"] for s in point["seeds"]}
        have = {r["run"] for r in result["runs"]}
        runs = result["runs"] + [r for r in prev.get("runs", []) if r["run"] in used - have]
    except (KeyError, TypeError):
        raise FaveError(f"--keep {path}: its panels lack points, runs or seeds; pass an unedited OUT.json") from None
    source = {"file": str(path), "params": kept, "command": prev.get("command", ""), "setup_checked": checked}
    source["trained_by"] = prev.get("trained_by", "")
    seeds = sorted({*result["seeds"], *seeds})
    return {**result, "params": params, "runs": runs, "seeds": seeds, "kept": source}


def plot_sensitivity(result: dict[str, Any], protocol: str = "paper") -> Any:
    """One panel per parameter: test HR@20 (left axis) and NDCG@20 (right axis) per value, validation
    dashed, error bars (± std over seeds) where a value has more than one seed, the chosen value marked."""
    plt = pyplot()
    params = result["params"]
    n = len(params)
    rows, cols = (2, 2) if n == 4 else (1, n)
    width = max(5.2 * cols, 8.0)  # room for the title and the legend with one or two panels
    fig, axes = plt.subplots(rows, cols, figsize=(width, 3.9 * rows + (0.5 if cols < 3 else 0)), squeeze=False)
    colors = dict(zip(SHOWN, ("tab:blue", "tab:orange"), strict=True))
    legend: tuple[list[Any], list[str]] = ([], [])
    for ax, g in zip(axes.flat, params.values(), strict=False):
        points = g["points"]
        x = np.arange(len(points))
        for metric, axis in zip(SHOWN, (ax, ax.twinx()), strict=True):
            for phase, style in (("test", "-"), ("valid", "--")):
                stats = [p[phase][protocol][metric] for p in points]
                y = [100 * s["mean"] for s in stats]
                err = [100 * s["std"] for s in stats] if any(s["n"] > 1 for s in stats) else None
                line = axis.errorbar(
                    x, y, yerr=err, ls=style, marker="o" if phase == "test" else ".", capsize=3,
                    color=colors[metric], alpha=1.0 if phase == "test" else 0.55,
                )  # fmt: skip
                if ax is axes.flat[0]:
                    legend[0].append(line)
                    legend[1].append(f"{phase} {metric}")
            axis.set_ylabel(f"{metric} (%)", color=colors[metric])
        for i, p in enumerate(points):
            if p["chosen"]:
                ax.axvline(i, color="0.5", ls=":", lw=1.2)
        ax.set_xticks(x, [f"{p['value']:g}" + ("\n(paper)" if p["chosen"] else "") for p in points])
        ax.set_title(g["label"], fontsize=10)
        ax.set_xlabel(f"{g['config_key']} (acts in {g['acts_in']})", fontsize=8)
    for ax in list(axes.flat)[n:]:
        ax.set_visible(False)
    fig.legend(*legend, fontsize=8, loc="lower center", ncol=len(legend[0]), frameon=False)
    fig.suptitle(
        f"FAVE hyperparameter sensitivity on {result['dataset']} ({protocol} protocol, test; dashed: validation;"
        + ("\n" if cols < 3 else " ")
        + f"seeds {', '.join(map(str, result['seeds']))}; dotted: the paper's value)",
        fontsize=10,
    )
    fig.tight_layout(rect=(0, 0.04, 1, 1))
    return fig


def _cell(stat: dict[str, float]) -> str:
    """A mean (± std when several seeds) in percent."""
    return f"{100 * stat['mean']:.2f}" + (f" ± {100 * stat['std']:.2f}" if stat["n"] > 1 else "")


SHARING = {
    "shared": "every value's Stage 2 trained from one shared Stage-1 run per seed",
    "partly": (
        "values marked `Stage 2 from the shared Stage 1` started from their seed's Stage-1 run (same config, seed, "
        "alpha and beta, checked: the Stage 1 a two-stage run trains), the others trained both stages in one run"
    ),
    "no": "every value trained both stages in one run",
}


def render_markdown(result: dict[str, Any], png: str = "sensitivity.png") -> str:
    chosen = ", ".join(f"{k} = {v:g}" for k, v in result["chosen"].items())
    lines = [
        f"# FAVE hyperparameter sensitivity on {result['dataset']} (paper Figure 5)",
        "",
        f"Figure: `{result['command']}`" if result["command"] else "",
        f"Runs trained by: `{result['trained_by']}`" if result["trained_by"] else "",
        "",
        f"![hyperparameter sensitivity]({png})",
        "",
        f"One parameter varied at a time, the others at the paper's chosen values ({chosen}). "
        f"Seeds: {', '.join(map(str, result['seeds']))}; mean ± std over seeds where there are several. "
        f"Split: {result['split']}. Protocols: {result['protocols']}",
    ]
    if result.get("conditions"):
        lines.append(f"Conditions: {result['conditions']}")
    kept = result.get("kept")
    if kept:
        lines += [
            "",
            f"Panels {', '.join(kept['params'])} are kept from `{kept['file']}` (their runs were not re-read), made by "
            f"`{kept['command']}`"
            + (f", runs trained by `{kept['trained_by']}`." if kept["trained_by"] else ".")
            + (
                " Their runs' setup equals these runs' (checked)."
                if kept["setup_checked"]
                else " That file records no setup, so whether its runs trained like these is not checked: "
                "compare the commands."
            ),
        ]
    for param, g in result["params"].items():
        stage1 = ", ".join(f"`{r}`" for r in g["stage1_runs"])
        lines += [
            "",
            f"## {g['label']} (`{g['config_key']}`, acts in {g['acts_in']}; paper: {g['chosen']:g})",
            "",
            f"Stage 1: {SHARING[g['stage1_shared']]}" + (f" ({stage1})." if stage1 else "."),
            "",
            f"| {param} | protocol | test HR@20 | test NDCG@20 | valid HR@20 | valid NDCG@20 | "
            "test HR@10 | test NDCG@10 | seeds | trained |",
            "|---|---|---|---|---|---|---|---|---|---|",
        ]
        for p in g["points"]:
            value = f"**{p['value']:g}** (paper)" if p["chosen"] else f"{p['value']:g}"
            trained = " / ".join(sorted({"Stage 2 from the shared Stage 1" if t != BOTH else t for t in p["trained"]}))
            for pr in PROTOCOLS:
                t, v = p["test"][pr], p["valid"][pr]
                cells = [_cell(t["HR@20"]), _cell(t["NDCG@20"]), _cell(v["HR@20"]), _cell(v["NDCG@20"])]
                cells += [_cell(t["HR@10"]), _cell(t["NDCG@10"])]
                seeds = ", ".join(map(str, p["seeds"]))
                lines.append(f"| {value} | {pr} | " + " | ".join(cells) + f" | {seeds} | {trained} |")
    lines += [
        "",
        "Percent. Validation is the split that selects each run's epochs, test is evaluated once at the end; "
        "each run's directory and numbers are in the JSON beside this file. In the figure the values are evenly "
        "spaced along x (categories, not to scale).",
        "",
    ]
    return "\n".join(lines)


def write_sensitivity(result: dict[str, Any], out: str | Path, protocol: str = "paper") -> list[Path]:
    result = {**result, "protocol_plotted": protocol}
    fig = plot_sensitivity(result, protocol)
    return write_figure(fig, result, render_markdown(result, Path(out).name + ".png"), out)
