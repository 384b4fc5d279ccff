"""Export: the ONNX / TorchScript graph gives the library's top-K on tiny data."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

import fave
from fave.cli import main
from fave.data.dataset import IdMap
from fave.errors import FaveError
from fave.models.registry import build_model
from fave.serving.export import Exported, export_run, exported_inputs, inference_graph, top_k
from fave.serving.recommender import Recommender
from fave.serving.scoring import Scorer

DOC = Path(__file__).resolve().parents[2] / "docs" / "serving.md"


def check_cli_export(tiny_run, tmp_path, capsys, fmt: str) -> None:
    run, _, data_dir = tiny_run
    out, stem = tmp_path / f"model.{fmt}", tmp_path / "verify"
    argv = ["export", str(run), "--format", fmt, "--out", str(out), "--verify", "--data-dir", str(data_dir)]
    assert main([*argv, "--verify-out", str(stem)]) == 0, capsys.readouterr()
    report = json.loads((tmp_path / "verify.json").read_text())
    assert report["identical_top10"] == report["users"] == 20 and report["max_abs_score_diff"] < 1e-4
    assert all(report["same_top10_as_eager_on_50_histories"].values()) and fmt in report["batch1_recommend"]
    assert report["command"].startswith(f"fave export {run} --format {fmt}")
    meta = json.loads((tmp_path / f"model.{fmt}.json").read_text())
    assert meta["inputs"] == ["history", "column", "keep"] and len(meta["items"]) == meta["num_items"]
    assert "identical top-10 for 20/20" in capsys.readouterr().out


def test_torchscript_export_gives_the_library_top10(tiny_run, tmp_path, capsys) -> None:
    check_cli_export(tiny_run, tmp_path, capsys, "torchscript")


def test_onnx_export_gives_the_library_top10_and_the_doc_example_serves_it(tiny_run, tmp_path, capsys) -> None:
    pytest.importorskip("onnxscript")
    pytest.importorskip("onnxruntime")
    check_cli_export(tiny_run, tmp_path, capsys, "onnx")
    code = DOC.read_text().split("without this package", 1)[1].split("```python\n", 1)[1].split("```", 1)[0]
    namespace: dict = {}
    exec(compile(code.replace("runs/fave/model.onnx", str(tmp_path / "model.onnx")), "serving.md", "exec"), namespace)
    top = namespace["recommend"](["1", "7", "50"], k=5)
    assert len(top) == 5 and not {"1", "7", "50"} & {i for i, _ in top}


def test_the_library_scores_with_onnx_runtime(tiny_run, tmp_path) -> None:
    pytest.importorskip("onnxscript")
    pytest.importorskip("onnxruntime")
    run, _, data_dir = tiny_run
    path = tmp_path / "model.onnx"
    export_run(run, "onnx", path)
    eager, fast = fave.load(str(run)), fave.load(str(run), onnx=str(path))
    histories = [["1", "7", "50"], ["2"], [str(i) for i in range(1, 40)]]
    for h, got in zip(histories, fast.recommend_batch(histories, k=5), strict=True):
        want = eager.recommend(h, k=5)
        assert [i for i, _ in got] == [i for i, _ in want]
        np.testing.assert_allclose([s for _, s in got], [s for _, s in want], rtol=1e-4, atol=1e-5)
    meta = json.loads(Path(str(path) + ".json").read_text())
    Path(str(path) + ".json").write_text(json.dumps({**meta, "items": meta["items"][::-1]}))
    with pytest.raises(FaveError, match="not exported from this run"):
        fave.load(str(run), onnx=str(path))


def test_a_deterministic_model_exports_history_to_scores(tmp_path) -> None:
    torch.manual_seed(0)
    model = build_model("sasrec", {"hidden": 8, "heads": 1, "layers": 1}, 12).eval()
    scorer = Scorer(model, 10, 0)
    module, names = inference_graph(scorer)
    assert names == ["history"]
    path = tmp_path / "sasrec.pt"
    torch.jit.trace(module, (torch.randint(1, 13, (3, 6)),), check_trace=False).save(str(path))
    rec = Recommender(model, IdMap(users=["u"], items=[f"i{j}" for j in range(12)]), 10)
    hs = [np.array([1, 2, 3]), np.array([5]), np.arange(1, 10)]
    got = top_k(Exported(path, "torchscript", 1)(*exported_inputs(scorer, hs)), hs, 3)
    lib = rec.answer([rec.make_query(h, 3, True) for h in hs])
    assert got == [[rec.item_index[i] - 1 for i, _ in r] for r in lib]


def test_a_model_with_draws_inside_is_refused() -> None:
    model = build_model("fmrec", {"hidden": 8, "heads": 1, "layers": 2}, 12)
    with pytest.raises(FaveError, match="cannot be exported"):
        inference_graph(Scorer(model, 10, 0))


def test_export_arguments_are_checked(tiny_run, tmp_path, capsys) -> None:
    with pytest.raises(SystemExit) as e:
        main(["export", str(tiny_run[0]), "--format", "tflite", "--out", str(tmp_path / "m")])
    assert e.value.code == 2 and "invalid choice" in capsys.readouterr().err
    assert main(["export", str(tmp_path), "--out", str(tmp_path / "m.onnx")]) == 2
    assert "not a run directory" in capsys.readouterr().err and not (tmp_path / "m.onnx").exists()
