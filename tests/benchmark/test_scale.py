"""fave bench-scale: the Zipf generator, the loss settings and a tiny sweep end to end."""

from __future__ import annotations

import json

import numpy as np

from fave.benchmark.scale import loss_overrides, measure_cell, write_log, zipf_log
from fave.cli import main
from fave.data.load import load_dataset


def test_zipf_log_gives_distinct_items_per_user_with_zipf_popularity() -> None:
    user, item = zipf_log(400, 1000, exponent=0.8, per_user=20, seed=1)
    assert len(user) == 400 * 20 and item.min() >= 1 and item.max() <= 1000
    for u in (0, 17, 399):
        assert len(set(item[user == u].tolist())) == 20
    counts = np.bincount(item, minlength=1001)
    assert counts[1:11].sum() > counts[991:1001].sum() * 5  # head ids are drawn far more often
    again = zipf_log(400, 1000, exponent=0.8, per_user=20, seed=1)
    assert np.array_equal(item, again[1]) and not np.array_equal(item, zipf_log(400, 1000, seed=2)[1])


def test_a_written_log_reads_back_through_the_pipeline_in_draw_order(tmp_path) -> None:
    user, item = zipf_log(30, 200, per_user=5, seed=0)
    path = write_log(tmp_path / "log.csv", user, item)
    data = load_dataset(str(path), tmp_path)
    assert data.num_users == 30 and data.num_interactions == 150
    first_user = data.id_map.users.index("u0")
    assert [data.id_map.raw_item(int(i)) for i in data.sequences[first_user]] == [str(i) for i in item[:5]]


def test_loss_settings() -> None:
    assert loss_overrides("sasrec", "auto") == []
    assert loss_overrides("sasrec", "sampled") == ["params.loss=sampled"]
    assert loss_overrides("fave", "full") == [
        "params.ce_loss=full",
        "params.recon=full",
        "params.decoder_output=linear",
    ]
    assert loss_overrides("fmrec", "sampled")[1:] == ["params.recon=gathered", "params.decoder_output=tied"]


def test_a_fave_cell_times_both_stages_and_evaluation(tmp_path) -> None:
    user, item = zipf_log(12, 40, per_user=6, seed=0)
    path = write_log(tmp_path / "log.csv", user, item)
    cell = measure_cell(str(path), str(tmp_path), "fave", ["params.hidden=16", "params.heads=2"], 1, 4)
    assert [s["stage"] for s in cell["stages"]] == ["stage1", "stage2"]
    assert all(s["step_s"] > 0 and s["steps_timed"] == 1 for s in cell["stages"])
    assert cell["resolved"] == {"ce_loss": "full", "recon": "full", "decoder_output": "linear"}
    assert cell["eval_users_timed"] == 4 and cell["eval_estimated"] and cell["peak_rss_mb"] > 0


def test_bench_scale_writes_json_markdown_with_the_command(tmp_path) -> None:
    out = tmp_path / "out"
    argv = ["bench-scale", "--users", "20", "--items", "30", "--models", "sasrec", "--losses", "auto", "full"]
    argv += ["--full-max-items", "10", "--steps", "1", "--eval-users", "5", "--out", str(out)]
    assert main(argv) == 0
    result = json.loads((out / "scale.json").read_text())
    cells = result["sizes"][0]["cells"]
    assert cells[0]["status"] == "ok" and cells[0]["resolved"] == {"loss": "full"}
    assert cells[1]["status"].startswith("skipped")
    md = (out / "scale.md").read_text()
    assert result["command"] in md and "fave bench-scale --users 20 --items 30" in md


def test_bench_scale_sweeps_the_users_axis_too(tmp_path) -> None:
    out = tmp_path / "out"
    argv = ["bench-scale", "--users", "12", "24", "--items", "30", "--models", "sasrec", "--losses", "auto"]
    argv += ["--steps", "1", "--eval-users", "0", "--out", str(out)]
    assert main(argv) == 0
    result = json.loads((out / "scale.json").read_text())
    assert [s["users"] for s in result["sizes"]] == [12, 24] and result["generator"]["users"] == [12, 24]
    epochs = [s["cells"][0]["epoch_s_est"] for s in result["sizes"]]
    assert all(e > 0 for e in epochs)
    md = (out / "scale.md").read_text()
    assert "fave bench-scale --users 12 24 --items 30" in md
    assert "| 12 | 30 |" in md and "| 24 | 30 |" in md  # the users column leads each row
    png = out / "scale.png"
    if png.exists():  # matplotlib installed: a third panel (against users) makes the figure wider
        from PIL import Image

        assert Image.open(png).size[0] > 1500
