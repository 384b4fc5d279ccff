"""A recommender object loaded from a run directory: raw ids in, top-K raw ids out."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from fave.data.batching import Batch, left_pad
from fave.data.dataset import IdMap
from fave.errors import FaveError
from fave.models.base import SeqRecModel
from fave.training.checkpoint import load_run

MAX_K = 1000  # the most recommendations one call returns (CLI --k and the HTTP k)
MAX_SHOWN_ID = 60  # characters of an unknown id quoted back in an error


def shown(raw: str) -> str:
    """``raw`` quoted for an error message, cut to its first :data:`MAX_SHOWN_ID` characters."""
    return repr(raw) if len(raw) <= MAX_SHOWN_ID else f"{raw[:MAX_SHOWN_ID]!r}... ({len(raw)} characters)"


class Recommender:
    """Top-K next items for a raw item history, with the user's history removed."""

    def __init__(
        self,
        model: SeqRecModel,
        id_map: IdMap,
        max_len: int,
        histories: dict[str, list[int]] | None = None,
        titles: dict[str, str] | None = None,
        seed: int = 12345,
    ) -> None:
        self.seed = seed  # fixes the random draws of generative models (anchor mask, noise)
        self.model, self.id_map, self.max_len = model.eval(), id_map, max_len
        self.item_index = id_map.item_index()
        self.histories = histories or {}
        self.titles = titles or {}

    @classmethod
    def from_run(cls, run_dir: str | Path, data_dir: str | None = None) -> Recommender:
        model, config, id_map = load_run(run_dir)
        histories, titles = {}, {}
        try:  # the users' full sequences (for `recommend --user`), when the data is at hand
            from fave.data.load import load_dataset

            data = load_dataset(
                config.dataset,
                data_dir,
                fmt=config.data.format,
                kcore=config.data.kcore,
                min_user_interactions=config.data.min_user_interactions,
                download=False,
            )
            histories = {id_map.users[u]: s.tolist() for u, s in enumerate(data.sequences)}
            from fave.data.load import item_titles

            titles = item_titles(config.dataset, data_dir) or {}
        except FaveError:
            pass
        return cls(model, id_map, config.data.max_len, histories, titles, config.train.eval_seed)

    @torch.no_grad()
    def recommend(self, items: list[str], k: int = 10, exclude_history: bool = True) -> list[tuple[str, float]]:
        unknown = [i for i in items if i not in self.item_index]
        if unknown:
            raise FaveError(f"unknown item id {shown(unknown[0])}; ids must come from the training data")
        if not items:
            raise FaveError("empty history; give at least one item id")
        if not 1 <= k <= MAX_K:
            raise FaveError(f"k={k}: the number of recommendations must be between 1 and {MAX_K}")
        ids = np.array([self.item_index[i] for i in items], dtype=np.int64)
        batch = Batch(history=torch.from_numpy(left_pad([ids], self.max_len)), user=torch.zeros(1, dtype=torch.long))
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(self.seed)
            scores = self.model.score_all(batch)[0].float()
        candidates = torch.ones(scores.numel(), dtype=torch.bool)
        if exclude_history:  # at most the unseen items, never a seen one at the bottom
            candidates[torch.from_numpy(ids - 1)] = False
        columns = candidates.nonzero().squeeze(1)
        top = scores[columns].topk(min(k, len(columns)))
        picked = columns[top.indices]
        return [(self.id_map.raw_item(int(c) + 1), float(s)) for s, c in zip(top.values, picked, strict=True)]

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
