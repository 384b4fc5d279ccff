import json

import yaml

from fave.cli import main
from fave.reporting import PAPER, aggregate, markdown


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
