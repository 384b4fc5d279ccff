"""``fave bench-ann``: recall and latency of approximate top-K against exact search, in one run.

    fave bench-ann --items 100000 --dim 128 --queries 1000 --threads 1 --out results/ann
    fave bench-ann --run runs/beauty/fave-seed0 --queries 1000 --out results/ann/beauty-fave

The catalog is a trained run's item matrix with its test users' query vectors (``--run``; the
dataset must be at hand), or a generated one (:func:`mixture_catalog`). Methods, all on the same
queries and timed round-robin over runs of consecutive queries (:func:`round_robin_ms`), so drift
from other jobs hits every method alike:

- ``torch``: the library's exact retrieval, ``q W^T + b`` then ``topk`` (the ground truth);
- ``flat``: faiss ``IndexFlatIP`` (exhaustive, :mod:`fave.serving.ann`);
- ``hnsw``: the library's approximate index at each ``--ef-search``;
- ``ivf``: faiss ``IndexIVFFlat`` (inner product, ``--nlist`` k-means cells, each ``--nprobe``),
  the alternative HNSW was chosen over; measured here only, the library does not offer it.

Reported: build seconds; recall@k against ``torch`` over all queries; the median (and p95)
milliseconds of one search at batch 1 (``--latency-queries`` queries) and of one batch of 64;
ratios to ``torch``. Only retrieval is timed: the network that makes a query vector costs the
same whichever index follows it. Writes ``ann.json`` and ``ann.md`` under ``--out``.
"""

from __future__ import annotations

import argparse
import os
import platform
import shlex
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from fave.benchmark.latency import rotated
from fave.errors import FaveError
from fave.io_utils import atomic_write_json, atomic_write_text
from fave.models.base import ItemSide
from fave.serving.ann import HNSWParams, ItemIndex, import_faiss, item_matrix, query_matrix

Search = Callable[[np.ndarray], Any]  # queries [B, D] -> the top-k item columns [B, k]


@dataclass(frozen=True)
class Catalog:
    """Items to search and the queries to search them with: side [N, D] (+ bias), queries [Q, D] float32."""

    side: ItemSide
    queries: np.ndarray
    source: dict[str, Any]


@dataclass(frozen=True)
class Method:
    """One way to get the top-k: its name, settings, build seconds and search function."""

    name: str
    settings: str
    build_s: float
    search: Search


def mixture_catalog(items: int, dim: int, clusters: int, queries: int, seed: int) -> Catalog:
    """A mixture of Gaussians shaped like trained item embeddings, with queries near items.

    Centres ``c ~ N(0, diag(s^2))`` with a decaying spectrum ``s_i ~ i^-1/2`` (sum s_i^2 = 1), so a
    few directions carry most of the variance (the top 10 of 128: 55%; in FAVE's Beauty embeddings
    49%); item j: ``a_j (c_{z_j} + 0.6 e_j * s)``, z_j a uniform cluster, ``a_j ~ LogNormal(0, 0.3)``
    spreading the norms (p95/p5 3.0 at 100k x 128; Beauty's FAVE 2.4); a query: a random item +
    ``0.5 e * s`` (a model's query vector lies near its likely next items). No bias.
    """
    rng = np.random.default_rng(seed)
    s = np.arange(1, dim + 1) ** -0.5
    s /= np.sqrt((s**2).sum())
    centres = rng.standard_normal((clusters, dim)) * s
    w = centres[rng.integers(0, clusters, items)] + 0.6 * rng.standard_normal((items, dim)) * s
    w *= rng.lognormal(0.0, 0.3, (items, 1))
    q = w[rng.integers(0, items, queries)] + 0.5 * rng.standard_normal((queries, dim)) * s
    source = {"kind": "mixture", "items": items, "dim": dim, "clusters": clusters, "seed": seed}
    return Catalog(ItemSide(torch.from_numpy(w.astype(np.float32))), q.astype(np.float32), source)


def run_catalog(run_dir: str, queries: int, seed: int, data_dir: str | None) -> Catalog:
    """A trained run's item side and the query vectors of ``queries`` of its test users (drawn with ``seed``)."""
    from fave.data.load import load_split
    from fave.rundir import load_run
    from fave.serving.ann import inner_product_side
    from fave.serving.scoring import Scorer

    model, config, _ = load_run(run_dir)
    side = inner_product_side(model, "hnsw")
    test = load_split(config, data_dir).eval_set("test").sample(queries, seed=seed)
    scorer = Scorer(model, config.data.max_len, config.train.eval_seed)
    vectors = [scorer.vectors(test.inputs[i : i + 256]) for i in range(0, len(test.inputs), 256)]
    source = {"kind": "run", "run": str(run_dir), "model": config.model, "dataset": config.dataset}
    source.update({"items": model.num_items, "dim": int(side.weight.shape[1]), "bias": side.bias is not None})
    return Catalog(side, torch.cat(vectors).numpy().astype(np.float32), source)


def shape_stats(weight: np.ndarray) -> dict[str, float]:
    """How anisotropic the items are (variance share of the top 10 directions) and how spread their norms."""
    centred = weight - weight.mean(0)
    sv = np.linalg.svd(centred[:: max(1, len(weight) // 20000)], compute_uv=False) ** 2  # a subsample suffices
    norms = np.linalg.norm(weight, axis=1)
    p5, p50, p95 = np.percentile(norms, [5, 50, 95])
    return {"top10_variance_share": float(sv[:10].sum() / sv.sum()), "norm_p5": p5, "norm_p50": p50, "norm_p95": p95}


# -- the methods ---------------------------------------------------------------------------------
def torch_method(side: ItemSide, k: int) -> Method:
    """The library's exact retrieval over all N items (what ``Recommender.answer`` does after scoring)."""
    w = side.weight.detach().float()
    b = None if side.bias is None else side.bias.detach().float()

    def search(q: np.ndarray) -> Any:
        scores = torch.from_numpy(q) @ w.T
        return (scores if b is None else scores + b).topk(k, dim=1).indices.numpy()

    return Method("torch", "matmul + topk", 0.0, search)


def index_methods(side: ItemSide, k: int, ef_search: list[int], seed: int) -> list[Method]:
    """``flat``, then ``hnsw`` at each efSearch (one graph, built once)."""
    flat = ItemIndex(side, "flat")
    out = [Method("flat", "IndexFlatIP", flat.build_seconds, lambda q: flat.search(q, k)[1])]
    hnsw = ItemIndex(side, "hnsw", HNSWParams(seed=seed))

    def at(ef: int) -> Search:
        def search(q: np.ndarray) -> Any:
            hnsw.ef_search = ef
            return hnsw.search(q, k)[1]

        return search

    p = hnsw.params
    for ef in ef_search:
        out.append(Method("hnsw", f"M {p.m}, efC {p.ef_construction}, efSearch {ef}", hnsw.build_seconds, at(ef)))
    return out


def ivf_methods(side: ItemSide, k: int, nlist: int, nprobe: list[int], seed: int) -> list[Method]:
    """faiss IVF-flat with the inner-product metric at each nprobe (one k-means, seeded)."""
    faiss = import_faiss("ivf")
    items = item_matrix(side)
    start = time.perf_counter()
    quantizer = faiss.IndexFlatIP(items.shape[1])
    index = faiss.IndexIVFFlat(quantizer, items.shape[1], nlist, faiss.METRIC_INNER_PRODUCT)
    index.cp.seed = seed
    index.train(items)
    index.add(items)
    build_s = time.perf_counter() - start
    bias = side.bias is not None

    def at(n: int) -> Search:
        params = faiss.SearchParametersIVF(nprobe=n)
        return lambda q: index.search(query_matrix(q, bias), k, params=params)[1]

    return [Method("ivf", f"nlist {nlist}, nprobe {n}", build_s, at(n)) for n in nprobe]


# -- measuring -----------------------------------------------------------------------------------
def recall(found: np.ndarray, truth: np.ndarray) -> float:
    """Mean share of each query's true top-k (columns, [Q, k]) that ``found`` [Q, k] holds."""
    shared = [len(set(f.tolist()) & set(t.tolist())) for f, t in zip(found, truth, strict=True)]
    return float(np.mean(shared)) / truth.shape[1]


def round_robin_ms(methods: list[Method], batches: list[np.ndarray], blocks: int = 20) -> list[list[float]]:
    """Milliseconds of every method on every batch. The batches are cut into ``blocks`` runs of
    consecutive batches; each method searches a whole run before the next takes over (the order
    rotated per run), so drift hits every method alike while each one searches with its own data
    in cache, as a server answering one request after another does (interleaving single queries
    would let an exhaustive method evict the next method's index every time)."""
    times: list[list[float]] = [[] for _ in methods]
    size = max(1, -(-len(batches) // blocks))
    for r, first in enumerate(range(0, len(batches), size)):
        for m in rotated(list(range(len(methods))), r):
            for batch in batches[first : first + size]:
                start = time.perf_counter()
                methods[m].search(batch)
                times[m].append(1000 * (time.perf_counter() - start))
    return times


def measure(catalog: Catalog, args: argparse.Namespace, log: Callable[[str], None]) -> list[dict[str, Any]]:
    """Build every method, then recall over all queries and batch-1 / batch-64 latency for each."""
    side, q, k = catalog.side, catalog.queries, args.k
    if len(q) < 64:
        raise FaveError(f"only {len(q)} queries (test users); timing a batch of 64 needs at least 64")
    methods = [torch_method(side, k)]
    log(f"building flat + hnsw over {side.weight.shape[0]:,} items (one thread for the graph)")
    methods += index_methods(side, k, args.ef_search, args.seed)
    if args.nprobe:
        methods += ivf_methods(side, k, args.nlist, args.nprobe, args.seed)
    found = [np.concatenate([m.search(q[i : i + 256]) for i in range(0, len(q), 256)]) for m in methods]
    recalls = [recall(f, found[0]) for f in found]
    log("timing batch 1 and batch 64, round-robin")
    for m in methods:  # warm-up
        m.search(q[:64])
    one = round_robin_ms(methods, [q[i : i + 1] for i in range(min(args.latency_queries, len(q)))])
    many = round_robin_ms(methods, [q[i : i + 64] for i in range(0, len(q) - 63, 64)])
    rows = []
    for m, r, t1, t64 in zip(methods, recalls, one, many, strict=True):
        rows.append(
            {
                "method": m.name,
                "settings": m.settings,
                "build_s": m.build_s,
                f"recall@{k}": r,
                "batch1_ms": {"p50": float(np.median(t1)), "p95": float(np.percentile(t1, 95)), "n": len(t1)},
                "batch64_ms": {"p50": float(np.median(t64)), "p95": float(np.percentile(t64, 95)), "n": len(t64)},
            }
        )
    for row in rows:
        for batch in ("batch1_ms", "batch64_ms"):
            row[batch]["vs_torch"] = row[batch]["p50"] / rows[0][batch]["p50"]
    return rows


def run_ann_bench(args: argparse.Namespace, log: Callable[[str], None]) -> dict[str, Any]:
    faiss = import_faiss("hnsw")
    if args.threads:
        torch.set_num_threads(args.threads)
        faiss.omp_set_num_threads(args.threads)
    load_start = list(os.getloadavg())
    if args.run:
        catalog = run_catalog(args.run, args.queries, args.seed, args.data_dir)
    else:
        catalog = mixture_catalog(args.items, args.dim, args.clusters, args.queries, args.seed)
    log(f"catalog: {catalog.source}, {len(catalog.queries):,} queries")
    rows = measure(catalog, args, log)
    return {
        "command": command_line(args),
        "note": args.note,
        "catalog": {
            **catalog.source,
            **shape_stats(catalog.side.weight.detach().float().numpy()),
            "queries": len(catalog.queries),
        },
        "k": args.k,
        "machine": {
            "platform": platform.platform(),
            "processor": platform.processor() or platform.machine(),
            "cpus": os.cpu_count(),
            "torch": torch.__version__,
            "faiss": faiss.__version__,
            "torch_threads": torch.get_num_threads(),
            "faiss_threads": faiss.omp_get_max_threads(),
            "load_average_at_start": load_start,
            "load_average_at_end": list(os.getloadavg()),
        },
        "rows": rows,
    }


def command_line(args: argparse.Namespace) -> str:
    """The ``fave bench-ann`` command that reproduces this run (every option spelled out)."""
    source = (
        ["--run", args.run] if args.run else ["--items", args.items, "--dim", args.dim, "--clusters", args.clusters]
    )
    words = ["fave", "bench-ann", *source, "--queries", args.queries, "--k", args.k, "--ef-search", *args.ef_search]
    words += ["--nlist", args.nlist, "--nprobe", *args.nprobe] if args.nprobe else ["--nprobe"]
    words += ["--latency-queries", args.latency_queries, "--threads", args.threads, "--seed", args.seed]
    words += ["--out", args.out] + (["--data-dir", args.data_dir] if args.data_dir else [])
    return shlex.join(map(str, words))


def render_markdown(result: dict[str, Any]) -> str:
    c, m, k = result["catalog"], result["machine"], result["k"]
    if c["kind"] == "run":
        what = f"the item matrix of `{c['run']}` ({c['model']} on {c['dataset']}) and its test users' query vectors"
    else:
        what = (
            f"a generated mixture of {c['clusters']} Gaussians (seed {c['seed']}; `fave.benchmark.ann.mixture_catalog`)"
        )
    lines = [
        "# Approximate top-K against exact search (fave bench-ann)",
        "",
        f"Command: `{result['command']}`",
        "",
        f"Catalog: {c['items']:,} items x {c['dim']} dimensions, {what}; {c['queries']:,} queries. "
        f"Top-10 directions hold {c['top10_variance_share']:.0%} of the item variance; item norms p5/p50/p95 "
        f"{c['norm_p5']:.2f} / {c['norm_p50']:.2f} / {c['norm_p95']:.2f}.",
        "",
        f"Machine: {m['cpus']} CPUs ({m['processor']}), torch {m['torch']} on {m['torch_threads']} thread(s), "
        f"faiss {m['faiss']} on {m['faiss_threads']}; load average {m['load_average_at_start'][0]:.1f} at the start, "
        f"{m['load_average_at_end'][0]:.1f} at the end." + (f" {result['note']}" if result["note"] else ""),
        "",
        f"recall@{k}: share of the exact top-{k} (torch) found, over all queries. Latency: median (p95) ms of one "
        "search, retrieval only, methods taking turns over runs of consecutive queries; x torch: the median over "
        "torch's.",
        "",
        f"| method | settings | build s | recall@{k} | batch 1 ms | x torch | batch 64 ms | x torch |",
        "|---|---|---:|---:|---:|---:|---:|---:|",
    ]
    for r in result["rows"]:
        b1, b64 = r["batch1_ms"], r["batch64_ms"]
        lines.append(
            f"| {r['method']} | {r['settings']} | {r['build_s']:.1f} | {r[f'recall@{k}']:.4f} | "
            f"{b1['p50']:.3f} ({b1['p95']:.3f}) | {b1['vs_torch']:.3f} | {b64['p50']:.2f} ({b64['p95']:.2f}) | "
            f"{b64['vs_torch']:.3f} |"
        )
    return "\n".join(lines) + "\n"


def write_ann(result: dict[str, Any], out: str | Path) -> list[Path]:
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    paths = [out / "ann.json", out / "ann.md"]
    atomic_write_json(paths[0], result)
    atomic_write_text(paths[1], render_markdown(result))
    return paths


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("bench-ann", help="recall and latency of the approximate index against exact search")
    p.add_argument("--run", default=None, help="a trained run: its items and test users' queries (default: generated)")
    p.add_argument("--items", type=int, default=100_000, help="generated catalog: items")
    p.add_argument("--dim", type=int, default=128, help="generated catalog: dimensions (FAVE's default hidden size)")
    p.add_argument("--clusters", type=int, default=512, help="generated catalog: mixture components")
    p.add_argument("--queries", type=int, default=1000, help="queries for recall (and the timed ones are among them)")
    p.add_argument("--k", type=int, default=10)
    p.add_argument("--ef-search", type=int, nargs="+", default=[32, 64, 128, 256], help="HNSW settings to measure")
    p.add_argument("--nlist", type=int, default=1024, help="IVF reference: k-means cells")
    p.add_argument("--nprobe", type=int, nargs="*", default=[32, 64, 128], help="IVF reference (none: skip IVF)")
    p.add_argument("--latency-queries", type=int, default=200, help="queries timed one at a time")
    p.add_argument("--threads", type=int, default=1, help="torch and faiss threads (0: their defaults)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--note", default="", help="conditions worth knowing (machine load), kept in JSON and Markdown")
    p.add_argument("--out", required=True, help="directory for ann.json and ann.md")
    p.add_argument("--data-dir", default=None, help="with --run: the data directory")


def cmd(args: argparse.Namespace) -> int:
    if args.queries < 64 or args.k < 1 or (not args.run and args.items < max(args.k, args.clusters)):
        raise FaveError("--queries must be >= 64 (one batch of 64), --k >= 1, and --items >= --k and --clusters")
    result = run_ann_bench(args, lambda line: print(f"[ann] {line}", flush=True))
    paths = write_ann(result, args.out)
    print(render_markdown(result))
    print("written: " + ", ".join(str(p) for p in paths))
    return 0
