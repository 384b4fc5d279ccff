import numpy as np
import pytest
import torch

from fave.data.dataset import IdMap
from fave.models.registry import build_model
from fave.serving.recommender import Recommender

fastapi = pytest.importorskip("fastapi")
from fastapi.testclient import TestClient  # noqa: E402

from fave.serving.app import create_app  # noqa: E402


@pytest.fixture
def client():
    torch.manual_seed(0)
    model = build_model("sasrec", {"hidden": 16, "heads": 1, "layers": 1}, 6)
    ids = IdMap(users=["u1"], items=["a", "b", "c", "d", "e", "f"])
    return TestClient(create_app(Recommender(model, ids, max_len=50), "SASRec"))


def test_health(client):
    assert client.get("/health").json() == {"status": "ok", "model": "SASRec", "items": 6, "index": "exact"}


def test_recommend_excludes_history_and_is_sorted(client):
    out = client.post("/recommend", json={"items": ["a", "c"], "k": 3}).json()["items"]
    assert len(out) == 3 and not {"a", "c"} & {o["item"] for o in out}
    scores = [o["score"] for o in out]
    assert scores == sorted(scores, reverse=True)
    full = client.post("/recommend", json={"items": ["a", "c"], "k": 6, "exclude_history": False}).json()["items"]
    assert np.isfinite([o["score"] for o in full]).all() and len(full) == 6


def test_unknown_item_is_a_clear_422(client):
    r = client.post("/recommend", json={"items": ["zzz"], "k": 3})
    assert r.status_code == 422 and "unknown item id 'zzz'" in r.json()["detail"]
