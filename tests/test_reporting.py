import json

import numpy as np
import pytest
import yaml

from fave.cli import main
from fave.reporting import PAPER, aggregate, markdown, write_report


def _run(d, seed, hr, seconds, init="", model="fave"):
    d.mkdir(parents=True)
    block = {p: {"HR@10": hr, "HR@20": hr, "NDCG@10": hr / 2, "NDCG@20": hr / 2} for p in ("paper", "masked")}
    metrics = {
        "model": model,
        "dataset": "ml-100k",
        "seed": seed,
        "train_seconds": seconds,
        "valid": block,
        "test": block,
        "stages": [{"name": "stage2" if init else "stage1", "seconds": seconds, "epochs": 4 if init else 9 + seed}],
    }
    (d / "metrics.json").write_text(json.dumps(metrics))
    (d / "config.yaml").write_text(yaml.safe_dump({"model": "fave", "train": {"init_from": init}}))


def test_seeds_grouped_with_mean_std_and_init_stages_counted(tmp_path, capsys):
    for s, hr in ((0, 0.1), (1, 0.3)):
        _run(tmp_path / f"fave-stage1-seed{s}", s, 0.05, 100.0)
        _run(tmp_path / f"fave-seed{s}", s, hr, 50.0, init=str(tmp_path / f"fave-stage1-seed{s}"))
    table = aggregate([tmp_path / "fave-seed0", tmp_path / "fave-seed1", tmp_path / "fave-stage1-seed0"])
    e = table["fave"]
    assert e["seeds"] == [0, 1] and abs(e["test"]["paper"]["HR@10"]["mean"] - 0.2) < 1e-12
    assert abs(e["test"]["paper"]["HR@10"]["std"] - 0.1414213562) < 1e-8  # sample std
    assert e["train_seconds"]["mean"] == 150.0 and set(e["stage_seconds"]) == {"stage1", "stage2"}
    assert table["fave-stage1"]["seeds"] == [0]
    assert e["epochs"] == [[9, 4], [10, 4]]  # per seed: Stage 1 (from the init run) + Stage 2
    out = tmp_path / "res"
    assert (
        main(
            [
                "report",
                str(tmp_path / "fave-seed0"),
                str(tmp_path / "fave-seed1"),
                "--out",
                str(out),
                "--command",
                "make it",
            ]
        )
        == 0
    )
    md = (tmp_path / "res.md").read_text()
    assert "make it" in md and "| fave | paper | 20.00 ± 14.14 |" in md and "15.87" in md
    assert "| 2 | 150 (stage1 100, stage2 50) | 9+4, 10+4 |" in md
    assert json.loads((tmp_path / "res.json").read_text())["command"] == "make it"


def test_missing_run_is_a_clear_error(tmp_path, capsys):
    assert main(["report", str(tmp_path / "nope"), "--out", str(tmp_path / "r")]) == 2
    assert "not found" in capsys.readouterr().err


def test_rows_follow_table_1_order_with_the_gap_to_the_paper(tmp_path):
    for model in ("fave", "sasrec", "gru4rec", "pop"):
        _run(tmp_path / f"{model}-seed0", 0, 0.2, 1.0, model=model)
    md = markdown(aggregate([tmp_path / f"{m}-seed0" for m in ("fave", "sasrec", "gru4rec", "pop")]), "t")
    rows = [line.split(" | ")[0][2:] for line in md.splitlines() if " | paper | " in line]
    assert rows == ["pop", "gru4rec", "sasrec", "fave"]
    sasrec = next(line for line in md.splitlines() if line.startswith("| sasrec | paper |"))
    hr20, n20 = PAPER["ml-100k"]["sasrec"][1], PAPER["ml-100k"]["sasrec"][3]
    assert sasrec.endswith(f"| {20.0 - hr20:+.2f} / {10.0 - n20:+.2f} |")


def test_report_adds_holm_corrected_p_values_when_runs_saved_their_ranks(tmp_path):
    from fave.evaluation.significance import compare_runs, save_ranks

    rng = np.random.default_rng(0)
    users = np.arange(300)
    saved = {}
    for model, seeds in (("fave", (0, 1)), ("sasrec", (0,)), ("gru4rec", (0,))):
        for s in seeds:
            d = tmp_path / f"{model}-seed{s}"
            _run(d, s, 0.2, 1.0, model=model)
            r = rng.integers(1, 60, size=300)
            if model == "fave":
                r = np.where(rng.random(300) < 0.4, 1, r)  # clearly better than both
            saved[d.name] = {"test_users": users, "test_paper": r, "test_masked": r}
            save_ranks(d, saved[d.name])
    _run(tmp_path / "caser-seed0", 0, 0.2, 1.0, model="caser")  # trained before ranks were saved
    dirs = [str(p) for p in sorted(tmp_path.glob("*-seed0"))] + [str(tmp_path / "fave-seed1")]
    write_report(dirs, tmp_path / "res", "t")
    sig = json.loads((tmp_path / "res.json").read_text())["significance"]
    assert sig["correction"] == "Holm-Bonferroni" and sig["without_ranks"] == ["caser"]
    tests = sig["tests"]["paper"]
    assert {t["baseline"] for t in tests} == {"sasrec", "gru4rec"} and len(tests) == 2 * 4
    expected = compare_runs(
        [saved["fave-seed0"], saved["fave-seed1"]],
        {"gru4rec": [saved["gru4rec-seed0"]], "sasrec": [saved["sasrec-seed0"]]},
        metrics=("HR@10", "HR@20", "NDCG@10", "NDCG@20"),
    )
    by_key = {(t["baseline"], t["metric"]): t for t in tests}
    for e in expected:
        assert by_key[(e.baseline, e.metric)]["t_p_holm"] == pytest.approx(e.t_p_holm)
        assert by_key[(e.baseline, e.metric)]["wilcoxon_p_holm"] < 0.01  # the difference is real
    md = (tmp_path / "res.md").read_text()
    assert "Holm-Bonferroni" in md and "| sasrec | paper | HR@20 |" in md
    assert "--save-ranks` adds them): caser." in md


def test_report_without_saved_ranks_says_so(tmp_path):
    _run(tmp_path / "fave-seed0", 0, 0.2, 1.0)
    _run(tmp_path / "sasrec-seed0", 0, 0.2, 1.0, model="sasrec")
    write_report([str(tmp_path / "fave-seed0"), str(tmp_path / "sasrec-seed0")], tmp_path / "r", "t")
    sig = json.loads((tmp_path / "r.json").read_text())["significance"]
    assert sig["tests"] == {} and sig["without_ranks"] == ["fave", "sasrec"]
