"""The batching service: micro-batched answers, metrics, unknown-item and empty-history policies."""

from __future__ import annotations

import asyncio
import re
import threading
import time

import numpy as np
import pytest
import torch

from fave.data.dataset import IdMap
from fave.errors import FaveError
from fave.models.registry import build_model
from fave.serving.batcher import MicroBatcher
from fave.serving.recommender import Recommender

fastapi = pytest.importorskip("fastapi")
httpx = pytest.importorskip("httpx")
from fastapi.testclient import TestClient  # noqa: E402

from fave.serving.app import create_app  # noqa: E402

ITEMS = [f"i{j}" for j in range(30)]


def tiny_fave(with_data: bool) -> Recommender:
    torch.manual_seed(0)
    model = build_model("fave", {"hidden": 16, "heads": 2, "layers": 2, "max_len": 8}, len(ITEMS))
    rng = np.random.default_rng(0)
    users = [f"u{u}" for u in range(6)]
    histories = {u: rng.integers(1, len(ITEMS) + 1, size=3 + 2 * n).tolist() for n, u in enumerate(users)}
    return Recommender(model, IdMap(users=users, items=ITEMS), 8, histories if with_data else None, seed=3)


def metric(text: str, name: str, labels: str = "") -> float:
    """The value of one sample line of a Prometheus text page."""
    pattern = re.escape(name + (f"{{{labels}}}" if labels else "")) + r" (\S+)"
    m = re.search(r"^" + pattern + r"$", text, flags=re.M)
    assert m is not None, (name, labels)
    return float(m.group(1))


def histories(n: int, seed: int = 1) -> list[list[str]]:
    rng = np.random.default_rng(seed)
    return [[ITEMS[j] for j in rng.integers(0, len(ITEMS), size=rng.integers(1, 12))] for _ in range(n)]


def gather(app, requests: list[dict]) -> list:
    """Send the requests concurrently on one event loop (so the batcher sees them together)."""

    async def run() -> list:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
            return await asyncio.gather(*(client.post("/recommend", json=r) for r in requests))

    return asyncio.run(run())


def test_micro_batched_answers_equal_unbatched_ones() -> None:
    rec = tiny_fave(with_data=False)
    app = create_app(rec, "FAVE", max_batch=8, max_wait_ms=200)
    hs = histories(20)
    out = gather(app, [{"items": h, "k": 5} for h in hs])
    for h, r in zip(hs, out, strict=True):
        alone = rec.recommend(h, k=5)
        got = [(o["item"], o["score"]) for o in r.json()["items"]]
        assert [i for i, _ in got] == [i for i, _ in alone]
        np.testing.assert_allclose([s for _, s in got], [s for _, s in alone], rtol=1e-5, atol=1e-6)
    page = TestClient(app).get("/metrics").text
    batches = metric(page, "fave_batch_size_count")
    assert metric(page, "fave_batch_size_sum") == 20 and batches < 20  # some requests shared a forward
    assert metric(page, "fave_batch_size_bucket", 'le="8"') == batches  # never more than max_batch


def test_recommend_batch_equals_one_by_one() -> None:
    rec = tiny_fave(with_data=False)
    hs = histories(9, seed=2)
    for h, batched in zip(hs, rec.recommend_batch(hs, k=4), strict=True):
        alone = rec.recommend(h, k=4)
        assert [i for i, _ in batched] == [i for i, _ in alone]
        np.testing.assert_allclose([s for _, s in batched], [s for _, s in alone], rtol=1e-5, atol=1e-6)


def test_metrics_count_requests_by_status_and_time_them() -> None:
    client = TestClient(create_app(tiny_fave(with_data=False), "FAVE", max_body=2000))
    for _ in range(3):
        assert client.post("/recommend", json={"items": ["i1", "i2"], "k": 3}).status_code == 200
    assert client.post("/recommend", json={"items": ["i1"], "k": 0}).status_code == 422
    assert client.post("/recommend", json={"items": ["i1"] * 1000}).status_code == 413
    assert client.get("/health").status_code == 200
    r = client.get("/metrics")
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/plain")
    page = r.text
    assert metric(page, "fave_requests_total", 'endpoint="/recommend",status="200"') == 3
    assert metric(page, "fave_requests_total", 'endpoint="/recommend",status="422"') == 1
    assert metric(page, "fave_requests_total", 'endpoint="/recommend",status="413"') == 1
    assert metric(page, "fave_requests_total", 'endpoint="/health",status="200"') == 1
    assert metric(page, "fave_request_latency_seconds_count", 'endpoint="/recommend"') == 5
    assert metric(page, "fave_request_latency_seconds_bucket", 'endpoint="/recommend",le="+Inf"') == 5
    assert metric(page, "fave_batch_size_sum") == 3
    assert "# TYPE fave_request_latency_seconds histogram" in page


def test_unknown_items_are_dropped_with_a_warning_or_refused_when_strict() -> None:
    rec = tiny_fave(with_data=False)
    client = TestClient(create_app(rec, "FAVE"))
    r = client.post("/recommend", json={"items": ["i1", "nope", "i2", "x" * 5000], "k": 4})
    body = r.json()
    assert r.status_code == 200 and body["fallback"] is None
    assert [o["item"] for o in body["items"]] == [i for i, _ in rec.recommend(["i1", "i2"], k=4)]
    assert len(body["warnings"]) == 1 and "dropped 2 unknown item id(s): 'nope'" in body["warnings"][0]
    assert "5000 characters" in body["warnings"][0] and len(r.text) < 2000  # a long id is cut
    r = client.post("/recommend", json={"items": ["i1", "nope"], "strict": True})
    assert r.status_code == 422 and "unknown item id 'nope'" in r.json()["detail"]
    r = client.post("/recommend", json={"items": ["nope"]})  # nothing known, no popularity counts
    assert r.status_code == 422 and "unknown item id 'nope'" in r.json()["detail"]
    assert metric(client.get("/metrics").text, "fave_unknown_items_total") == 3


def test_empty_history_falls_back_to_popularity_marked_as_such() -> None:
    rec = tiny_fave(with_data=True)
    client = TestClient(create_app(rec, "FAVE"))
    counts = np.bincount(np.concatenate(list(rec.histories.values())), minlength=len(ITEMS) + 1)[1:]
    for items in ([], ["nope"]):
        body = client.post("/recommend", json={"items": items, "k": 3}).json()
        assert body["fallback"] == "popularity"
        assert [o["score"] for o in body["items"]] == sorted(counts.tolist(), reverse=True)[:3]
    assert client.post("/recommend", json={"items": ["i1"], "k": 3}).json()["fallback"] is None
    page = client.get("/metrics").text
    assert metric(page, "fave_fallback_total", 'reason="empty_history"') == 1
    assert metric(page, "fave_fallback_total", 'reason="unknown_items"') == 1
    no_data = TestClient(create_app(tiny_fave(with_data=False), "FAVE"))
    r = no_data.post("/recommend", json={"items": []})
    assert r.status_code == 422 and "--data-dir" in r.json()["detail"]


def test_known_user_endpoint() -> None:
    rec = tiny_fave(with_data=True)
    client = TestClient(create_app(rec, "FAVE"))
    body = client.get("/users/u3/recommend", params={"k": 4}).json()
    assert body["user"] == "u3" and [o["item"] for o in body["items"]] == [i for i, _ in rec.recommend_user("u3", 4)]
    assert client.get("/users/nobody/recommend").status_code == 404
    assert client.get("/users/u3/recommend", params={"k": 0}).status_code == 422
    r = TestClient(create_app(tiny_fave(with_data=False), "FAVE")).get("/users/u3/recommend")
    assert r.status_code == 404 and "--data-dir" in r.json()["detail"]
    page = client.get("/metrics").text
    assert metric(page, "fave_requests_total", 'endpoint="/users/{id}/recommend",status="404"') == 1


def test_shutdown_answers_queued_requests_then_refuses() -> None:
    seen: list[int] = []

    def slow(items):
        seen.append(len(items))
        time.sleep(0.05)
        return [2 * x for x in items]

    batcher = MicroBatcher(slow, max_batch=4, max_wait_ms=5)
    futures = [batcher.submit_future(x) for x in range(10)]
    closer = threading.Thread(target=batcher.close)
    closer.start()
    closer.join(5)
    assert [f.result(timeout=1) for f in futures] == [2 * x for x in range(10)]
    assert max(seen) <= 4 and sum(seen) == 10
    with pytest.raises(FaveError, match="shutting down"):
        batcher.submit_future(1)


def test_lifespan_closes_the_batcher() -> None:
    app = create_app(tiny_fave(with_data=False), "FAVE")
    with TestClient(app) as client:
        assert client.post("/recommend", json={"items": ["i1"]}).status_code == 200
    with pytest.raises(FaveError, match="shutting down"):
        app.state.batcher.submit_future(None)


@pytest.mark.parametrize(("max_batch", "max_wait_ms"), [(0, 1.0), (4, -1.0), (4, 5000.0)])
def test_batcher_settings_are_checked(max_batch: int, max_wait_ms: float) -> None:
    with pytest.raises(FaveError):
        MicroBatcher(lambda xs: xs, max_batch, max_wait_ms)


def test_http_stack_names_what_uvicorn_will_run_on(monkeypatch) -> None:
    import importlib.util

    from fave.serving.app import http_stack, stack_line

    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name: None if name in ("httptools", "uvloop") else real(name)
    )
    assert http_stack() == ("h11", "asyncio")
    assert (
        stack_line(*http_stack())
        == "HTTP parser h11 (pip install httptools: faster), event loop asyncio (pip install uvloop: faster)"
    )
    monkeypatch.setattr(importlib.util, "find_spec", lambda name: object())
    assert stack_line(*http_stack()) == "HTTP parser httptools, event loop uvloop"
