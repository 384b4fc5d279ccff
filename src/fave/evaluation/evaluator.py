"""The one full-ranking evaluator.

Every model is evaluated the same way: ``score_all(batch) -> [B, N]`` for items 1..N, the
held-out item is ranked against all N items, and metrics are averaged per user. Two
protocols come out of one pass:

- ``paper``: all items ranked, history NOT removed (what the published numbers used;
  unlike the authors' code, padding id 0 is never a candidate and averages are per user).
- ``masked``: every item of the user's full input history (not only the last
  ``max_len``) is removed before ranking, as the paper's text says. The target itself is
  never removed, even where a log repeats items.

Users are processed in chunks sized so that a chunk's score matrix stays below
``max_elements`` floats, so memory stays bounded for catalogs of millions of items.

Under torchrun the chunks are dealt round-robin to the ranks and their ranks (and top-K lists)
gathered on every rank, in chunk order: the numbers are the single process's exactly. A model
whose scores draw random numbers (``random_scores``: the flow and diffusion models) draws them
in one sequence over the chunks, which no split reproduces; rank 0 then evaluates alone and
sends the result to the others.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch
from torch import Tensor
from tqdm import tqdm

from fave.data.batching import Batch, eval_batches
from fave.data.dataset import EvalSet
from fave.distributed import SINGLE, World
from fave.evaluation.diversity import coverage, ild
from fave.evaluation.metrics import KS, summarize, target_ranks
from fave.models.base import SeqRecModel

PROTOCOLS = ("paper", "masked")


@dataclass
class EvalResult:
    """Metrics per protocol (fractions), the raw ranks, and top-K diversity if asked."""

    metrics: dict[str, dict[str, float]]
    ranks: dict[str, np.ndarray]
    diversity: dict[str, dict[str, float]] = field(default_factory=dict)


@dataclass
class ChunkRanks:
    """One chunk of users as scored: its rows of the eval set, their ranks and top-K columns per protocol."""

    index: int  # the chunk's place in the evaluation order
    rows: np.ndarray
    ranks: dict[str, np.ndarray]
    topk: dict[str, Tensor] = field(default_factory=dict)


def _history_columns(inputs: list[np.ndarray], target_col: Tensor) -> tuple[Tensor, Tensor]:
    """Each row's distinct history columns except the target's, padded: cols [B, H] (0 at padding), valid [B, H]."""
    target = target_col.cpu().numpy()
    rows = []
    for r, seq in enumerate(inputs):
        c = np.unique(np.asarray(seq, dtype=np.int64)) - 1
        rows.append(c[(c >= 0) & (c != target[r])])
    width = max((len(c) for c in rows), default=0)
    cols = np.zeros((len(rows), width), dtype=np.int64)
    valid = np.zeros((len(rows), width), dtype=bool)
    for r, c in enumerate(rows):
        cols[r, : len(c)], valid[r, : len(c)] = c, True
    return torch.from_numpy(cols).to(target_col.device), torch.from_numpy(valid).to(target_col.device)


COUNT_BLOCK_ELEMENTS = 1 << 20  # scores compared per step: a 4 MB buffer that stays in the CPU's cache


def count_above(scores: Tensor, t: Tensor) -> tuple[Tensor, Tensor]:
    """Per row of scores [B, N]: ``#(s > t)`` and ``#(s >= t)`` against t [B, 1], as int64 [B].

    The columns are taken in blocks of about :data:`COUNT_BLOCK_ELEMENTS` entries, each compared into
    one small reused buffer and summed while it is still in cache, instead of two passes over the
    whole [B, N] matrix: the whole test evaluation of 50,000 users x 391,750 items went from 197 s
    to 135 s with it (``results/scale-epoch/epoch.md``, ``results/bench-scale/README.md``).
    The comparisons are counted as 0./1. floats: exact (integers below 2^24, or 2^53 in float64)
    and on a CPU ~10x faster than summing a bool tensor.
    """
    B, N = scores.shape
    dtype = torch.float32 if N < 1 << 24 else torch.float64
    width = max(1, min(N, COUNT_BLOCK_ELEMENTS // max(1, B)))
    buffer = torch.empty(B * width, dtype=dtype, device=scores.device)
    higher = torch.zeros(B, dtype=dtype, device=scores.device)
    at_least = torch.zeros(B, dtype=dtype, device=scores.device)
    for start in range(0, N, width):
        block = scores[:, start : start + width]
        out = buffer[: block.numel()].view(block.shape)
        higher += torch.gt(block, t, out=out).sum(1)
        at_least += torch.ge(block, t, out=out).sum(1)
    return higher.long(), at_least.long()


def ranks_both(scores: Tensor, inputs: list[np.ndarray], target_col: Tensor) -> dict[str, Tensor]:
    """Ranks [B] under both protocols, exactly as :func:`~fave.evaluation.metrics.target_ranks` of
    ``scores`` and of :func:`mask_history` ``(scores)`` give them, from one blocked pass over [B, N]
    (:func:`count_above`).

    Where the target's score t is a number above -inf, an item counts before the target when its
    score is > t, or == t at a lower column; a NaN score (read as -inf) never does, so
    ``#(s > t)`` and ``#(s >= t)`` over the row give the paper rank unless other items tie with t
    (then those rows are counted exactly). The masked rank removes the history items that count
    before the target (a masked -inf never does). Rows whose target scores NaN or -inf take the
    reference computation.
    """
    t = scores.gather(1, target_col[:, None])  # [B, 1]
    higher, at_least = count_above(scores, t)
    ties = at_least - higher - 1  # items other than the target scoring t
    paper = 1 + higher
    tie_rows = torch.nonzero(ties > 0).flatten()
    if len(tie_rows):
        cols = torch.arange(scores.shape[1], device=scores.device)[None, :]
        sub, sub_t, sub_c = scores[tie_rows], t[tie_rows], target_col[tie_rows, None]
        paper[tie_rows] += ((sub == sub_t) & (cols < sub_c)).sum(1)
    h_cols, h_valid = _history_columns(inputs, target_col)
    h_scores = scores.gather(1, h_cols)  # [B, H]
    before = (h_scores > t) | ((h_scores == t) & (h_cols < target_col[:, None]))
    masked = paper - (before & h_valid).sum(1)
    odd = torch.nonzero(~(t[:, 0] > float("-inf"))).flatten()  # NaN or -inf target score
    if len(odd):
        sub = scores[odd]
        idx = odd.tolist()
        paper[odd] = target_ranks(sub, target_col[odd])
        masked[odd] = target_ranks(mask_history(sub, [inputs[i] for i in idx], target_col[odd]), target_col[odd])
    return {"paper": paper, "masked": masked}


def mask_history(scores: Tensor, inputs: list[np.ndarray], target_col: Tensor) -> Tensor:
    """Copy of scores [B, N] with every history item (except the target) set to -inf."""
    rows, cols = [], []
    for r, seq in enumerate(inputs):
        c = np.unique(np.asarray(seq, dtype=np.int64)) - 1
        c = c[(c >= 0) & (c != int(target_col[r]))]
        rows.append(np.full(len(c), r))
        cols.append(c)
    masked = scores.clone()
    if rows:
        r_idx = torch.from_numpy(np.concatenate(rows)).to(scores.device)
        c_idx = torch.from_numpy(np.concatenate(cols)).to(scores.device)
        masked[r_idx, c_idx] = float("-inf")
    return masked


@torch.no_grad()
def evaluate(
    model: SeqRecModel,
    eval_set: EvalSet,
    max_len: int,
    batch_size: int = 512,
    ks: tuple[int, ...] = KS,
    diversity_k: int | None = None,
    seed: int | None = 12345,
    max_elements: int = 1 << 26,
    progress: bool = False,
    world: World = SINGLE,
) -> EvalResult:
    """Rank every user's held-out item against all items under both protocols (on every rank of ``world``)."""
    if world.distributed and model.random_scores:  # one sequence of draws: rank 0 alone, the result to all
        model.observe(list(eval_set.inputs))
        args = (model, eval_set, max_len, batch_size, ks, diversity_k, seed, max_elements, progress)
        return world.on_main(lambda: evaluate(*args))
    if diversity_k:
        diversity_k = min(diversity_k, model.num_items)
    was_training = model.training
    model.eval()
    model.observe(list(eval_set.inputs))
    n_items = model.num_items
    bs = max(1, min(batch_size, max_elements // max(1, n_items)))
    n_users = len(eval_set.targets)
    batches = eval_batches(eval_set.users, eval_set.inputs, eval_set.targets, max_len, bs)
    mine = ((k, b) for k, b in enumerate(batches) if k % world.size == world.rank)  # this rank's chunks
    total = len(range(world.rank, (n_users + bs - 1) // bs, world.size))
    with torch.random.fork_rng(devices=[]):
        if seed is not None:
            torch.manual_seed(seed)
        chunks = [
            _rank_chunk(model, eval_set, k, idx, batch, diversity_k)
            for k, (idx, batch) in tqdm(mine, total=total, disable=not progress, desc="eval")
        ]
    model.train(was_training)
    chunks = sorted((c for part in world.gather(chunks) for c in part), key=lambda c: c.index)
    ranks = {p: np.zeros(n_users, dtype=np.int64) for p in PROTOCOLS}
    for c in chunks:
        for p in PROTOCOLS:
            ranks[p][c.rows] = c.ranks[p]
    result = EvalResult({p: summarize(ranks[p], ks) for p in PROTOCOLS}, ranks)
    if diversity_k:
        vectors = model.item_representation()
        for p in PROTOCOLS:
            cols = torch.cat([c.topk[p] for c in chunks])
            div = {f"Coverage@{diversity_k}": coverage(cols, n_items)}
            if vectors is not None:
                div[f"ILD@{diversity_k}"] = float(ild(cols, vectors.cpu()).mean())
            result.diversity[p] = div
    return result


def _rank_chunk(
    model: SeqRecModel, eval_set: EvalSet, index: int, idx: np.ndarray, batch: Batch, diversity_k: int | None
) -> ChunkRanks:
    """Score one chunk of users; their ranks (and top-``diversity_k`` columns, on the CPU)."""
    device, n_items = model.device, model.num_items
    scores = model.score_all(batch.to(device)).float()  # [B, N]
    if scores.shape != (len(idx), n_items):
        raise RuntimeError(
            f"{type(model).__name__}.score_all returned {tuple(scores.shape)}, expected {(len(idx), n_items)}"
        )
    target_col = batch.target.to(device) - 1
    inputs = [eval_set.inputs[j] for j in idx]
    ranks = {p: r.cpu().numpy() for p, r in ranks_both(scores, inputs, target_col).items()}
    chunk = ChunkRanks(index, idx, ranks)
    if diversity_k:  # top-K lists need the masked matrix itself
        chunk.topk["paper"] = scores.topk(diversity_k, dim=1).indices.cpu()
        masked = mask_history(scores, inputs, target_col)
        chunk.topk["masked"] = masked.topk(diversity_k, dim=1).indices.cpu()
    return chunk
