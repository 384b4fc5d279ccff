"""Batch scorers whose answer for one history does not depend on the other histories in its batch.

The server groups concurrent requests into one forward pass, so a history's scores must be the
same alone or in a batch. Three kinds of models, three scorers:

- deterministic at inference (SASRec, GRU4Rec, ...): one ``score_all`` over the left-padded batch
  (padding keys are masked, positions are relative or right-aligned: exact up to float rounding);
- FAVE after Stage 2 with the anchor prior: the one-step graph of eq. 25 with *per-history*
  draws (anchor item and Bernoulli mask, eq. 14) from a generator seeded by the eval seed, so
  a history gets the draws it would get alone; then one network call for the whole batch;
- any other model with random draws at inference (FMRec, DiffuRec, DreamRec, FAVE Stage 1):
  one ``score_all`` per history under the eval seed (no batching gain, same answers).

A FAVE history alone draws exactly what ``score_all`` draws for it under ``torch.manual_seed``
(``rand(1, L)`` then ``rand(1, L, D)``, the last position read), so the serving answer is the
library's deterministic answer for that seed, unchanged.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from fave.data.batching import Batch, left_pad
from fave.models.base import SeqRecModel

DETERMINISTIC = ("Pop", "SASRec", "GRU4Rec", "Caser", "BERT4Rec", "STOSA", "AutoSeqRec")  # no draws in score_all


@dataclass(frozen=True)
class AnchorDraws:
    """The random part of FAVE's one-step inference, explicit: per history, the column of its
    anchor item in the padded batch and the Bernoulli keep mask. ``column`` [B] int64, ``keep`` [B, D]."""

    column: Tensor
    keep: Tensor


def is_one_step_anchor(model: SeqRecModel) -> bool:
    """FAVE after Stage 2 with the paper's anchor prior over history positions: the exported graph."""
    c = model.config
    return (
        type(model).__name__ == "FAVE"
        and getattr(model, "stage", "") == "stage2"
        and c.prior == "anchor"
        and c.anchor_positions == "history"
    )


def anchor_draw(width: int, hidden: int, p_keep: float, seed: int) -> tuple[int, Tensor]:
    """Eq. 14 at the last position of one history of ``width`` real items, drawn as ``FAVE.anchor``
    draws for a batch of one under ``torch.manual_seed(seed)``: ``rand(1, L)`` for the anchor, then
    ``rand(1, L, D)`` for the mask, the last position read. -> (anchor index in 0..L-1, keep [D]).

    Under a fixed seed the draw depends on the width only, so :class:`Scorer` caches it per width.
    """
    g = torch.Generator().manual_seed(seed)
    u = torch.rand(1, width, generator=g)[0, width - 1]
    m = torch.rand(1, width, hidden, generator=g)[0, width - 1]
    return min(int(u * width), width - 1), (m < p_keep).float()


def anchor_draws(
    widths: list[int],
    batch_width: int,
    hidden: int,
    p_keep: float,
    seed: int,
    cache: dict[int, tuple[int, Tensor]] | None = None,
) -> AnchorDraws:
    """:func:`anchor_draw` for every history of a batch left-padded to ``batch_width``:
    column [B] (where in the padded row the anchor item is) and keep [B, D] (1 = keep that channel).
    ``cache`` (width -> draw) keeps the draws between calls (:class:`Scorer`)."""
    cache = {} if cache is None else cache
    for w in set(widths) - cache.keys():
        cache[w] = anchor_draw(w, hidden, p_keep, seed)
    columns = torch.tensor([batch_width - w + cache[w][0] for w in widths], dtype=torch.long)
    return AnchorDraws(columns, torch.stack([cache[w][1] for w in widths]))


class OneStepAnchor(torch.nn.Module):
    """FAVE's one-step inference graph with its draws as inputs: ``(history, column, keep) -> scores``.

    ``x_0 = keep * e_{history[column]}`` (eq. 14), ``x_1 = f(x_0, 0, 1)`` (eq. 25), scores ``x_1 E^T``.
    history [B, L] int64 left-padded, column [B] int64, keep [B, D] float -> [B, N].
    The times are fixed, so their embedding ``condition(0, 1)`` is computed once, from the weights at
    construction (an exported graph holds it as a constant): build the graph after training.
    """

    def __init__(self, model: SeqRecModel) -> None:
        super().__init__()
        self.net = model.net
        c = model.config
        self.add_x0 = c.objective == "authors" and c.inference_output != "raw"  # f = x_0 + u
        with torch.no_grad():
            t = torch.zeros(1, device=self.net.items.device)
            self.register_buffer("times", self.net.condition(t, torch.ones_like(t)), persistent=False)  # [1, D]

    def query(self, history: Tensor, column: Tensor, keep: Tensor) -> Tensor:
        """x_1 [B, D], the vector the items are scored against."""
        anchor = history.gather(1, column[:, None])[:, 0]  # [B]
        x_0 = keep * self.net.item_emb(anchor)  # [B, D]
        x_1 = self.net.conditioned(history, x_0 + self.times, last_only=True)[0][:, -1]  # [B, D]
        if self.add_x0:
            x_1 = x_0 + x_1
        return x_1

    def forward(self, history: Tensor, column: Tensor, keep: Tensor) -> Tensor:
        return self.query(history, column, keep) @ self.net.items.T


Runtime = Callable[..., np.ndarray]  # an exported graph: the graph's inputs (numpy) -> scores [B, N]


class Scorer:
    """``histories (internal ids, any lengths) -> scores [B, N]``, batch-independent per history;
    :meth:`vectors` gives the query vectors [B, D] of inner-product models instead (same draws).

    ``runtime``: the exported graph of this model (:class:`fave.serving.export.Exported`, e.g.
    ONNX Runtime) to run instead of torch eager; same inputs, same draws, same top-K.
    """

    def __init__(self, model: SeqRecModel, max_len: int, seed: int, runtime: Runtime | None = None) -> None:
        self.model, self.max_len, self.seed, self.runtime = model.eval(), max_len, seed, runtime
        self._draws: dict[int, tuple[int, Tensor]] = {}  # width -> (anchor index, keep [D])
        if is_one_step_anchor(model):
            self.kind = "one-step"
            self.graph = OneStepAnchor(model).eval()
            c = model.config
            self.p_keep = c.p_keep if c.p_keep_infer < 0 else c.p_keep_infer
        elif type(model).__name__ in DETERMINISTIC:
            self.kind = "batched"
        else:
            self.kind = "per-history"
        if runtime is not None and self.kind == "per-history":
            raise ValueError(f"{type(model).__name__} has no exported graph to run")

    def pad(self, histories: list[np.ndarray]) -> Tensor:
        """Left-padded [B, L] with L the longest (truncated) history, not max_len."""
        return torch.from_numpy(left_pad(histories, self.max_len))

    def draws(self, histories: list[np.ndarray], width: int) -> AnchorDraws:
        """The library's draws for these histories, padded to ``width`` (cached per history width)."""
        return self._draws_for([max(1, min(len(h), self.max_len)) for h in histories], width)

    @torch.no_grad()
    def padded(self, history: Tensor) -> Tensor:
        """Scores of a batch already left-padded ([B, L], 0 = padding, at most ``max_len`` wide): what
        ``__call__`` gives for its unpadded rows, without unpadding and padding again (the bench's batches)."""
        if self.kind != "one-step" or not self.graph.net.encoder.hide_padding or history.shape[1] > self.max_len:
            rows = history.cpu().numpy()
            return self([r[r > 0] for r in rows])
        widths = (history > 0).sum(1).clamp_min(1).tolist()
        return self._one_step(history, self._draws_for(widths, history.shape[1]))

    def _draws_for(self, widths: list[int], width: int) -> AnchorDraws:
        return anchor_draws(widths, width, self.model.config.hidden, self.p_keep, self.seed, cache=self._draws)

    @torch.no_grad()
    def __call__(self, histories: list[np.ndarray]) -> Tensor:
        return self._run(histories, vectors=False)

    @torch.no_grad()
    def vectors(self, histories: list[np.ndarray]) -> Tensor:
        """The query vectors [B, D] whose inner products with ``model.item_side()`` are the scores
        ``__call__`` gives, drawn alike (what an approximate index searches with)."""
        if self.runtime is not None:
            raise ValueError("an exported graph gives scores, not query vectors")
        return self._run(histories, vectors=True)

    def _run(self, histories: list[np.ndarray], vectors: bool) -> Tensor:
        if self.kind == "one-step":
            if not self.graph.net.encoder.hide_padding:  # padding keys attended to: pad nothing
                return self._by_width(histories, vectors)
            history = self.pad(histories)
            return self._one_step(history, self.draws(histories, history.shape[1]), vectors)
        if self.kind == "batched":
            history = self.pad(histories)
            batch = Batch(history=history, user=torch.zeros(len(history), dtype=torch.long))
            if vectors:
                return self.model.query_vector(batch)
            if self.runtime is not None:
                return torch.from_numpy(self.runtime(history.numpy()))
            return self.model.score_all(batch)
        return self._per_history(histories, vectors)

    def _one_step(self, history: Tensor, d: AnchorDraws, vectors: bool = False) -> Tensor:
        if vectors:
            return self.graph.query(history, d.column, d.keep).float()
        if self.runtime is not None:
            return torch.from_numpy(self.runtime(history.numpy(), d.column.numpy(), d.keep.numpy()))
        return self.graph(history, d.column, d.keep).float()

    def _by_width(self, histories: list[np.ndarray], vectors: bool) -> Tensor:
        """One forward per distinct width, so no row is padded."""
        widths = [max(1, min(len(h), self.max_len)) for h in histories]
        out: Tensor | None = None
        for w in sorted(set(widths)):
            rows = [b for b, x in enumerate(widths) if x == w]
            group = [histories[b] for b in rows]
            scores = self._one_step(self.pad(group), self.draws(group, w), vectors)
            out = scores.new_empty(len(histories), scores.shape[1]) if out is None else out
            out[rows] = scores
        assert out is not None
        return out

    def _per_history(self, histories: list[np.ndarray], vectors: bool) -> Tensor:
        head = self.model.query_vector if vectors else self.model.score_all
        rows = []
        for h in histories:
            with torch.random.fork_rng(devices=[]):
                torch.manual_seed(self.seed)
                rows.append(head(Batch(history=self.pad([h]), user=torch.zeros(1, dtype=torch.long))))
        return torch.cat(rows).float()
