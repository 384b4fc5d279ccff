"""Experiment files and their runner: the planned commands, and one experiment end to end on tiny data."""

from __future__ import annotations

import argparse
import json
import re
from pathlib import Path

import numpy as np
import pytest

from fave.cli import _all_models, main
from fave.errors import FaveError
from fave.experiment import finished_runs, load_experiment, plan, run

ROOT = Path(__file__).resolve().parents[1]
EXPERIMENTS = sorted((ROOT / "experiments").glob("*.yaml"))


@pytest.fixture(autouse=True)
def in_tmp(tmp_path, monkeypatch) -> Path:
    """Relative run directories resolve inside the test's directory (nothing there is finished)."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("FAVE_DATA_DIR", str(tmp_path / "cache"))
    return tmp_path


def test_dry_run_prints_the_planned_commands(capsys) -> None:
    path = str(ROOT / "experiments" / "ablations.yaml")
    assert main(["experiment", path, "--seeds", "0", "1", "--dry-run"]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert lines[0] == "# experiment ablations: 14 run(s)"
    common = "--quiet --model fave --dataset ml-100k"
    assert lines[1] == (
        f"fave train --out runs/ml-100k-ablations/fave-2ep-seed0 {common} --seed 0 --set stage=2 "
        "--set stage2_epochs=2 --set init_from=runs/ml-100k/fave-stage1-seed0"
    )
    assert lines[5] == (
        f"fave train --out runs/ml-100k-ablations/wo-cons-seed0 {common} --seed 0 --set stage=2 "
        "--set stage2_epochs=2 --set use_cons=false --set init_from=runs/ml-100k/fave-stage1-seed0"
    )
    assert lines[14].endswith(
        "--seed 1 --set stage=2 --set stage2_epochs=2 --set objective=authors --set inference_output=raw "
        "--set init_from=runs/ml-100k/fave-stage1-seed1"
    )
    assert lines[15] == (
        "fave report 'runs/ml-100k/fave-stage1-seed*' 'runs/ml-100k-ablations/*-seed*' "
        "--out results/ml-100k-ablations --title 'ML-100k: FAVE ablations and authors'\"'\"'-code switches "
        "(2 Stage-2 epochs from each seed'\"'\"'s Stage-1 run)' "
        "--command 'fave experiment " + path + " --seeds 0 1'"
    )
    assert len(lines) == 16 and not Path("runs").exists()  # nothing ran


def test_two_stage_fave_runs_start_from_their_own_seeds_stage_one() -> None:
    steps = plan(load_experiment(ROOT / "experiments" / "ml-100k.yaml"))
    outs = [str(s.out) for s in steps if s.out is not None]
    assert outs[:4] == ["runs/ml-100k/pop-seed0", *(f"runs/ml-100k/sasrec-seed{s}" for s in range(3))]
    for s in range(3):
        stage2 = next(x for x in steps if str(x.out) == f"runs/ml-100k/fave-seed{s}")
        assert stage2.command[-4:] == ["--set", "stage=2", "--set", f"init_from=runs/ml-100k/fave-stage1-seed{s}"]
        assert outs.index(f"runs/ml-100k/fave-stage1-seed{s}") < outs.index(str(stage2.out))


@pytest.mark.parametrize("path", EXPERIMENTS, ids=lambda p: p.stem)
def test_every_experiment_file_loads_and_reproduce_sh_runs_it(path: Path) -> None:
    exp = load_experiment(path)
    assert exp.runs and exp.report is not None
    assert all(re.fullmatch(r"fave train --out \S+-seed\d+ .*", str(s)) for s in plan(exp) if s.out)
    assert f"$F experiment experiments/{path.name}" in (ROOT / "scripts" / "reproduce.sh").read_text()


@pytest.mark.parametrize(
    ("text", "words"),
    [
        ("root: r\nruns: [{model: pop, seed: 1}]\n", ["'seed'", "runs[0]"]),
        ("root: r\nrun: []\n", ["'run'"]),
        ("root: r\nruns: []\n", ["no runs"]),
        ("root: r\nseeds: [a]\nruns: [{model: pop}]\n", ["seeds", "integers"]),
        ("runs: [{model: pop}]\n", ["root"]),
    ],
)
def test_a_bad_experiment_file_is_a_clear_error(tmp_path, text: str, words: list[str]) -> None:
    (tmp_path / "e.yaml").write_text(text)
    with pytest.raises(FaveError) as e:
        load_experiment(tmp_path / "e.yaml")
    assert all(w in str(e.value) for w in words), str(e.value)


def test_a_run_that_starts_from_an_unfinished_run_is_refused_before_training(tmp_path) -> None:
    (tmp_path / "e.yaml").write_text("root: r\nruns: [{model: fave, dataset: d, init_from: 'missing-seed{seed}'}]\n")
    launched = []
    with pytest.raises(FaveError, match="missing-seed0, which is not a finished run"):
        run(load_experiment(tmp_path / "e.yaml"), say=lambda _: None, launcher=launched.append)
    assert launched == []


def test_a_run_may_start_from_a_stage_file_of_a_finished_run(tmp_path) -> None:
    (tmp_path / "e.yaml").write_text(
        "root: r\nruns: [{model: fave, dataset: d, init_from: 'both-seed{seed}/stage1.safetensors'}]\n"
    )
    launched = []
    with pytest.raises(FaveError, match="not a finished run"):
        run(load_experiment(tmp_path / "e.yaml"), say=lambda _: None, launcher=launched.append)
    (tmp_path / "both-seed0").mkdir()
    (tmp_path / "both-seed0" / "metrics.json").write_text("{}")
    exp = load_experiment(tmp_path / "e.yaml")
    run(exp, say=lambda _: None, launcher=lambda command: launched.append(command) or 0)
    assert launched and launched[0][-1] == "init_from=both-seed0/stage1.safetensors"


def test_train_model_all_is_the_table1_experiment() -> None:
    args = argparse.Namespace(
        dataset="ml-100k", out="runs/all", seed=None, overrides=["epochs=1"], config=None,
        data_dir=None, overwrite=False, quiet=True,
    )  # fmt: skip
    steps = plan(_all_models(args))
    assert str(steps[0]) == "fave train --out runs/all/pop --quiet --model pop --dataset ml-100k --set epochs=1"
    assert [s.command[-1] for s in steps[:-1]] == ["epochs=1"] * (len(steps) - 1)  # the config's seed: no --seed
    assert steps[-1].command[:2] == ["fave", "report"] and steps[-1].command[-4:-2] == ["--out", "runs/all/table"]


def test_an_experiment_end_to_end_on_tiny_data(tmp_path, capfd) -> None:
    rng = np.random.default_rng(0)
    lines = [" ".join([f"u{u}", *(f"i{i}" for i in rng.choice(12, size=6, replace=False))]) for u in range(16)]
    (tmp_path / "log.txt").write_text("\n".join(lines) + "\n")
    small = ["epochs=1", "hidden=8", "heads=1", "layers=1", "max_len=6", "batch_size=16", "threads=1"]
    (tmp_path / "e.yaml").write_text(
        f"name: tiny\nroot: runs/tiny\nmodel: sasrec\ndataset: log.txt\nseeds: [3]\noverrides: {small}\n"
        "runs:\n  - {name: first}\n  - {name: second, init_from: '{root}/first-seed{seed}'}\n"
        "report: {out: results/tiny, title: Tiny}\n"
    )
    assert main(["experiment", "e.yaml"]) == 0
    out = capfd.readouterr().out
    assert "fave train --out runs/tiny/second-seed3" in out and "| first |" in out  # trained, then the table
    for name in ("first", "second"):
        metrics = json.loads((tmp_path / f"runs/tiny/{name}-seed3/metrics.json").read_text())
        assert metrics["seed"] == 3 and metrics["stages"][0]["epochs"] == 1
    report = json.loads((tmp_path / "results/tiny.json").read_text())
    assert report["runs"] == ["runs/tiny/first-seed3", "runs/tiny/second-seed3"]
    assert report["command"] == "fave experiment e.yaml"

    assert main(["experiment", "e.yaml"]) == 0  # everything finished: nothing trains, the table is rebuilt
    out = capfd.readouterr().out
    assert "done: runs/tiny/first-seed3" in out and "done: runs/tiny/second-seed3" in out
    assert "fave train" not in out and "fave report" in out


def test_report_patterns_may_name_their_group(tmp_path) -> None:
    for name in ("a-seed0", "a-seed1", "b-seed0", "c-seed0"):
        (tmp_path / "runs" / name).mkdir(parents=True)
        if name != "c-seed0":  # unfinished: no metrics.json
            (tmp_path / "runs" / name / "metrics.json").write_text("{}")
    runs = finished_runs(["ref=runs/a-seed*", "runs/b-seed0", "other=runs/c-seed0"])
    assert runs == ["ref=runs/a-seed0", "ref=runs/a-seed1", "runs/b-seed0"]
