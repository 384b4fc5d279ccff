"""Bounded robustness fuzz of the HTTP server: random, malformed and oversized requests.

    python scripts/fuzz_server.py                       # a tiny in-process SASRec, 500 requests
    python scripts/fuzz_server.py --run runs/sasrec     # the server of a trained run, in process
    python scripts/fuzz_server.py --port 8000           # a running `fave serve` on 127.0.0.1:8000

Loopback only: in process through FastAPI's TestClient, or to 127.0.0.1. Bounded by
``--count`` requests and ``--seconds`` of wall time, whichever ends first. Prints the count
of each status code and of 2xx/4xx/5xx; exits 1 when any request got a 5xx (or failed).
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import time
from collections import Counter
from collections.abc import Callable
from typing import Any

Request = tuple[str, str, bytes, dict[str, str]]  # method, path, body, headers
JSON = {"content-type": "application/json"}


def valid_body(rng: random.Random, items: list[str]) -> Any:
    return {
        "items": rng.sample(items, rng.randint(1, min(5, len(items)))),
        "k": rng.randint(1, 50),
        "exclude_history": rng.random() < 0.5,
    }


def random_value(rng: random.Random, items: list[str], depth: int = 0) -> Any:
    simple = [None, True, False, 0, -1, 1, 10**30, 1.5, float("nan"), "", "a", "é" * 20, rng.choice(items)]
    if depth > 2 or rng.random() < 0.6:
        return rng.choice(simple)
    if rng.random() < 0.5:
        return [random_value(rng, items, depth + 1) for _ in range(rng.randint(0, 4))]
    keys = ["items", "k", "exclude_history", "extra"]
    return {rng.choice(keys): random_value(rng, items, depth + 1) for _ in range(rng.randint(0, 4))}


def make_request(rng: random.Random, items: list[str]) -> Request:
    kind = rng.choice(["valid", "valid", "random", "random", "bytes", "nested", "huge", "long_id", "method"])
    if kind == "valid":
        return "POST", "/recommend", json.dumps(valid_body(rng, items)).encode(), JSON
    if kind == "random":
        return "POST", "/recommend", json.dumps(random_value(rng, items)).encode(), JSON
    if kind == "bytes":
        return "POST", "/recommend", bytes(rng.getrandbits(8) for _ in range(rng.randint(0, 64))), JSON
    if kind == "nested":
        return "POST", "/recommend", b"[" * rng.randint(100, 50_000), JSON
    if kind == "huge":  # over the 1 MiB body limit
        return "POST", "/recommend", json.dumps({"items": [items[0]] * 300_000}).encode(), JSON
    if kind == "long_id":
        return "POST", "/recommend", json.dumps({"items": ["q" * rng.randint(1_000, 500_000)]}).encode(), JSON
    return rng.choice([("GET", "/recommend"), ("POST", "/health"), ("GET", "/nope"), ("DELETE", "/")]) + (b"", {})


def in_process_sender(run_dir: str | None) -> tuple[Callable[[Request], int], list[str]]:
    from fastapi.testclient import TestClient

    from fave.serving.app import create_app
    from fave.serving.recommender import Recommender

    if run_dir:
        rec = Recommender.from_run(run_dir)
    else:
        import torch

        from fave.data.dataset import IdMap
        from fave.models.registry import build_model

        torch.manual_seed(0)
        model = build_model("sasrec", {"hidden": 16, "heads": 1, "layers": 1}, 30)
        rec = Recommender(model, IdMap(users=["u"], items=[f"i{j}" for j in range(30)]), max_len=50)
    client = TestClient(create_app(rec, type(rec.model).__name__), raise_server_exceptions=False)

    def send(req: Request) -> int:
        method, path, body, headers = req
        return client.request(method, path, content=body, headers=headers).status_code

    return send, list(rec.id_map.items)


def loopback_sender(port: int, timeout: float) -> tuple[Callable[[Request], int], list[str]]:
    import httpx

    client = httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=timeout)
    n = int(client.get("/health").json()["items"])
    # item ids are not exposed by the server; valid-looking requests use ids it may not know
    items = [str(j) for j in range(1, min(n, 100) + 1)]

    def send(req: Request) -> int:
        method, path, body, headers = req
        return client.request(method, path, content=body, headers=headers).status_code

    return send, items


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--run", default=None, help="run directory to serve in process (default: a tiny random SASRec)")
    p.add_argument("--port", type=int, default=None, help="fuzz a running `fave serve` on 127.0.0.1:PORT instead")
    p.add_argument("--count", type=int, default=500, help="at most this many requests")
    p.add_argument("--seconds", type=float, default=60.0, help="at most this much wall time")
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)
    if args.count < 1 or args.seconds <= 0:
        p.error("--count and --seconds must be positive")
    send, items = loopback_sender(args.port, 10.0) if args.port else in_process_sender(args.run)
    rng = random.Random(args.seed)
    codes: Counter[int] = Counter()
    failures = 0
    start = time.monotonic()
    for _ in range(args.count):
        if time.monotonic() - start > args.seconds:
            break
        req = make_request(rng, items)
        try:
            codes[send(req)] += 1
        except Exception as e:  # a dropped connection counts as a server failure
            failures += 1
            print(f"request {req[0]} {req[1]} ({len(req[2])} bytes) failed: {e.__class__.__name__}", file=sys.stderr)
    classes = Counter(f"{c // 100}xx" for c in codes.elements())
    total = sum(codes.values()) + failures
    print(f"{total} requests in {time.monotonic() - start:.1f} s")
    print("by status: " + " ".join(f"{c}={n}" for c, n in sorted(codes.items())))
    print(" ".join(f"{k}={classes.get(k, 0)}" for k in ("2xx", "4xx", "5xx")) + f" failed={failures}")
    return 1 if classes.get("5xx", 0) or failures else 0


if __name__ == "__main__":
    sys.exit(main())
