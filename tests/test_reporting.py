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


def test_label_equals_dir_names_the_group_of_runs_from_different_experiments(tmp_path):
    # two experiments both call their runs "balanced": by directory name they would merge into one row
    for model, exp, hr in (("fave", "a", 0.3), ("sasrec", "b", 0.1)):
        for s in (0, 1):
            _run(tmp_path / exp / f"balanced-seed{s}", s, hr, 1.0, model=model)
    args = [f"fave={tmp_path}/a/balanced-seed{s}" for s in (0, 1)] + [
        f"sasrec={tmp_path}/b/balanced-seed{s}" for s in (0, 1)
    ]
    table = aggregate(args)
    assert set(table) == {"fave", "sasrec"}
    assert table["fave"]["model"] == "fave" and table["fave"]["seeds"] == [0, 1]
    assert abs(table["sasrec"]["test"]["paper"]["HR@10"]["mean"] - 0.1) < 1e-12
    assert set(aggregate([tmp_path / "a" / "balanced-seed0", tmp_path / "b" / "balanced-seed0"])) == {"balanced"}


def test_stage2_run_from_a_stage1_file_counts_only_that_stage_of_the_two_stage_run(tmp_path):
    both = tmp_path / "both-seed0"
    _run(both, 0, 0.2, 30.0)
    metrics = json.loads((both / "metrics.json").read_text())
    metrics["stages"] = [
        {"name": "stage1", "seconds": 20.0, "epochs": 9},
        {"name": "stage2", "seconds": 10.0, "epochs": 3},
    ]
    (both / "metrics.json").write_text(json.dumps(metrics))
    _run(tmp_path / "wd0-seed0", 0, 0.3, 5.0, init=str(both / "stage1.safetensors"))
    e = aggregate([tmp_path / "wd0-seed0"])["wd0"]
    assert e["train_seconds"]["mean"] == 25.0  # Stage 1 of the two-stage run (20 s) + this run's 5 s
    assert e["epochs"] == [[9, 4]]
    _run(tmp_path / "final-seed0", 0, 0.3, 5.0, init=str(both / "model.safetensors"))  # its final weights: all of it
    e = aggregate([tmp_path / "final-seed0"])["final"]
    assert e["train_seconds"]["mean"] == 35.0 and e["epochs"] == [[9, 3, 4]]


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


def _with_diversity(d, ild_paper, cov):
    m = json.loads((d / "metrics.json").read_text())
    m["diversity"] = {
        "paper": {"Coverage@20": cov, "ILD@20": ild_paper},
        "masked": {"Coverage@20": cov + 0.1, "ILD@20": ild_paper + 0.1},
    }
    (d / "metrics.json").write_text(json.dumps(m))


def test_diversity_report_has_mean_std_over_seeds_beside_table_4(tmp_path):
    for s, (ild_, cov) in enumerate(((0.4, 0.2), (0.5, 0.4))):
        _run(tmp_path / f"fave-seed{s}", s, 0.2 + 0.1 * s, 1.0)
        _with_diversity(tmp_path / f"fave-seed{s}", ild_, cov)
    _run(tmp_path / "sasrec-seed0", 0, 0.2, 1.0, model="sasrec")
    _with_diversity(tmp_path / "sasrec-seed0", 0.9, 0.5)
    _run(tmp_path / "pop-seed0", 0, 0.1, 1.0, model="pop")  # no diversity block: shown as "-"
    dirs = [str(tmp_path / n) for n in ("fave-seed0", "fave-seed1", "sasrec-seed0", "pop-seed0")]
    assert main(["report", *dirs, "--diversity", "--out", str(tmp_path / "div"), "--command", "cmd"]) == 0
    doc = json.loads((tmp_path / "div.json").read_text())
    rows = {(r["run"], r["protocol"]): r for r in doc["rows"]}
    fave = rows[("fave", "paper")]
    assert fave["ILD@20"]["mean"] == pytest.approx(0.45) and fave["ILD@20"]["std"] == pytest.approx(0.0707107)
    assert fave["NDCG@20"]["mean"] == pytest.approx(0.125) and fave["Coverage@20"]["mean"] == pytest.approx(0.3)
    assert (fave["paper_ILD"], fave["paper_NDCG"]) == (0.435, 10.79)
    assert rows[("fave", "masked")]["paper_ILD"] is None and rows[("fave", "masked")]["ILD@20"]["mean"] == 0.55
    assert rows[("pop", "paper")]["ILD@20"] is None
    assert [r["run"] for r in doc["rows"][::2]] == ["sasrec", "fave", "pop"]  # Table 4's order first
    md = (tmp_path / "div.md").read_text()
    assert "| sasrec | paper | 0.900 ± 0.000 | 10.00 ± 0.00 | 0.500 ± 0.000 | 1 | 0.887 | 8.63 | tied item" in md
    assert "| fave | paper | 0.450 ± 0.071 | 12.50 ± 3.54 | 0.300 ± 0.141 | 2 | 0.435 | 10.79 |" in md
    assert "| pop | paper | - |" in md and "cmd" in md


def test_diversity_report_end_to_end_on_tiny_trained_runs(tmp_path, monkeypatch):
    monkeypatch.setenv("FAVE_DATA_DIR", str(tmp_path / "cache"))
    rng = np.random.default_rng(0)
    rows = [" ".join([f"u{u}", *(f"i{i}" for i in rng.choice(30, size=8, replace=False))]) for u in range(25)]
    (tmp_path / "log.txt").write_text("\n".join(rows) + "\n")
    small = ["--quiet", "--set", "epochs=1", "--set", "hidden=8", "--set", "layers=1", "--set", "heads=1"]
    small += ["--set", "max_len=6", "--set", "params.max_len=6", "--set", "threads=1"]
    runs = []
    for s in (0, 1):
        out = tmp_path / f"sasrec-seed{s}"
        args = ["train", "--model", "sasrec", "--dataset", str(tmp_path / "log.txt"), "--out", str(out)]
        assert main([*args, "--seed", str(s), *small]) == 0
        runs.append(str(out))
    assert main(["report", *runs, "--diversity", "--out", str(tmp_path / "d")]) == 0
    row = json.loads((tmp_path / "d.json").read_text())["rows"][0]
    assert row["run"] == "sasrec" and row["seeds"] == [0, 1] and 0.0 < row["ILD@20"]["mean"] <= 2.0
    assert 0.0 < row["Coverage@20"]["mean"] <= 1.0
