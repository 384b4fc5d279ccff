"""Benchmark: FLOPs affine in steps, the floor, memory tracking, round-robin order, the
whole bench on a tiny generated dataset (JSON keys, Markdown, FAVE's row on ONNX Runtime with its
top-10 checked against eager, the eager fallback named), and the CLI on tiny runs."""

from __future__ import annotations

import argparse
import dataclasses
import json

import numpy as np
import pytest
import torch

from fave.benchmark import floor as floor_module
from fave.benchmark.bench import BenchSettings, run_bench
from fave.benchmark.cli import COMMANDS, add_bench_parser
from fave.benchmark.floor import FloorScorer
from fave.benchmark.flops import count_flops
from fave.benchmark.latency import rotated, round_robin, round_robin_passes, summary_ms, user_batch
from fave.benchmark.memory import PeakTensorMemory, measure_memory
from fave.benchmark.report import render_markdown, write_bench
from fave.config import RunConfig, build_dataclass
from fave.data.dataset import IdMap, SequenceData, Split
from fave.data.load import load_dataset
from fave.errors import FaveError
from fave.models.registry import build_model, model_class
from fave.training.checkpoint import save_config, save_id_map, save_weights

N_ITEMS = 30
TINY = dict(hidden=16, heads=2, layers=2, decoder_hidden=[8, 8], dropout=0.0, drop_path=0.0)


pytestmark = pytest.mark.usefixtures("one_thread")


def tiny_split(users: int = 12) -> Split:
    rng = np.random.default_rng(0)
    seqs = [rng.integers(1, N_ITEMS + 1, size=int(rng.integers(3, 12))) for _ in range(users)]
    ids = IdMap([f"u{u}" for u in range(users)], [f"i{i}" for i in range(N_ITEMS)])
    return Split(SequenceData("tiny", seqs, N_ITEMS, ids))


def model(name: str, **kw):
    torch.manual_seed(0)
    return build_model(name, {**TINY, **kw}, N_ITEMS).eval()


@pytest.mark.parametrize("name", ["fmrec", "diffurec"])
def test_flops_are_affine_in_the_number_of_steps(name: str) -> None:
    split = tiny_split()
    batch = user_batch(split.eval_set("test"), range(4), 10, "cpu")
    m = model(name)
    flops = []
    for k in (1, 2, 3):
        m.config.sample_steps = k
        flops.append(count_flops(m.score_all, [batch]))
    assert flops[1] - flops[0] == flops[2] - flops[1] > 0
    assert flops[0] > flops[1] - flops[0]  # one step also pays for the scoring against all items


def test_floor_costs_what_one_fave_step_costs() -> None:
    split = tiny_split()
    batch = user_batch(split.eval_set("test"), range(5), 10, "cpu")
    fave = model("fave")
    floor = FloorScorer(fave.net)
    assert floor(batch).shape == (5, N_ITEMS)
    assert count_flops(floor, [batch]) == count_flops(fave.score_all, [batch])
    fmrec = model("fmrec", sample_steps=3)
    assert count_flops(fmrec.score_all, [batch]) > 2 * count_flops(floor, [batch])


def test_peak_tensor_memory_counts_live_tensors_only() -> None:
    w = torch.randn(256, 256)  # made outside: not counted
    with torch.no_grad(), PeakTensorMemory() as mem:
        x = torch.randn(256, 256)  # 256 KiB
        y = x @ w  # 512 KiB live
        z = y[:1]  # a view keeps y alive
        del x
        v = torch.zeros(512, 256)  # y (256) + v (512) = 768 KiB
        del v, z
    assert mem.peak == 768 * 1024
    del y
    m = model("fave")
    batch = user_batch(tiny_split().eval_set("test"), range(4), 10, "cpu")
    res = measure_memory(m.score_all, batch, m)
    total = sum(p.numel() for p in m.parameters())
    decoder = sum(p.numel() for p in m.net.decoder.parameters())
    assert res.peak_mb > 0 and res.inference_params == total - decoder  # the decoder only trains


def test_round_robin_rotates_and_interleaves() -> None:
    assert rotated(["a", "b", "c"], 1) == ["b", "c", "a"] and rotated(["a", "b", "c"], 3) == [
        "a",
        "b",
        "c",
    ]
    order: list[str] = []
    scorers = {n: (lambda b, n=n: order.append(n)) for n in "abc"}
    batches = [user_batch(tiny_split().eval_set("test"), [0], 10, "cpu")] * 2
    times = round_robin(scorers, batches, rounds=2)
    assert order == list("abcbcacababc")
    assert {n: len(t) for n, t in times.items()} == {"a": 4, "b": 4, "c": 4}
    order.clear()
    passes = round_robin_passes(scorers, batches, rounds=2)
    assert order == list("aabbccbbccaa") and all(len(t) == 2 for t in passes.values())
    s = summary_ms([0.001 * i for i in range(1, 101)])
    assert s["p50"] == pytest.approx(50.5) and s["p95"] == pytest.approx(95.05) and s["n"] == 100


def has_onnx() -> bool:
    return floor_module._missing_onnx() is None


def test_bench_on_a_tiny_dataset(tmp_path) -> None:
    split = tiny_split()
    models = {"fave": model("fave"), "fmrec": model("fmrec", sample_steps=3)}
    res = run_bench(
        models,
        split.eval_set("test"),
        10,
        BenchSettings(batch_sizes=(4, 8), latency_users=6, warmup=1, repeats=2, flop_users=None, dataset="ml-100k"),
    )
    assert set(res) == {"meta", "models"}
    assert list(res["models"]) == ["fave", "fmrec", "floor"]
    for name, row in res["models"].items():
        assert {
            "params",
            "network_calls",
            "flops_per_user",
            "macs_per_user",
            "latency_ms",
            "throughput",
            "test_set_s",
            "test_set_runs_s",
            "peak_memory_mb",
            "vs_reference",
            "path",
        } <= set(row), name
        assert row["latency_ms"]["n"] == 6 and set(row["throughput"]) == {"4", "8"}
        assert len(row["test_set_runs_s"]) == 2 and row["test_set_s"] > 0
    rows = res["models"]
    assert [rows[n]["network_calls"] for n in rows] == [1, 3, 1]
    assert rows["fave"]["vs_reference"] == {"flops": 1.0, "latency_p50": 1.0, "test_set_s": 1.0}
    assert rows["fmrec"]["vs_reference"]["flops"] > 2
    assert rows["floor"]["flops_per_user"] == rows["fave"]["flops_per_user"]
    assert res["meta"]["users"] == 12 and res["meta"]["reference"] == "fave"
    assert rows["fmrec"]["path"] == rows["floor"]["path"] == "eager" and "top10_vs_eager" not in rows["fmrec"]
    path = "onnx" if has_onnx() else "eager"  # auto: ONNX Runtime when installed
    assert rows["fave"]["path"] == path and (rows["fave"]["path_note"] is None) == (path == "onnx")
    ratio = rows["fave"]["latency_ms"]["p50"] / rows["floor"]["latency_ms"]["p50"]
    assert res["meta"]["vs_floor"] == [{"model": "fave", "path": path, "latency_p50": pytest.approx(ratio)}]
    md = render_markdown(res)
    assert "| Model | FLOPs/user | MACs/user | Latency p50 (ms) | Whole test set (s) |" in md
    assert md.count("\n| fmrec |") == 2 and "Paper Table 3" in md
    assert md.count(f"\n| fave ({'onnx' if path == 'onnx' else 'eager*'}) |") == 2
    assert f"Batch-1 latency p50 of fave ({path}) / floor, same run: **{ratio:.2f}x**" in md
    if path == "onnx":  # the top-10 check ran on every test user, and agrees
        check = rows["fave"]["top10_vs_eager"]
        assert check["identical"] == check["users"] == 12 and check["k"] == 10
        assert check["max_abs_score_diff"] < 1e-4
        assert "identical top-10 to eager torch for 12/12 test users" in md
    json_path, md_path = write_bench(res, tmp_path)
    assert json.loads(json_path.read_text())["models"]["fmrec"]["network_calls"] == 3
    assert md_path.read_text() == md


def test_onnx_scorer_times_what_the_serving_runtime_scores() -> None:
    if not has_onnx():
        pytest.skip("onnxruntime or onnxscript not installed")
    split = tiny_split()
    fave = model("fave")
    path = floor_module.row_path(fave, 10, 0, torch.device("cpu"), "onnx")
    assert path.path == "onnx" and path.runtime is not None and path.runtime.runtime is not None
    batch = user_batch(split.eval_set("test"), range(5), 10, "cpu")  # left-padded to the longest history
    eager = floor_module.ServingScorer(fave, 10, 0)
    histories = [split.eval_set("test").inputs[j][-10:] for j in range(5)]
    torch.testing.assert_close(path.scorer(batch), eager(histories), atol=1e-4, rtol=1e-4)
    check = floor_module.same_top_k(path.runtime, split.eval_set("test"), 10, batch_size=5)
    assert check["identical"] == check["users"] == 12


def test_fave_row_falls_back_to_eager_and_says_why(monkeypatch) -> None:
    split = tiny_split()
    settings = BenchSettings(batch_sizes=(4,), latency_users=2, warmup=1, repeats=1, flop_users=4)
    monkeypatch.setattr(floor_module, "_missing_onnx", lambda: "onnxruntime not installed (pip install 'fave[export]')")
    res = run_bench({"fave": model("fave")}, split.eval_set("test"), 10, settings)
    row = res["models"]["fave"]
    assert row["path"] == "eager" and "onnxruntime not installed" in row["path_note"]
    assert "top10_vs_eager" not in row and res["meta"]["vs_floor"][0]["path"] == "eager"
    md = render_markdown(res)
    assert "\n| fave (eager*) |" in md and "`fave (eager*)`: timed in eager torch: onnxruntime not installed" in md
    with pytest.raises(FaveError, match="--fave-path onnx: onnxruntime not installed"):
        run_bench({"fave": model("fave")}, split.eval_set("test"), 10, BenchSettings(fave_path="onnx"))
    monkeypatch.undo()
    gaussian = run_bench({"fave": model("fave", prior="gaussian")}, split.eval_set("test"), 10, settings)
    assert "no one-step graph" in gaussian["models"]["fave"]["path_note"]  # never silently eager
    eager = dataclasses.replace(settings, fave_path="eager")
    asked = run_bench({"fave": model("fave")}, split.eval_set("test"), 10, eager)
    assert asked["models"]["fave"]["path_note"] == "eager torch (asked for)"


def test_cli_bench_and_steps_on_tiny_runs(tmp_path, capsys) -> None:
    split = tiny_split(8)
    log = tmp_path / "log.txt"  # the "lines" format: user then items, one user per line
    log.write_text("".join(f"u{u} " + " ".join(f"i{i}" for i in s) + "\n" for u, s in enumerate(split.data.sequences)))
    data_dir = str(tmp_path / "data")
    data = load_dataset(str(log), data_dir)  # what the CLI will load: ids as the loader maps them
    runs = []
    for name, params in (("fave", TINY), ("fmrec", dict(TINY, sample_steps=2))):
        run = tmp_path / name
        run.mkdir()
        config = build_dataclass(model_class(name).Config, params, "params")
        cfg = RunConfig(model=name, dataset=str(log), params=config)
        cfg.data.max_len = 10
        save_config(cfg, run)
        save_id_map(data.id_map, data.num_items, run)
        save_weights(build_model(name, cfg.params, data.num_items), run / "model.safetensors")
        runs.append(str(run))
    parser = argparse.ArgumentParser()
    add_bench_parser(parser.add_subparsers(dest="command"))
    args = parser.parse_args(
        [
            "bench",
            "--runs",
            *runs,
            "--out",
            str(tmp_path / "bench"),
            "--batch-sizes",
            "4",
            "--latency-users",
            "3",
            "--repeats",
            "1",
            "--warmup",
            "1",
            "--data-dir",
            data_dir,
            "--fave-path",
            "eager",  # the onnx path is checked above; the export costs seconds
        ]
    )
    assert COMMANDS[args.command](args) == 0
    res = json.loads((tmp_path / "bench" / "bench.json").read_text())
    assert list(res["models"]) == ["fave", "fmrec", "floor"] and res["meta"]["users"] == 8
    assert res["models"]["fave"]["path"] == "eager" and res["meta"]["fave_path"] == "eager"
    command = res["meta"]["command"]
    assert command.startswith(f"fave bench --runs {runs[0]} {runs[1]} --out ") and "--fave-path eager" in command
    assert f"Command: `{command}`" in (tmp_path / "bench" / "bench.md").read_text()
    args = parser.parse_args(
        [
            "bench-steps",
            runs[1],
            "--fave",
            runs[0],
            "--steps",
            "1",
            "2",
            "--out",
            str(tmp_path / "steps"),
            "--data-dir",
            data_dir,
        ]
    )
    assert COMMANDS[args.command](args) == 0
    assert {p.name for p in (tmp_path / "steps").iterdir()} == {
        "steps.json",
        "steps.md",
        "steps.png",
    }
    assert "| fave | 1 |" in capsys.readouterr().out


def test_cli_bench_rejects_a_bad_device_before_loading(tmp_path, capsys) -> None:
    from fave.cli import main

    out = tmp_path / "bench"
    args = ["bench", "--models", "pop", "--dataset", str(tmp_path / "no-such-log.csv"), "--out", str(out)]
    assert main([*args, "--device", "gpu"]) == 2  # a clear error (FaveError), not a traceback
    assert "device must be cpu, cuda, cuda:N or auto" in capsys.readouterr().err  # before the missing dataset
    assert not out.exists()
