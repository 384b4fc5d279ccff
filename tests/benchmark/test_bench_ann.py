"""fave bench-ann on a tiny generated catalog: exact methods agree, the files carry the command."""

from __future__ import annotations

import json

import numpy as np
import pytest

from fave.benchmark.ann import mixture_catalog, recall, run_catalog
from fave.cli import main


def test_the_generated_catalog_is_fixed_by_its_seed() -> None:
    a, b = mixture_catalog(500, 16, 10, 20, seed=3), mixture_catalog(500, 16, 10, 20, seed=3)
    assert np.array_equal(a.side.weight.numpy(), b.side.weight.numpy()) and np.array_equal(a.queries, b.queries)
    assert a.side.weight.shape == (500, 16) and a.queries.shape == (20, 16) and a.queries.dtype == np.float32
    assert not np.array_equal(a.queries, mixture_catalog(500, 16, 10, 20, seed=4).queries)


def test_recall_counts_the_shared_items_per_query() -> None:
    truth = np.array([[1, 2, 3, 4], [5, 6, 7, 8]])
    assert recall(np.array([[4, 3, 2, 1], [5, 6, 0, 9]]), truth) == pytest.approx((4 + 2) / 8)


@pytest.mark.usefixtures("one_thread")
def test_bench_ann_writes_recall_and_latency(tmp_path, capsys) -> None:
    pytest.importorskip("faiss")
    out = tmp_path / "ann"
    argv = ["bench-ann", "--items", "2000", "--dim", "16", "--clusters", "20", "--queries", "128"]
    argv += ["--ef-search", "16", "64", "--nlist", "16", "--nprobe", "4", "--latency-queries", "8", "--out", str(out)]
    assert main(argv) == 0
    result = json.loads((out / "ann.json").read_text())
    rows = {(r["method"], r["settings"]): r for r in result["rows"]}
    assert [r["method"] for r in result["rows"]] == ["torch", "flat", "hnsw", "hnsw", "ivf"]
    assert rows["torch", "matmul + topk"]["recall@10"] == 1.0 and rows["flat", "IndexFlatIP"]["recall@10"] == 1.0
    assert rows["hnsw", "M 32, efC 200, efSearch 64"]["recall@10"] >= 0.95
    assert all(r["batch1_ms"]["n"] == 8 and r["batch64_ms"]["n"] == 2 for r in result["rows"])
    assert result["catalog"]["items"] == 2000 and result["command"].startswith("fave bench-ann --items 2000")
    assert result["command"] in (out / "ann.md").read_text()
    assert main(["bench-ann", "--queries", "10", "--out", str(out)]) == 2  # fewer than one batch of 64
    assert "--queries must be >= 64" in capsys.readouterr().err


@pytest.mark.usefixtures("one_thread")
def test_bench_ann_searches_a_trained_run_with_its_test_users_query_vectors(tmp_path) -> None:
    pytest.importorskip("faiss")
    rng = np.random.default_rng(0)
    log = tmp_path / "log.csv"
    rows = [f"{u},{i},{t}" for u in range(70) for t, i in enumerate(rng.choice(np.arange(1, 81), 8, replace=False))]
    log.write_text("user,item,timestamp\n" + "\n".join(rows) + "\n")
    run, data_dir = tmp_path / "run", str(tmp_path / "data")
    train = ["train", "--model", "sasrec", "--dataset", str(log), "--out", str(run), "--data-dir", data_dir, "--quiet"]
    assert main([*train, "--set", "epochs=1", "--set", "hidden=16", "--set", "threads=1"]) == 0
    catalog = run_catalog(str(run), 64, seed=0, data_dir=data_dir)
    assert catalog.side.weight.shape == (80, 16) and catalog.queries.shape == (64, 16)
    assert catalog.source["model"] == "sasrec"
    out = tmp_path / "ann"
    argv = ["bench-ann", "--run", str(run), "--data-dir", data_dir, "--queries", "64", "--ef-search", "16"]
    assert main([*argv, "--nprobe", "--latency-queries", "4", "--out", str(out)]) == 0  # --nprobe alone: no IVF
    result = json.loads((out / "ann.json").read_text())
    assert [r["method"] for r in result["rows"]] == ["torch", "flat", "hnsw"]
    assert result["rows"][1]["recall@10"] == 1.0 and result["catalog"]["kind"] == "run"
