"""A recommender object loaded from a run directory: raw ids in, top-K raw ids out.

    rec = fave.load("runs/fave", data_dir=None)
    rec.recommend(["50", "172"], k=10, exclude=["1"])     # [("181", 3.2), ...]
    rec.recommend_batch([["50"], ["1", "2"]], k=10)       # one forward for both
    rec.recommend_user("196", k=10)                       # needs the dataset at hand
    rec.item_embeddings()                                 # ItemEmbeddings(items, vectors)
    fave.load("runs/fave", index="hnsw")                  # top-K from an approximate index

Answers are deterministic for a fixed ``seed`` (the run's ``train.eval_seed``) and do not depend
on which other histories share a batch (see :mod:`fave.serving.scoring`). With ``index`` other
than "exact", the top-K comes from a faiss index over the model's item matrix
(:mod:`fave.serving.ann`), searched with the same query vectors.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from fave.data.dataset import IdMap
from fave.errors import FaveError
from fave.models.base import SeqRecModel
from fave.rundir import load_run
from fave.serving.ann import HNSWParams, ItemIndex, check_index
from fave.serving.scoring import Runtime, Scorer

MAX_K = 1000  # the most recommendations one call returns (CLI --k and the HTTP k)
MAX_SHOWN_ID = 60  # characters of an unknown id quoted back in an error

Ranked = list[tuple[str, float]]  # (raw item id, score), best first


def shown(raw: str) -> str:
    """``raw`` quoted for an error message, cut to its first :data:`MAX_SHOWN_ID` characters."""
    return repr(raw) if len(raw) <= MAX_SHOWN_ID else f"{raw[:MAX_SHOWN_ID]!r}... ({len(raw)} characters)"


def check_k(k: int) -> None:
    if isinstance(k, bool) or not isinstance(k, int) or not 1 <= k <= MAX_K:
        raise FaveError(f"k={k!r}: the number of recommendations must be an integer between 1 and {MAX_K}")


@dataclass(frozen=True)
class ItemEmbeddings:
    """The model's item vectors: ``vectors[j]`` [D] belongs to raw id ``items[j]``. vectors [N, D]."""

    items: list[str]
    vectors: np.ndarray


@dataclass(frozen=True)
class Query:
    """One history to answer: internal ids (unknown raw ids already removed) and what to leave out."""

    history: np.ndarray  # [n] int64, oldest first
    k: int
    exclude: np.ndarray  # [m] internal ids never to recommend


class Recommender:
    """Top-K next items for a raw item history, with the user's history removed.

    ``ann``: an :class:`~fave.serving.ann.ItemIndex` over the model's items to take the top-K
    from, instead of scoring every item (None: exact scoring).
    """

    def __init__(
        self,
        model: SeqRecModel,
        id_map: IdMap,
        max_len: int,
        histories: dict[str, list[int]] | None = None,
        titles: dict[str, str] | None = None,
        seed: int = 12345,
        runtime: Runtime | None = None,
        ann: ItemIndex | None = None,
    ) -> None:
        self.seed = seed  # fixes the random draws of generative models (anchor mask, noise)
        self.model, self.id_map, self.max_len = model.eval(), id_map, max_len
        self.item_index = id_map.item_index()
        self.histories = histories or {}
        self.titles = titles or {}
        self.scorer = Scorer(self.model, max_len, seed, runtime)
        self.ann = ann
        self.popularity = self._popularity()

    @classmethod
    def from_run(
        cls,
        run_dir: str | Path,
        data_dir: str | None = None,
        onnx: str | Path | None = None,
        index: str = "exact",
        hnsw: HNSWParams | None = None,
    ) -> Recommender:
        """``onnx``: a file `fave export RUN --format onnx` wrote for this run, run with ONNX Runtime.
        ``index``: "exact" (score every item), or a faiss index built over the run's items ("flat",
        "hnsw" with ``hnsw`` settings; :mod:`fave.serving.ann`)."""
        check_index(index)
        if onnx is not None and index != "exact":
            raise FaveError(
                f"index={index!r} searches with the model's query vectors, which an ONNX export "
                "does not give; use index='exact' with onnx, or no onnx"
            )
        model, config, id_map = load_run(run_dir)
        ann = None if index == "exact" else ItemIndex.of(model, index, hnsw)
        runtime = None
        if onnx is not None:
            from fave.serving.export import load_runtime

            runtime = load_runtime(onnx, config, id_map, model)
        histories, titles = {}, {}
        try:  # the users' full sequences (for `recommend --user`), when the data is at hand
            from fave.data.load import item_titles, load_dataset

            data = load_dataset(
                config.dataset,
                data_dir,
                fmt=config.data.format,
                kcore=config.data.kcore,
                min_user_interactions=config.data.min_user_interactions,
                download=False,
            )
            histories = {id_map.users[u]: s.tolist() for u, s in enumerate(data.sequences)}
            titles = item_titles(config.dataset, data_dir) or {}
        except FaveError:
            pass
        return cls(model, id_map, config.data.max_len, histories, titles, config.train.eval_seed, runtime, ann)

    @property
    def index_name(self) -> str:
        """Where the top-K comes from: "exact", or the kind of faiss index."""
        return "exact" if self.ann is None else self.ann.kind

    def _popularity(self) -> np.ndarray | None:
        """Interaction counts per item [N] (the empty-history fallback), when known: the users'
        histories at hand, or a popularity model's saved counts."""
        if self.histories:
            flat = np.concatenate([np.asarray(s, dtype=np.int64) for s in self.histories.values()])
            return np.bincount(flat, minlength=self.model.num_items + 1)[1:].astype(np.float64)
        counts = getattr(self.model, "counts", None)
        if isinstance(counts, torch.Tensor) and counts.numel() == self.model.num_items and counts.sum() > 0:
            return counts.double().numpy()
        return None

    # -- raw ids <-> internal ids -------------------------------------------------------
    def split_known(self, items: Sequence[str]) -> tuple[np.ndarray, list[str]]:
        """-> (internal ids of the known items, in order; the unknown raw ids)."""
        known = [self.item_index[i] for i in items if i in self.item_index]
        unknown = [i for i in items if i not in self.item_index]
        return np.array(known, dtype=np.int64), unknown

    def query(
        self, items: Sequence[str], k: int = 10, exclude_history: bool = True, exclude: Sequence[str] = ()
    ) -> Query:
        """A checked :class:`Query`; unknown history ids and an empty history are FaveErrors."""
        check_k(k)
        ids, unknown = self.split_known(items)
        if unknown:
            raise FaveError(f"unknown item id {shown(unknown[0])}; ids must come from the training data")
        if not len(ids):
            raise FaveError("empty history; give at least one item id")
        return self.make_query(ids, k, exclude_history, exclude)

    def make_query(self, ids: np.ndarray, k: int, exclude_history: bool, exclude: Sequence[str] = ()) -> Query:
        left_out = self.split_known(exclude)[0]  # an unknown id to exclude is never recommended anyway
        if exclude_history:
            left_out = np.concatenate([ids, left_out])
        return Query(ids, k, np.unique(left_out) if len(left_out) else left_out)

    # -- answers -------------------------------------------------------------------------
    def answer(self, queries: Sequence[Query]) -> list[Ranked]:
        """Top-K of every query in one forward pass. Excluded items are never returned, so a
        query may get fewer than k items (at most the unseen ones)."""
        if not queries:
            return []
        if self.ann is not None:
            return self._answer_from_index(queries)
        scores = self.scorer([q.history for q in queries]).clone()  # [B, N]
        rows = [np.full(len(q.exclude), b, dtype=np.int64) for b, q in enumerate(queries)]
        if any(len(r) for r in rows):
            cols = torch.from_numpy(np.concatenate([q.exclude for q in queries]) - 1)
            scores[torch.from_numpy(np.concatenate(rows)), cols] = -torch.inf
        top = scores.topk(min(max(q.k for q in queries), scores.shape[1]), dim=1)
        values, indices = top.values.tolist(), top.indices.tolist()
        out = []
        for b, q in enumerate(queries):
            n = min(q.k, scores.shape[1] - len(q.exclude))
            if n and values[b][n - 1] == -np.inf:  # a candidate scored -inf ties the excluded: exact path
                out.append(self._top(self.scorer([q.history])[0], q.k, q.exclude))
                continue
            out.append([(self.id_map.raw_item(c + 1), s) for s, c in zip(values[b][:n], indices[b][:n], strict=True)])
        return out

    def _answer_from_index(self, queries: Sequence[Query]) -> list[Ranked]:
        """:meth:`answer` by the index: the batch's query vectors, one search, excluded items filtered."""
        assert self.ann is not None
        vectors = self.scorer.vectors([q.history for q in queries])  # [B, D]
        hits = self.ann.top(vectors, [q.k for q in queries], [q.exclude for q in queries])
        return [[(self.id_map.raw_item(i), s) for i, s in top] for top in hits]

    def _top(self, scores: torch.Tensor, k: int, exclude: np.ndarray) -> Ranked:
        """The k best of ``scores`` [N] (column j = item j + 1) outside ``exclude`` (internal ids)."""
        candidates = torch.ones(scores.numel(), dtype=torch.bool)
        if len(exclude):
            candidates[torch.from_numpy(exclude - 1)] = False
        columns = candidates.nonzero().squeeze(1)
        top = scores[columns].topk(min(k, len(columns)))
        picked = columns[top.indices]
        return [(self.id_map.raw_item(int(c) + 1), float(s)) for s, c in zip(top.values, picked, strict=True)]

    def popular(self, k: int = 10, exclude: Sequence[str] = ()) -> Ranked:
        """The k most interacted-with items (the empty-history fallback); FaveError when the counts are unknown."""
        check_k(k)
        if self.popularity is None:
            raise FaveError("no popularity counts for an empty history; load the run with its data (--data-dir)")
        return self._top(torch.from_numpy(self.popularity), k, self.split_known(exclude)[0])

    def recommend(
        self, items: Sequence[str], k: int = 10, exclude_history: bool = True, exclude: Sequence[str] = ()
    ) -> Ranked:
        """Top-k (raw id, score) after the history ``items`` (raw ids, oldest first).

        ``exclude_history`` leaves the history's own items out; ``exclude`` leaves out more raw ids.
        """
        return self.answer([self.query(items, k, exclude_history, exclude)])[0]

    def recommend_batch(
        self, histories: Sequence[Sequence[str]], k: int = 10, exclude_history: bool = True
    ) -> list[Ranked]:
        """:meth:`recommend` for many histories in one forward pass (same answers as one by one)."""
        return self.answer([self.query(h, k, exclude_history) for h in histories])

    def user_history(self, user: str) -> list[str]:
        """The raw item ids of a known user's whole sequence (the data must be at hand)."""
        if user not in self.histories:
            if not self.histories:
                raise FaveError(f"no user histories loaded for user {shown(user)}; load the run with --data-dir")
            raise FaveError(f"unknown user {shown(user)}; user ids must come from the training data")
        return [self.id_map.raw_item(i) for i in self.histories[user]]

    def recommend_user(self, user: str, k: int = 10, exclude_history: bool = True) -> Ranked:
        """Top-k next items for a known user, after their whole sequence."""
        return self.recommend(self.user_history(str(user)), k, exclude_history)

    def item_embeddings(self) -> ItemEmbeddings:
        """The vectors the model scores items with (FAVE: E), by raw id."""
        vectors = self.model.item_representation()
        if vectors is None:
            raise FaveError(f"{type(self.model).__name__} has no item vectors; item_embeddings() needs a vector model")
        return ItemEmbeddings(list(self.id_map.items), vectors.detach().float().cpu().numpy().copy())

    def describe(self, user: str, k: int = 10) -> str:
        if user not in self.histories:
            raise FaveError(
                f"unknown user {shown(user)} (or the dataset is not in the data dir); try `fave data prepare`"
            )
        items = [self.id_map.raw_item(i) for i in self.histories[user]]
        name = lambda i: f"{i} {self.titles[i]}" if i in self.titles else i  # noqa: E731
        lines = [f"user {user}: last items " + "; ".join(name(i) for i in items[-3:])]
        lines += [f"  {r + 1:2d}. {name(i)}  (score {s:.3f})" for r, (i, s) in enumerate(self.recommend(items, k))]
        return "\n".join(lines)


def load(
    run_dir: str | Path,
    data_dir: str | None = None,
    onnx: str | Path | None = None,
    index: str = "exact",
    hnsw: HNSWParams | None = None,
) -> Recommender:
    """A trained run as a :class:`Recommender`; the run directory alone suffices (``data_dir``
    adds the users' histories for ``recommend_user`` and the empty-history popularity fallback;
    ``onnx``, the run's `fave export` file, scores with ONNX Runtime: same top-K, lower latency;
    ``index="hnsw"`` takes the top-K from an approximate faiss index: big catalogs, needs fave[ann])."""
    return Recommender.from_run(run_dir, data_dir, onnx, index, hnsw)
