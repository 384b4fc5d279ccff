"""`fave figure sensitivity` (Figure 5): end to end on tiny runs trained in-process, the grouping
on hand-made run directories (config.yaml + metrics.json), the refused inputs, and the grid
``scripts/figure5.sh`` trains (its dry run)."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from dataclasses import fields
from pathlib import Path

import pytest
import yaml

pytest.importorskip("matplotlib")
pytest.importorskip("sklearn")

from fave.cli import main  # noqa: E402
from fave.errors import FaveError  # noqa: E402
from fave.figures.sensitivity import (  # noqa: E402
    CHOSEN,
    CONFIG_KEY,
    group_runs,
    keep_panels,
    render_markdown,
    run_sensitivity,
)
from fave.models.fave import FAVEConfig  # noqa: E402
from fave.reporting import KEYS  # noqa: E402

PNG = b"\x89PNG\r\n\x1a\n"
REPO = Path(__file__).resolve().parents[2]
ONE_EPOCH = ["--set", "epochs=1", "--set", "params.stage1_epochs=1", "--set", "params.stage2_epochs=1"]

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def trained(tmp_path_factory, write_log, small_flags) -> dict[str, Path]:
    """One epoch per stage: a shared Stage 1, the chosen values and gamma = 0.5 as Stage 2 from it,
    and two-stage runs at alpha = 0.3 and at the chosen values."""
    root = tmp_path_factory.mktemp("sensitivity-runs")
    mp = pytest.MonkeyPatch()
    mp.setenv("FAVE_DATA_DIR", str(root / "cache"))
    base = ["train", "--model", "fave", "--dataset", str(write_log(root / "log.txt")), *small_flags, *ONE_EPOCH]
    out = {k: root / k for k in ("stage1", "chosen", "gamma0.5", "alpha0.3", "full")}
    stage2 = ["--set", "stage=2", "--set", f"init_from={out['stage1']}"]
    try:
        assert main([*base, "--out", str(out["stage1"]), "--set", "stage=1"]) == 0
        assert main([*base, "--out", str(out["chosen"]), *stage2]) == 0
        assert main([*base, "--out", str(out["gamma0.5"]), *stage2, "--set", "gamma=0.5"]) == 0
        assert main([*base, "--out", str(out["alpha0.3"]), "--set", "alpha=0.3"]) == 0
        assert main([*base, "--out", str(out["full"])]) == 0
    finally:
        mp.undo()
    return out


def stage1_lines(run: Path) -> list[str]:
    """The Stage-1 epoch lines of a run's log, without their timing."""
    lines = (run / "log.txt").read_text().splitlines()
    return [re.sub(r" time=\S+", "", x) for x in lines if x.startswith("stage=stage1 ")]


def test_sensitivity_command_writes_png_json_md(trained, tmp_path) -> None:
    out = tmp_path / "figs" / "sensitivity"
    runs = [str(trained[k]) for k in ("alpha0.3", "chosen", "gamma0.5")]
    assert main(["figure", "sensitivity", *runs, "--out", str(out), "--command", "bash x.sh"]) == 0
    assert out.with_suffix(".png").read_bytes()[:8] == PNG
    data = json.loads(out.with_suffix(".json").read_text())
    assert list(data["params"]) == ["alpha", "gamma"] and data["seeds"] == [0]
    alpha, gamma = data["params"]["alpha"], data["params"]["gamma"]
    assert [p["value"] for p in alpha["points"]] == [0.3, 0.5] and [p["chosen"] for p in alpha["points"]] == [0, 1]
    assert [p["value"] for p in gamma["points"]] == [0.1, 0.5]
    assert alpha["points"][1]["runs"] == gamma["points"][0]["runs"] == [str(trained["chosen"])]  # one run, two curves
    assert gamma["stage1_shared"] == "shared" and gamma["stage1_runs"] == [str(trained["stage1"])]
    assert alpha["stage1_shared"] == "partly" and alpha["points"][0]["trained"] == ["both stages in one run"]
    assert len(data["runs"]) == 3  # each run once
    metrics = json.loads((trained["gamma0.5"] / "metrics.json").read_text())
    point = gamma["points"][1]
    for phase in ("valid", "test"):
        for protocol in ("paper", "masked"):
            expected = {"mean": metrics[phase][protocol]["NDCG@20"], "std": 0.0, "n": 1}
            assert point[phase][protocol]["NDCG@20"] == expected
    md = out.with_suffix(".md").read_text()
    assert "sensitivity.png" in md and data["command"] in md and "Runs trained by: `bash x.sh`" in md
    assert "| **0.5** (paper) | masked |" in md and "valid HR@20" in md
    assert "| Stage 2 from the shared Stage 1 |" in md and str(trained["stage1"]) in md
    assert "one shared Stage-1 run per seed" in md and "the others trained both stages in one run" in md
    assert not list(out.parent.glob(".*.tmp"))


def test_shared_stage1_is_the_stage1_of_a_two_stage_run(trained) -> None:
    """Why the chosen point of alpha and beta is the Stage-2 run from the shared Stage 1: that
    Stage 1 trains exactly as a two-stage run's (same losses and validation, epoch by epoch)."""
    shared, full = stage1_lines(trained["stage1"]), stage1_lines(trained["full"])
    assert shared and shared == full


def test_chosen_values_are_the_defaults() -> None:
    defaults = FAVEConfig()
    assert {name: getattr(defaults, key) for name, key in CONFIG_KEY.items()} == CHOSEN
    assert CHOSEN == {"alpha": 0.5, "beta": 0.2, "gamma": 0.1, "p": 0.75}  # paper Sec. 6.7


# -- hand-made runs ------------------------------------------------------------------------


def make_run(
    root: Path,
    name: str,
    seed: int = 0,
    stage: str = "both",
    init: Path | None = None,
    hr: float = 0.2,
    lr: float = 0.001,
    **params: float,
) -> Path:
    """A run directory as `fave train` leaves it, as far as the figure reads it (``params`` by figure name)."""
    d = root / name
    d.mkdir(parents=True)
    values = {CONFIG_KEY[k]: v for k, v in params.items()}
    assert set(values) <= {f.name for f in fields(FAVEConfig)}
    config = {
        "model": "fave",
        "dataset": "toy",
        "seed": seed,
        "train": {"lr": lr, "init_from": str(init) if init else ""},
        "params": {**values, "stage": stage},
    }
    (d / "config.yaml").write_text(yaml.safe_dump(config))
    scores = {k: hr / (2 if k.startswith("NDCG") else 1) for k in KEYS}
    metrics = {ph: {pr: dict(scores) for pr in ("paper", "masked")} for ph in ("valid", "test")}
    metrics["valid"]["paper"]["HR@20"] = hr + 0.01
    (d / "metrics.json").write_text(json.dumps(metrics))
    return d


@pytest.fixture
def grid(tmp_path) -> dict[str, Path]:
    """Two seeds: a shared Stage 1 each, the chosen values and gamma = 0.5 as Stage 2 from it, and
    two-stage runs at alpha = 0.3."""
    runs: dict[str, Path] = {}
    for s, hr in ((0, 0.20), (1, 0.24)):
        first = runs[f"stage1-{s}"] = make_run(tmp_path, f"stage1-seed{s}", s, stage="1")
        runs[f"chosen-{s}"] = make_run(tmp_path, f"chosen-seed{s}", s, "2", first, hr)
        runs[f"gamma-{s}"] = make_run(tmp_path, f"gamma0.5-seed{s}", s, "2", first, hr + 0.02, gamma=0.5)
        runs[f"alpha-{s}"] = make_run(tmp_path, f"alpha0.3-seed{s}", s, hr=hr - 0.02, alpha=0.3)
    return runs


def test_grouping_averages_seeds_and_shares_the_chosen_run(grid) -> None:
    specs = [str(grid[f"{k}-{s}"]) for s in (0, 1) for k in ("gamma", "chosen", "alpha")]
    result = run_sensitivity(specs)
    assert list(result["params"]) == ["alpha", "gamma"] and result["seeds"] == [0, 1]
    chosen = result["params"]["gamma"]["points"][0]
    assert chosen["value"] == 0.1 and chosen["chosen"] and chosen["seeds"] == [0, 1]
    assert chosen["runs"] == [str(grid["chosen-0"]), str(grid["chosen-1"])]
    hr = chosen["test"]["paper"]["HR@20"]
    assert hr["mean"] == pytest.approx(0.22) and hr["std"] == pytest.approx(0.04 / 2**0.5) and hr["n"] == 2
    assert chosen["valid"]["paper"]["HR@20"]["mean"] == pytest.approx(0.23)  # validation kept apart from test
    assert chosen["test"]["masked"]["NDCG@20"]["mean"] == pytest.approx(0.11)
    assert result["params"]["alpha"]["points"][1]["runs"] == chosen["runs"]
    assert result["params"]["alpha"]["points"][0]["test"]["paper"]["HR@20"]["mean"] == pytest.approx(0.20)
    assert result["params"]["gamma"]["stage1_shared"] == "shared"
    assert result["params"]["gamma"]["stage1_runs"] == [str(grid["stage1-0"]), str(grid["stage1-1"])]
    assert result["params"]["alpha"]["stage1_shared"] == "partly"
    assert {r["run"] for r in result["runs"]} == set(specs)
    # a glob over the grid lists the shared Stage-1 runs too: skipped, as they are the runs' own Stage 1
    again = run_sensitivity(sorted(str(p) for p in grid["stage1-0"].parent.glob("*-seed*")))
    assert again["params"] == result["params"]


def test_naming_the_parameter_puts_a_chosen_run_where_asked(grid) -> None:
    groups = group_runs([f"beta={grid['chosen-0']}", str(grid["gamma-0"])])
    assert list(groups) == ["beta", "gamma"]
    assert [r.path for r in groups["beta"]] == [str(grid["chosen-0"])]
    assert [r.values["gamma"] for r in groups["gamma"]] == [0.5]  # a named run goes where it is named only
    groups = group_runs([f"gamma={grid['gamma-0']}", f"gamma={grid['chosen-0']}", str(grid["gamma-0"])])
    assert list(groups) == ["gamma"] and len(groups["gamma"]) == 2  # a run given twice counts once


def test_two_stage_runs_only_say_stage1_was_not_shared(tmp_path) -> None:
    runs = [make_run(tmp_path, "p0.5", p=0.5), make_run(tmp_path, "chosen")]
    result = run_sensitivity([str(r) for r in runs])
    assert list(result["params"]) == ["p"] and result["params"]["p"]["stage1_shared"] == "no"
    assert [p["value"] for p in result["params"]["p"]["points"]] == [0.5, 0.75]


def test_keep_adds_a_panel_to_an_earlier_figure(grid, tmp_path) -> None:
    """`--keep OLD.json`: the panels the new runs do not vary come from the earlier figure, with its runs."""
    old = run_sensitivity([str(grid["alpha-0"]), str(grid["chosen-0"])], command="fave figure sensitivity A")
    earlier = tmp_path / "old.json"
    earlier.write_text(json.dumps(old))
    new = run_sensitivity([str(grid["gamma-1"]), str(grid["chosen-1"])])
    merged = keep_panels(new, earlier)
    assert list(merged["params"]) == ["alpha", "gamma"] and merged["seeds"] == [0, 1]
    assert merged["params"]["alpha"] == old["params"]["alpha"] and merged["params"]["gamma"] == new["params"]["gamma"]
    assert {r["run"] for r in merged["runs"]} == {str(grid[k]) for k in ("alpha-0", "chosen-0", "gamma-1", "chosen-1")}
    assert merged["kept"] == {
        "file": str(earlier), "params": ["alpha"], "command": "fave figure sensitivity A", "setup_checked": True,
        "trained_by": "",
    }  # fmt: skip
    md = render_markdown(merged)
    assert "Panels alpha are kept from" in md and "(checked)" in md and "## (a) alpha" in md and "## (c) gamma" in md
    # a file written before setups were recorded: merged, and the Markdown says it was not checked
    earlier.write_text(json.dumps({k: v for k, v in old.items() if k != "setup"}))
    assert "is not checked" in render_markdown(keep_panels(new, earlier))


def test_bad_input_keep_a_figure_that_does_not_fit(grid, tmp_path) -> None:
    old = run_sensitivity([str(grid["alpha-0"]), str(grid["chosen-0"])])
    new = run_sensitivity([str(grid["gamma-0"]), str(grid["chosen-0"])])
    earlier = tmp_path / "old.json"
    for edit, message in (
        ({"setup": {**old["setup"], "train.lr": 0.01}}, "differ in train.lr"),
        ({"dataset": "other"}, "has dataset 'other'"),
        ({"params": {"gamma": old["params"]["alpha"]}}, "nothing to keep"),
        ({"params": {"alpha": {"points": [{}]}}}, "lack points, runs or seeds"),
    ):
        earlier.write_text(json.dumps({**old, **edit}))
        with pytest.raises(FaveError, match=message):
            keep_panels(new, earlier)
    earlier.write_text("{not json")
    with pytest.raises(FaveError, match="not readable as JSON"):
        keep_panels(new, earlier)


# -- refused inputs (part of the bad-input corpus: pytest -k bad_input) ----------------------------


def refused(capsys, *args: str) -> str:
    assert main(["figure", "sensitivity", *args]) == 2
    err = capsys.readouterr().err
    assert err.startswith("fave: error: ") and err.count("\n") == 1 and "Traceback" not in err
    return err


def test_bad_input_a_run_varying_two_parameters(tmp_path, capsys) -> None:
    two = make_run(tmp_path, "two", alpha=0.3, gamma=0.5)
    err = refused(capsys, str(two), "--out", str(tmp_path / "fig"))
    assert "in alpha and gamma (alpha=0.3, gamma=0.5)" in err and "varies one of" in err
    assert not list(tmp_path.glob("fig*"))


def test_bad_input_runs_the_figure_cannot_place(grid, tmp_path, capsys) -> None:
    out = ["--out", str(tmp_path / "fig")]
    assert "given as a alpha run but varies gamma" in refused(capsys, f"alpha={grid['gamma-0']}", *out)
    assert "Stage-1-only run" in refused(capsys, str(grid["stage1-0"]), *out)
    assert "no run varies" in refused(capsys, str(grid["chosen-0"]), *out)
    twin = shutil.copytree(grid["alpha-0"], tmp_path / "again")
    assert "two runs of alpha=0.3 at seed 0" in refused(capsys, str(grid["alpha-0"]), str(twin), *out)
    other = make_run(tmp_path, "lr", alpha=0.7, lr=0.01)
    assert "differ in train.lr: 0.001 -> 0.01" in refused(capsys, str(grid["alpha-0"]), str(other), *out)
    # alpha weighs a Stage-1 loss: a Stage-2 run cannot vary it over a Stage 1 trained with another value
    s2 = make_run(tmp_path, "alpha-stage2", 0, "2", grid["stage1-0"], alpha=0.9)
    assert "alpha acts in Stage 1 too" in refused(capsys, str(s2), *out)
    cross = make_run(tmp_path, "cross", 1, "2", grid["stage1-0"], gamma=0.5)
    assert "a Stage 1 of seed 0" in refused(capsys, str(cross), *out)
    assert "not a run directory" in refused(capsys, str(tmp_path / "nothing"), *out)
    scratch = make_run(tmp_path, "scratch", 0, "2", None, gamma=0.5)
    assert "trains Stage 2 from scratch" in refused(capsys, str(scratch), *out)
    shutil.rmtree(grid["stage1-1"])
    assert "not a run directory from here" in refused(capsys, str(grid["gamma-1"]), *out)
    (grid["gamma-1"] / "metrics.json").unlink()
    assert "has not finished" in refused(capsys, str(grid["gamma-1"]), *out)
    assert not list(tmp_path.glob("fig*"))


# -- the script ------------------------------------------------------------------------------


def dry_run(tmp_path: Path, **env: str) -> list[str]:
    if shutil.which("bash") is None:
        pytest.skip("needs bash")
    full = {"PATH": "/usr/bin:/bin", "DRY_RUN": "1", "FAVE": "fave", "ROOT_RUNS": str(tmp_path / "r"), **env}
    done = subprocess.run(
        ["bash", str(REPO / "scripts" / "figure5.sh")], env=full, capture_output=True, text=True, check=True
    )
    return done.stdout.splitlines()


def test_script_trains_one_stage1_per_seed_and_reuses_the_chosen_run(tmp_path) -> None:
    lines = dry_run(tmp_path)
    trains, figure = [x for x in lines if x.startswith("fave train")], lines[-1]
    assert len(trains) == 18  # per seed: 1 Stage 1 + 9 Stage 2 (gamma, p, chosen) + 8 two-stage (alpha, beta)
    assert sum("stage=1" in x for x in trains) == 1
    assert sum("stage=2" in x and "init_from=" in x for x in trains) == 9
    assert sum("stage=" not in x for x in trains) == 8 and all("--seed 0" in x for x in trains)
    assert not any("gamma=0.1" in x or "p_keep=0.75" in x for x in trains)
    # the ML-100k recipe's alpha is 0.9: every run pins the paper's 0.5, the alpha runs then set their own
    assert all("params.alpha=0.5" in x for x in trains)
    assert sum(x.count("params.alpha=") == 2 for x in trains) == 4  # the four alpha runs set a second value
    assert figure.startswith("fave figure sensitivity") and figure.count("chosen-seed0") == 1
    assert "--keep" not in figure and dry_run(tmp_path, PARAMS="beta", KEEP="old.json")[-1].endswith("--keep old.json ")
    assert len(dry_run(tmp_path, SEEDS="0 1", PARAMS="gamma", GAMMAS="0.01 .1 1")) == 2 * 4 + 1
    with pytest.raises(subprocess.CalledProcessError):
        dry_run(tmp_path, PARAMS="delta")
