"""`fave figure trajectories|priors` end to end on tiny runs trained in-process, and the states
they draw: the models' own inference outputs (no display needed: matplotlib's Agg backend)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

pytest.importorskip("matplotlib")
pytest.importorskip("sklearn")

from fave.cli import main  # noqa: E402
from fave.figures.states import fave_states, fmrec_states, one_step_inference  # noqa: E402
from fave.models.registry import build_model  # noqa: E402

PNG = b"\x89PNG\r\n\x1a\n"
N_ITEMS = 15  # the items of the conftest's log
TINY = dict(hidden=16, heads=2, layers=2, decoder_hidden=[8, 8])

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(autouse=True)
def data_dir(tmp_path, monkeypatch) -> Path:
    d = tmp_path / "cache"
    monkeypatch.setenv("FAVE_DATA_DIR", str(d))
    return d


@pytest.fixture(scope="module")
def runs(tmp_path_factory, write_log, small_flags) -> dict[str, Path]:
    """A two-stage FAVE, a Stage-1-only FAVE and an FMRec (4 Euler steps), one epoch per stage."""
    root = tmp_path_factory.mktemp("figure-runs")
    mp = pytest.MonkeyPatch()
    mp.setenv("FAVE_DATA_DIR", str(root / "cache"))
    data = str(write_log(root / "log.txt"))
    out = {"fave": root / "fave", "fave1": root / "fave1", "fmrec": root / "fmrec"}
    epochs = ["--set", "epochs=1", "--set", "params.stage1_epochs=1", "--set", "params.stage2_epochs=1"]
    base = ["train", "--dataset", data, *small_flags]
    try:
        assert main([*base, "--model", "fave", "--out", str(out["fave"]), *epochs]) == 0
        assert main([*base, "--model", "fave", "--out", str(out["fave1"]), *epochs, "--set", "params.stage=1"]) == 0
        fm = ["--set", "epochs=1", "--set", "params.sample_steps=4"]
        assert main([*base, "--model", "fmrec", "--out", str(out["fmrec"]), *fm]) == 0
    finally:
        mp.undo()
    return out


def test_trajectories_command_writes_png_json_md(runs, tmp_path, capsys) -> None:
    out = tmp_path / "figs" / "trajectories"
    args = ["figure", "trajectories", str(runs["fave"]), str(runs["fmrec"]), "--out", str(out)]
    assert main([*args, "--users", "3", "--background", "10", "--seed", "1"]) == 0
    assert out.with_suffix(".png").read_bytes()[:8] == PNG
    data = json.loads(out.with_suffix(".json").read_text())
    md = out.with_suffix(".md").read_text()
    assert "fave figure trajectories" in data["command"] and data["command"] in md
    assert "trajectories.png" in md and "different item embedding tables" in md
    d = data["distance_to_target"]
    assert d["fave"]["t"] == [0.0, 1.0] and d["fmrec"]["t"] == [0.0, 0.25, 0.5, 0.75, 1.0]
    assert d["fave"]["users"] == d["fmrec"]["users"] == 14  # every test user, not only the plotted
    assert len(d["fmrec"]["cosine"]["mean"]) == 5 and all(0 <= v <= 2 for v in d["fmrec"]["cosine"]["mean"])
    assert data["runs"]["fave"]["stage"] == "both" and "Stage-1-only" not in d["fave"]["inference"]
    assert len(data["plotted_users"]) == 3
    for key, n_states in (("fave", 2), ("fmrec", 5)):
        m = data["maps"][key]
        assert len(m["background_xy"]) == 10 and len(m["target_xy"]) == 3
        assert [len(s) for s in m["states_xy"]] == [n_states] * 3
        assert len(m["cosine_per_step"]) == 3 and len(m["cosine_per_step"][0]) == n_states
    # seeded: the same command writes the same numbers
    first = out.with_suffix(".json").read_text()
    assert main([*args, "--users", "3", "--background", "10", "--seed", "1"]) == 0
    assert out.with_suffix(".json").read_text() == first
    assert not list(out.parent.glob(".*.tmp"))  # atomic writes leave no temporary files


def test_trajectories_of_a_stage1_only_fave_say_so(runs, tmp_path) -> None:
    out = tmp_path / "t1"
    assert main(["figure", "trajectories", str(runs["fave1"]), str(runs["fmrec"]), "--out", str(out)]) == 0
    data = json.loads(out.with_suffix(".json").read_text())
    assert "Stage-1-only" in data["distance_to_target"]["fave"]["inference"]
    assert data["runs"]["fave"]["stage"] == "1"


def test_priors_command_writes_png_json_md(runs, tmp_path) -> None:
    out = tmp_path / "prior-distribution"
    assert main(["figure", "priors", str(runs["fave"]), "--out", str(out), "--points", "8", "--note", "load 6"]) == 0
    assert out.with_suffix(".png").read_bytes()[:8] == PNG
    data = json.loads(out.with_suffix(".json").read_text())
    assert data["users"] == 14 and len(data["map"]["anchor"]) == 8 and len(data["map"]["gaussian"]) == 8
    for prior in ("gaussian", "anchor", "random_item"):
        assert 0 <= data["distance_to_target"][prior]["cosine"]["mean"] <= 2
        assert len(data["cosine_histogram"][prior]) == 14
    assert data["anchor"]["p_keep_inference"] == 0.75 and not data["anchor"]["stage1_only_run"]
    md = out.with_suffix(".md").read_text()
    assert data["command"] in md and "| semantic anchor prior" in md
    assert data["conditions"] == "load 6" and "Conditions: load 6" in md and "--note 'load 6'" in data["command"]


def test_figures_refuse_the_wrong_models(runs, tmp_path, capsys) -> None:
    assert main(["figure", "priors", str(runs["fmrec"]), "--out", str(tmp_path / "p")]) == 2
    assert "anchor prior is FAVE's" in capsys.readouterr().err
    assert main(["figure", "trajectories", str(runs["fmrec"]), str(runs["fave"]), "--out", str(tmp_path / "t")]) == 2
    assert not (tmp_path / "p.png").exists() and not (tmp_path / "t.png").exists()


def test_states_are_what_the_models_score() -> None:
    torch.manual_seed(0)
    history = torch.tensor([[0, 0, 3, 5], [1, 2, 3, 4], [0, 0, 0, 7]])
    fave = build_model("fave", dict(TINY, p_keep=1.0), N_ITEMS).eval()
    fave.begin_stage("stage2")
    with torch.no_grad():
        torch.manual_seed(5)
        scored = fave.generate(history)
        torch.manual_seed(5)
        s = fave_states(fave, history)
    assert s.shape == (2, 3, 16) and torch.equal(s[1], scored)
    # p = 1: the anchor is the embedding of one of the user's real history items
    emb = fave.net.item_emb.weight.detach()
    for b in range(3):
        real = history[b][history[b] > 0]
        assert any(torch.equal(s[0, b], emb[i]) for i in real)
    fmrec = build_model("fmrec", dict(TINY, sample_steps=6), N_ITEMS).eval()
    with torch.no_grad():
        torch.manual_seed(5)
        scored = fmrec.generate(history)
        torch.manual_seed(5)
        s = fmrec_states(fmrec, history)
    assert s.shape == (7, 3, 16) and torch.equal(s[-1], scored)


def test_one_step_inference_restores_a_stage1_model() -> None:
    fave = build_model("fave", dict(TINY, stage="1"), N_ITEMS).eval()
    assert fave.stage == "stage1"
    with one_step_inference(fave) as stage1_only:
        assert stage1_only and fave.stage == "stage2"
    assert fave.stage == "stage1" and fave.net.item_emb.weight.requires_grad
