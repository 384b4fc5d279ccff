"""Top-K from a faiss index over a model's item matrix, for catalogs where scoring every item
per request costs too much (issue 14, part 4).

Models whose scores are inner products (``model.item_side()`` is not None: SASRec, GRU4Rec,
Caser, BERT4Rec, DreamRec, FAVE, FMRec, DiffuRec) score item j as ``q . w_j + b_j``, with q the
history's query vector (``Scorer.vectors``). An index over the rows w_j answers the same
question by maximum inner-product search; an item bias is folded into one more column
(items ``[w_j, b_j]``, queries ``[q, 1]``), which leaves every score unchanged. Models scored
otherwise (STOSA's Wasserstein distance, AutoSeqRec's mix of terms, pop's counts) are refused.

Indexes (:data:`INDEXES`):

- ``exact``: no index; the library's torch matmul + topk over all N items (the default);
- ``flat``: faiss ``IndexFlatIP``, the same exhaustive search in faiss (same top-K up to float
  rounding of near-ties; the reference the approximate index is measured against);
- ``hnsw``: faiss ``IndexHNSWFlat`` with the inner-product metric, a graph searched greedily:
  sub-linear per query, approximate. :class:`HNSWParams` holds its settings; the defaults were
  chosen for recall@10 >= 0.95 on a generated 100k-item catalog (``results/ann/``).

HNSW was preferred to IVF-flat because, on that 100k-item catalog, it was faster at the same
recall (``fave bench-ann`` times both); IVF builds about ten times faster, and on a trained FAVE's
12k Beauty items it was the faster one (``results/ann/README.md``).

Excluded items (the history, ``exclude``) are filtered after the search: the index is asked
for k + |excluded| items (at most N), of which at most |excluded| are dropped, so k remain
whenever the catalog has them. The graph is built on one thread with a seeded level draw, so
the index, and every answer, is the same for a fixed seed.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from types import ModuleType
from typing import Any

import numpy as np
import torch

from fave.errors import FaveError
from fave.models.base import ItemSide, SeqRecModel

INDEXES = ("exact", "flat", "hnsw")
INSTALL = "pip install 'fave[ann]'"

Hits = list[tuple[int, float]]  # (internal item id, score), best first


@dataclass(frozen=True)
class HNSWParams:
    """Settings of the HNSW graph. Memory ~ N x (4 D + 8 M) bytes above the vectors' own.

    ``m``: links per item per layer (2 m on the bottom layer); more links, higher recall, slower build.
    ``ef_construction``: candidates kept while linking an item; higher, a better graph, slower build.
    ``ef_search``: candidates kept while searching, raised to the number of items asked for (with
    fewer, HNSW returns fewer); the knob of the recall/latency trade-off, changeable without a
    rebuild (``ItemIndex.ef_search``).
    ``seed``: the draw of each item's top layer.
    """

    m: int = 32
    ef_construction: int = 200
    ef_search: int = 128
    seed: int = 12345

    def check(self) -> None:
        for name in ("m", "ef_construction", "ef_search"):
            if getattr(self, name) < 1:
                raise FaveError(f"HNSW {name}={getattr(self, name)}: it must be a positive integer")


def import_faiss(kind: str = "hnsw") -> ModuleType:
    """faiss, or a one-line FaveError naming the extra that installs it."""
    try:
        import faiss
    except ImportError:
        raise FaveError(f"index={kind!r} needs faiss: {INSTALL} (or use index='exact')") from None
    return faiss


def check_index(kind: str) -> None:
    if kind not in INDEXES:
        raise FaveError(f"index={kind!r}; allowed: {', '.join(INDEXES)}")


def inner_product_side(model: SeqRecModel, kind: str) -> ItemSide:
    """The model's item side, or a FaveError for a model whose scores are not inner products."""
    side = model.item_side()
    if side is None:
        raise FaveError(
            f"{type(model).__name__} does not score items by an inner product, so index={kind!r} cannot "
            "search its items; use index='exact'"
        )
    return side


def item_matrix(side: ItemSide) -> np.ndarray:
    """Rows ``[w_j, b_j]`` (or ``w_j`` without a bias) as contiguous float32 [N, D (+1)]."""
    w = side.weight.detach().float().cpu()
    if side.bias is not None:
        w = torch.cat([w, side.bias.detach().float().cpu()[:, None]], 1)
    return np.ascontiguousarray(w.numpy(), dtype=np.float32)


def query_matrix(vectors: torch.Tensor | np.ndarray, bias: bool) -> np.ndarray:
    """Queries ``[q, 1]`` (or ``q``) as contiguous float32 [B, D (+1)]."""
    q = vectors.detach().float().cpu().numpy() if isinstance(vectors, torch.Tensor) else np.asarray(vectors)
    if bias:
        q = np.hstack([q, np.ones((len(q), 1), dtype=q.dtype)])
    return np.ascontiguousarray(q, dtype=np.float32)


def build_faiss(items: np.ndarray, kind: str, params: HNSWParams) -> Any:
    """A faiss index of ``kind`` ("flat" or "hnsw") over items [N, D'] float32."""
    faiss = import_faiss(kind)
    dim = items.shape[1]
    if kind == "flat":
        index = faiss.IndexFlatIP(dim)
        index.add(items)
        return index
    params.check()
    index = faiss.IndexHNSWFlat(dim, params.m, faiss.METRIC_INNER_PRODUCT)
    index.hnsw.efConstruction = params.ef_construction
    index.hnsw.rng = faiss.RandomGenerator(params.seed)
    threads = faiss.omp_get_max_threads()
    faiss.omp_set_num_threads(1)  # parallel insertion may link items in a different order
    try:
        index.add(items)
    finally:
        faiss.omp_set_num_threads(threads)
    return index


class ItemIndex:
    """A faiss index over a model's item side: top-K item ids for query vectors.

    ``kind``: "flat" or "hnsw" (:data:`INDEXES` less "exact"); ``build_seconds`` says what the build cost.
    """

    def __init__(self, side: ItemSide, kind: str = "hnsw", params: HNSWParams | None = None) -> None:
        check_index(kind)
        if kind == "exact":
            raise ValueError("index 'exact' is the library's own scoring, not a faiss index")
        self.kind, self.params, self.bias = kind, params or HNSWParams(), side.bias is not None
        self.ef_search = self.params.ef_search
        start = time.perf_counter()
        self._faiss = import_faiss(kind)
        self.index = build_faiss(item_matrix(side), kind, self.params)
        self.build_seconds = time.perf_counter() - start
        self.size = int(self.index.ntotal)

    @classmethod
    def of(cls, model: SeqRecModel, kind: str = "hnsw", params: HNSWParams | None = None) -> ItemIndex:
        """The index over ``model``'s items; FaveErrors for a bad kind, missing faiss or a non-inner-product model."""
        check_index(kind)
        import_faiss(kind)
        return cls(inner_product_side(model, kind), kind, params)

    def search(self, vectors: torch.Tensor | np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """The k best items of each query -> (scores [B, k] float32, item columns [B, k] int64, -1 = none)."""
        k = min(k, self.size)
        if self.kind == "hnsw":
            if self.ef_search < 1:
                raise FaveError(f"ef_search={self.ef_search}: it must be a positive integer")
            breadth = self._faiss.SearchParametersHNSW(efSearch=max(self.ef_search, k))
            return self.index.search(query_matrix(vectors, self.bias), k, params=breadth)
        return self.index.search(query_matrix(vectors, self.bias), k)

    def top(self, vectors: torch.Tensor | np.ndarray, ks: list[int], excluded: list[np.ndarray]) -> list[Hits]:
        """For query b: its ``ks[b]`` best items outside ``excluded[b]`` (internal ids 1..N), best first.

        One search for the batch, ``max_b(ks[b] + |excluded[b]|)`` deep, then the filter.
        """
        scores, columns = self.search(vectors, max(k + len(x) for k, x in zip(ks, excluded, strict=True)))
        out = []
        for b, (k, left_out) in enumerate(zip(ks, excluded, strict=True)):
            ids = columns[b] + 1  # faiss row j is item j + 1; -1 (no item) becomes 0
            keep = (ids > 0) & ~np.isin(ids, left_out)
            out.append([(int(i), float(s)) for i, s in zip(ids[keep][:k], scores[b][keep][:k], strict=True)])
        return out
