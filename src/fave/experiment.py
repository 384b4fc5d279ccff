"""Experiments as data: one YAML file of named runs, read by one runner.

An experiment file (``experiments/*.yaml``)::

    name: ablations                      # what the runner prints
    root: runs/ml-100k-ablations         # run directories: ROOT/NAME-seedSEED
    model: fave                          # defaults for every run (each run may set its own)
    dataset: ml-100k
    seeds: [0]                           # `--seeds` replaces these (not a run's own `seeds`)
    overrides: [stage=2]                 # `--set` of every run, before the run's own
    init_from: runs/ml-100k/fave-stage1-seed{seed}   # optional: weights to start from (FAVE Stage 2)
    runs:
      - name: fave-2ep
      - name: wo-cons
        overrides: [use_cons=false]
    report:                              # optional: rebuilt with `fave report` after the runs
      out: results/ml-100k-ablations
      title: "ML-100k: FAVE ablations"
      runs: ["runs/ml-100k/fave-stage1-seed*", "{root}/*-seed*"]   # default: the experiment's runs
                                         # "LABEL=PATTERN": those runs as one group named LABEL
      command: ...                       # what the report records (default: the runner's command)

``{root}``, ``{seed}``, ``{dataset}`` and ``{name}`` are filled in ``init_from`` and the report's
``runs``. :func:`plan` turns a file into the ``fave train`` / ``fave report`` commands;
:func:`run` executes them one at a time (each training in its own process, as from a shell),
skipping runs whose ``metrics.json`` exists, so an interrupted experiment is rerun as is.
"""

from __future__ import annotations

import glob
import shlex
import subprocess
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from fave.config import init_source
from fave.errors import FaveError

DEFAULT_RUN_DIR = "{root}/{name}-seed{seed}"
RUN_KEYS = {"name", "model", "dataset", "seeds", "overrides", "init_from", "config"}
TOP_KEYS = {"name", "description", "root", "model", "dataset", "seeds", "overrides", "init_from", "runs", "report"}
REPORT_KEYS = {"out", "title", "runs", "command"}


@dataclass
class RunSpec:
    """One named training, repeated for each of its seeds (None: the config's own seed, no ``--seed``)."""

    name: str
    model: str
    dataset: str
    seeds: list[int | None]
    overrides: list[str] = field(default_factory=list)
    init_from: str = ""  # pattern of the run directory whose weights start this run
    config: str | None = None  # a `fave train --config` file


@dataclass
class ReportSpec:
    out: str
    title: str
    runs: list[str] = field(default_factory=list)  # glob patterns; empty: the experiment's own runs
    command: str = ""


@dataclass
class Experiment:
    name: str
    root: str
    runs: list[RunSpec]
    report: ReportSpec | None = None
    run_dir: str = DEFAULT_RUN_DIR  # pattern of a run's directory
    train_args: list[str] = field(default_factory=list)  # extra `fave train` flags (e.g. --data-dir)
    quiet: bool = True  # trainings without progress bars or per-epoch lines


@dataclass
class Step:
    """One command of the plan: a training (``out`` is its run directory) or the report."""

    command: list[str]  # argv, starting with "fave"
    out: Path | None = None
    init_from: Path | None = None
    done: bool = False  # the run's metrics.json exists: skipped
    patterns: list[str] = field(default_factory=list)  # the report's run globs, expanded when it runs

    def __str__(self) -> str:
        return shlex.join(self.command)


def _list(value: Any, where: str, kind: type | tuple[type, ...]) -> list:
    if value is None:
        return []
    items = value if isinstance(value, list) else [value]
    if not all(isinstance(x, kind) and not isinstance(x, bool) for x in items):
        what = "integers" if kind is int else "strings" if kind is str else "key=value strings"
        raise FaveError(f"{where} must be a list of {what}, got {value!r}")
    return items


def _check_keys(d: Any, allowed: set[str], where: str) -> dict[str, Any]:
    if not isinstance(d, dict):
        raise FaveError(f"{where} must be a mapping (key: value lines), got {d!r}")
    unknown = sorted(set(d) - allowed)
    if unknown:
        raise FaveError(f"unknown key {unknown[0]!r} in {where}; allowed: {', '.join(sorted(allowed))}")
    return d


def _text(d: dict[str, Any], key: str, where: str, default: str | None = None) -> str:
    value = d.get(key, default)
    if not isinstance(value, str) or not value:
        raise FaveError(f"{where}: `{key}` must be a non-empty string, got {value!r}")
    return value


def load_experiment(path: str | Path, seeds: Sequence[int] | None = None) -> Experiment:
    """Read and check an experiment file; ``seeds`` replaces its default seeds."""
    path = Path(path)
    try:
        d = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as e:
        raise FaveError(f"cannot read experiment file {path} ({e.strerror or e})") from None
    except yaml.YAMLError as e:
        raise FaveError(f"experiment file {path} is not valid YAML ({e.__class__.__name__})") from None
    d = _check_keys(d, TOP_KEYS, str(path))
    default_seeds = list(seeds) if seeds is not None else _list(d.get("seeds", [0]), f"{path}: seeds", int)
    common = [str(x) for x in _list(d.get("overrides"), f"{path}: overrides", (str, int, float))]
    runs = []
    for i, r in enumerate(d.get("runs") or []):
        where = f"{path}: runs[{i}]"
        r = _check_keys(r, RUN_KEYS, where)
        model = _text(r, "model", where, d.get("model"))
        run_seeds = _list(r["seeds"], f"{where}.seeds", int) if "seeds" in r else default_seeds
        runs.append(
            RunSpec(
                name=_text(r, "name", where, model),
                model=model,
                dataset=_text(r, "dataset", where, d.get("dataset")),
                seeds=run_seeds,
                overrides=common + [str(x) for x in _list(r.get("overrides"), f"{where}.overrides", (str, int, float))],
                init_from=str(r.get("init_from", d.get("init_from")) or ""),
                config=r.get("config"),
            )
        )
    if not runs:
        raise FaveError(f"{path} has no runs; list them under `runs:` (each with a name and a model)")
    report = None
    if d.get("report") is not None:
        rd = _check_keys(d["report"], REPORT_KEYS, f"{path}: report")
        report = ReportSpec(
            out=_text(rd, "out", f"{path}: report"),
            title=_text(rd, "title", f"{path}: report", str(d.get("name", path.stem))),
            runs=_list(rd.get("runs"), f"{path}: report.runs", str),
            command=str(rd.get("command") or ""),
        )
    return Experiment(name=str(d.get("name", path.stem)), root=_text(d, "root", str(path)), runs=runs, report=report)


def plan(exp: Experiment, record: str = "") -> list[Step]:
    """The commands that run ``exp``: every training in file order (seeds inner), then the report.

    ``record`` is what the report records as its command when the file does not say.
    """
    steps = []
    for spec in exp.runs:
        for seed in spec.seeds:
            fill = {"root": exp.root, "name": spec.name, "seed": "" if seed is None else seed, "dataset": spec.dataset}
            out = Path(exp.run_dir.format(**fill))
            command = ["fave", "train", "--out", str(out), *(["--quiet"] if exp.quiet else [])]
            command += ["--model", spec.model, "--dataset", spec.dataset]
            command += ["--seed", str(seed)] if seed is not None else []
            command += ["--config", spec.config] if spec.config else []
            sets = list(spec.overrides)
            init = Path(spec.init_from.format(**fill)) if spec.init_from else None
            sets += [f"init_from={init}"] if init else []
            command += [x for s in sets for x in ("--set", s)]
            command += exp.train_args
            steps.append(Step(command, out=out, init_from=init, done=(out / "metrics.json").is_file()))
    if exp.report is not None:
        r = exp.report
        patterns = [p.format(root=exp.root) for p in r.runs] or [str(s.out) for s in steps]
        command = ["fave", "report", *patterns, "--out", r.out, "--title", r.title]
        command += ["--command", r.command or record] if (r.command or record) else []
        steps.append(Step(command, patterns=patterns))
    return steps


def finished_runs(patterns: list[str]) -> list[str]:
    """Run directories matching ``patterns`` (globs, in order, each sorted) that hold a metrics.json.
    ``LABEL=PATTERN`` names the matching runs' group in the report, as `fave report LABEL=DIR` does."""
    from fave.reporting import split_label

    out: list[str] = []
    for p in patterns:
        label, pattern = split_label(p)
        for d in sorted(glob.glob(pattern)) if glob.has_magic(pattern) else [pattern]:
            run = d if label is None else f"{label}={d}"
            if (Path(d) / "metrics.json").is_file() and run not in out:
                out.append(run)
    return out


def launch(command: list[str]) -> int:
    """Run a planned ``fave`` command: a training in a new process of this Python (as `fave train` from a
    shell: nothing such as torch's thread count carries from one run to the next), the report in this one."""
    if command[1] != "train":
        from fave.cli import main

        return main(command[1:])
    return subprocess.call([sys.executable, "-m", "fave.cli", *command[1:]])


def run(
    exp: Experiment,
    record: str = "",
    dry_run: bool = False,
    say: Callable[[str], None] = print,
    launcher: Callable[[list[str]], int] = launch,
) -> list[Step]:
    """Run ``exp`` one command at a time (or only print the plan); stops at the first failure."""
    steps = plan(exp, record)
    say(f"# experiment {exp.name}: {sum(s.out is not None for s in steps)} run(s)")
    for step in steps:
        if step.done:
            say(f"done: {step.out}")
            continue
        if step.out is None:  # the report, over the runs that exist now
            runs = finished_runs(step.patterns) if not dry_run else step.patterns
            if not runs:
                say(f"# no finished runs for {exp.report.out if exp.report else 'the report'}; skipped")
                continue
            i = step.command.index("--out")
            step = Step(["fave", "report", *runs, *step.command[i:]], patterns=step.patterns)
        say(str(step))
        if dry_run:
            continue
        if step.init_from is not None and not (init_source(step.init_from)[0] / "metrics.json").is_file():
            raise FaveError(
                f"{step.out} starts from {step.init_from}, which is not a finished run; "
                "train it first (list it earlier in the experiment, or run the experiment that makes it)"
            )
        code = launcher(step.command)
        if code != 0:
            raise FaveError(f"`{step}` failed (exit status {code}); rerun the experiment to resume")
    return steps
