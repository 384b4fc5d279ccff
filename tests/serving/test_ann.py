"""Top-K from a faiss index (fave.serving.ann): the flat index is the library's top-K, HNSW finds
it on small catalogs, excluded items are filtered, and the option reaches the API, the server
and the CLI; without faiss the option is a one-line error with exit status 2."""

from __future__ import annotations

import sys

import numpy as np
import pytest
import torch

import fave
from fave.cli import main
from fave.data.dataset import IdMap
from fave.errors import FaveError
from fave.models.base import ItemSide
from fave.models.registry import build_model
from fave.serving.ann import HNSWParams, ItemIndex
from fave.serving.recommender import Recommender

N_ITEMS = 40
ITEMS = [f"i{j}" for j in range(1, N_ITEMS + 1)]
SMALL = {  # small models of every scoring path: batched, batched + item bias, per-history draws
    "sasrec": {"hidden": 16, "heads": 1, "layers": 1, "max_len": 8},
    "caser": {"hidden": 16, "window": 3, "vertical": 2, "horizontal": 4, "user_slots": 4},
    "bert4rec": {"hidden": 16, "heads": 1, "layers": 1, "max_len": 8},
    "fmrec": {
        "hidden": 16,
        "heads": 2,
        "layers": 1,
        "decoder_block": 1,
        "decoder_hidden": [16, 16],
        "sample_steps": 2,
        "max_len": 8,
    },
}
HISTORIES = [["i1", "i2", "i3"], ["i7"], [f"i{j}" for j in range(5, 25)], ["i40", "i39"]]


@pytest.fixture
def faiss():
    return pytest.importorskip("faiss")


def recommender(name: str, index: str = "exact", params: HNSWParams | None = None) -> Recommender:
    torch.manual_seed(0)
    model = build_model(name, SMALL[name], N_ITEMS)
    with torch.no_grad():  # the item biases start at zero: make them count
        if name == "bert4rec":
            model.out_bias.normal_()
        if name == "caser":
            model.out_bias.weight.normal_()
    ann = None if index == "exact" else ItemIndex.of(model, index, params)
    return Recommender(model, IdMap(["u1"], ITEMS), max_len=8, seed=7, ann=ann)


def assert_same_answers(got: list, want: list) -> None:
    for g, w in zip(got, want, strict=True):
        assert [i for i, _ in g] == [i for i, _ in w]
        np.testing.assert_allclose([s for _, s in g], [s for _, s in w], rtol=1e-5, atol=1e-5)


@pytest.mark.usefixtures("one_thread")
@pytest.mark.parametrize("name", sorted(SMALL))
def test_the_flat_index_gives_the_library_top_k(name: str, faiss) -> None:
    exact, flat = recommender(name), recommender(name, "flat")
    assert flat.index_name == "flat" and exact.index_name == "exact"
    assert_same_answers(flat.recommend_batch(HISTORIES, k=10), exact.recommend_batch(HISTORIES, k=10))
    left_out = flat.recommend(["i1"], k=N_ITEMS, exclude=["i2", "i3"])  # every item but three
    assert len(left_out) == N_ITEMS - 3 and not {"i1", "i2", "i3"} & {i for i, _ in left_out}
    assert_same_answers([left_out], [exact.recommend(["i1"], k=N_ITEMS, exclude=["i2", "i3"])])


@pytest.mark.usefixtures("one_thread")
def test_hnsw_gives_the_top_k_on_a_tiny_catalog(faiss) -> None:
    exact, hnsw = recommender("sasrec"), recommender("sasrec", "hnsw")
    assert_same_answers(hnsw.recommend_batch(HISTORIES, k=10), exact.recommend_batch(HISTORIES, k=10))


def test_hnsw_recall_on_a_clustered_catalog(faiss) -> None:
    """3,000 items in 30 clusters, 200 queries near items: recall@10 against exact search >= 0.95."""
    rng = np.random.default_rng(0)
    centres = rng.standard_normal((30, 16))
    w = (centres[rng.integers(0, 30, 3000)] + 0.5 * rng.standard_normal((3000, 16))).astype(np.float32)
    b = rng.standard_normal(3000).astype(np.float32) * 0.1
    q = (w[rng.integers(0, 3000, 200)] + 0.3 * rng.standard_normal((200, 16))).astype(np.float32)
    index = ItemIndex(ItemSide(torch.from_numpy(w), torch.from_numpy(b)), "hnsw")
    truth = torch.from_numpy(q @ w.T + b).topk(10).indices.numpy() + 1
    hits = index.top(q, [10] * len(q), [np.zeros(0, np.int64)] * len(q))
    recall = np.mean([len({i for i, _ in h} & set(t.tolist())) / 10 for h, t in zip(hits, truth, strict=True)])
    assert recall >= 0.95, recall
    assert all(len(h) == 10 for h in hits)


def test_excluded_items_are_filtered_after_an_over_fetch(faiss) -> None:
    """The exact best 15 items of a query left out: the index still returns k others, in order."""
    rng = np.random.default_rng(1)
    w = rng.standard_normal((500, 8)).astype(np.float32)
    q = rng.standard_normal((1, 8)).astype(np.float32)
    order = np.argsort(-(q @ w.T)[0]) + 1  # internal ids, best first
    for kind in ("flat", "hnsw"):
        index = ItemIndex(ItemSide(torch.from_numpy(w)), kind)
        (top,) = index.top(q, [10], [np.sort(order[:15])])
        assert [i for i, _ in top] == order[15:25].tolist(), kind
        (short,) = index.top(q, [10], [order[:495]])  # only five items are left to recommend
        assert sorted(i for i, _ in short) == sorted(order[495:].tolist()), kind


def test_hnsw_is_deterministic_for_a_seed(faiss) -> None:
    rng = np.random.default_rng(2)
    side = ItemSide(torch.from_numpy(rng.standard_normal((2000, 8)).astype(np.float32)))
    q = rng.standard_normal((50, 8)).astype(np.float32)
    params = HNSWParams(m=4, ef_construction=8, ef_search=8, seed=3)  # a coarse graph: misses differ by seed
    a, b = ItemIndex(side, "hnsw", params), ItemIndex(side, "hnsw", params)
    assert np.array_equal(faiss.vector_to_array(a.index.hnsw.neighbors), faiss.vector_to_array(b.index.hnsw.neighbors))
    assert [np.array_equal(x, y) for x, y in zip(a.search(q, 10), b.search(q, 10), strict=True)] == [True, True]


def test_models_not_scored_by_an_inner_product_are_refused(faiss) -> None:
    model = build_model("stosa", {"hidden": 16, "heads": 1, "layers": 1, "max_len": 8}, N_ITEMS)
    with pytest.raises(FaveError, match="STOSA does not score items by an inner product") as e:
        ItemIndex.of(model, "hnsw")
    assert "\n" not in str(e.value) and "index='exact'" in str(e.value)
    with pytest.raises(FaveError, match="index='ivf'; allowed: exact, flat, hnsw"):
        ItemIndex.of(model, "ivf")


@pytest.mark.usefixtures("one_thread")
def test_the_api_takes_an_index(tiny_run, faiss) -> None:
    run, _, _ = tiny_run
    exact, hnsw = fave.load(str(run)), fave.load(str(run), index="hnsw", hnsw=HNSWParams(ef_search=64))
    assert hnsw.scorer.kind == "one-step" and hnsw.ann is not None and hnsw.ann.ef_search == 64
    histories = [["1", "7", "50"], ["2"], [str(i) for i in range(1, 30)]]
    assert_same_answers(hnsw.recommend_batch(histories, k=5), exact.recommend_batch(histories, k=5))
    for h in histories:  # the same alone as in a batch
        assert_same_answers([hnsw.recommend(h, k=5)], [exact.recommend(h, k=5)])
    with pytest.raises(FaveError, match="index='hnsw' searches with the model's query vectors"):
        fave.load(str(run), onnx="model.onnx", index="hnsw")


@pytest.mark.usefixtures("one_thread")
def test_the_server_serves_from_the_index(tiny_run, faiss) -> None:
    pytest.importorskip("httpx")
    from fastapi.testclient import TestClient

    from fave.serving.app import create_app

    run, _, _ = tiny_run
    exact = fave.load(str(run))
    with TestClient(create_app(fave.load(str(run), index="hnsw"), "FAVE")) as client:
        assert client.get("/health").json()["index"] == "hnsw"
        body = client.post("/recommend", json={"items": ["1", "7", "50"], "k": 5}).json()
    assert [(x["item"], pytest.approx(x["score"], abs=1e-5)) for x in body["items"]] == exact.recommend(
        ["1", "7", "50"], k=5
    )


def test_fave_serve_builds_the_index_it_is_asked_for(tiny_run, faiss, monkeypatch, capsys) -> None:
    uvicorn = pytest.importorskip("uvicorn")
    pytest.importorskip("fastapi")
    monkeypatch.setattr(uvicorn.Server, "run", lambda self: None)  # start nothing
    run, _, _ = tiny_run
    assert main(["serve", str(run), "--index", "hnsw", "--ef-search", "32", "--threads", "1"]) == 0
    out = capsys.readouterr().out
    assert "top-K from a faiss hnsw index built in" in out and "(efSearch 32)" in out


@pytest.mark.parametrize("command", ["recommend", "serve"])
def test_without_faiss_asking_for_an_index_is_one_line_and_exit_2(tiny_run, monkeypatch, capsys, command) -> None:
    if command == "serve":
        pytest.importorskip("uvicorn")
    monkeypatch.setitem(sys.modules, "faiss", None)  # `import faiss` raises ImportError
    run, _, _ = tiny_run
    assert main([command, str(run), "--index", "hnsw"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "pip install 'fave[ann]'" in err and err.startswith("fave: error: ")
    with pytest.raises(FaveError, match=r"needs faiss: pip install 'fave\[ann\]'"):
        fave.load(str(run), index="flat")
    assert fave.load(str(run)).recommend(["1"], k=3)  # the default needs no faiss
