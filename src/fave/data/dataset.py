"""In-memory datasets: per-user item sequences and their leave-one-out split.

Item ids are internal integers 1..N (0 is padding); user indices are 0..U-1. ``IdMap``
turns them back into the raw ids of the source file.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from fave.errors import FaveError


@dataclass(frozen=True)
class IdMap:
    """Reversible id map: ``users[u]`` and ``items[i - 1]`` are the raw ids."""

    users: list[str]
    items: list[str]

    def raw_item(self, item: int) -> str:
        return self.items[item - 1]

    def item_index(self) -> dict[str, int]:
        """Raw item id -> internal id (1-based)."""
        return {raw: i + 1 for i, raw in enumerate(self.items)}

    def user_index(self) -> dict[str, int]:
        return {raw: u for u, raw in enumerate(self.users)}


@dataclass
class SequenceData:
    """Every user's time-ordered item sequence (internal ids 1..num_items)."""

    name: str
    sequences: list[np.ndarray]
    num_items: int
    id_map: IdMap

    @property
    def num_users(self) -> int:
        return len(self.sequences)

    @property
    def num_interactions(self) -> int:
        return int(sum(len(s) for s in self.sequences))

    def stats(self) -> dict[str, float | int | str]:
        lengths = np.array([len(s) for s in self.sequences])
        return {
            "dataset": self.name,
            "users": self.num_users,
            "items": self.num_items,
            "interactions": self.num_interactions,
            "mean_length": round(float(lengths.mean()), 2) if len(lengths) else 0.0,
            "min_length": int(lengths.min()) if len(lengths) else 0,
            "max_length": int(lengths.max()) if len(lengths) else 0,
            "density": round(self.num_interactions / max(1, self.num_users * self.num_items), 6),
        }


@dataclass(frozen=True)
class EvalSet:
    """Users to evaluate: each user's input sequence and the held-out next item."""

    users: np.ndarray  # [U] user indices
    inputs: list[np.ndarray]  # the sequence the model may see (full, not truncated)
    targets: np.ndarray  # [U] the held-out item

    def sample(self, n: int, seed: int) -> EvalSet:
        """A fixed random subset of ``n`` users (all of them when ``n`` is 0 or at least their number)."""
        if n <= 0 or n >= len(self.users):
            return self
        keep = np.sort(np.random.default_rng(seed).choice(len(self.users), size=n, replace=False))
        return EvalSet(self.users[keep], [self.inputs[i] for i in keep], self.targets[keep])


@dataclass
class Split:
    """Leave-one-out split: last item = test, second-last = validation, rest = training.

    ``valid`` inputs are the training parts; ``test`` inputs are training + validation.
    """

    data: SequenceData

    def __post_init__(self) -> None:
        short = [u for u, s in enumerate(self.data.sequences) if len(s) < 3]
        if short:
            raw = self.data.id_map.users[short[0]]
            raise FaveError(
                f"{len(short)} user(s) have fewer than 3 interactions (e.g. user {raw!r}); "
                "leave-one-out needs 3. Filter them, e.g. --set data.min_user_interactions=3"
            )

    @property
    def num_items(self) -> int:
        return self.data.num_items

    @property
    def train(self) -> list[np.ndarray]:
        return [s[:-2] for s in self.data.sequences]

    def eval_set(self, phase: str) -> EvalSet:
        if phase not in ("valid", "test"):
            raise ValueError(f"phase must be 'valid' or 'test', got {phase!r}")
        cut = 2 if phase == "valid" else 1
        seqs = self.data.sequences
        return EvalSet(
            users=np.arange(len(seqs)),
            inputs=[s[:-cut] for s in seqs],
            targets=np.array([s[-cut] for s in seqs], dtype=np.int64),
        )
