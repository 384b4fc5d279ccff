"""Raw interaction rows -> per-user item sequences with internal ids.

The steps, in order, and why each is fixed:

1. Stable time order per user: rows are stable-sorted by (user, timestamp), so rows with
   equal timestamps keep their file order. ML-100k has 415 users whose last two ratings
   share a timestamp; any other tie rule changes their test item and breaks comparability
   with FMRec/FAVE. Sources without timestamps keep file order.
2. Optional iterative k-core on users and items (repeat until every kept user and item has
   at least k interactions), then an optional minimum number of interactions per user.
3. Ids: item 0 is padding, so items are 1..N. When every raw id is an integer, items are
   numbered in numeric order of raw id (ML-100k keeps 1..1682, Beauty 1..12101 exactly);
   otherwise in order of first appearance when walking the sequences user by user (the
   S3-Rec convention). Users follow numeric order of raw id when all are integers, else
   order of first appearance in the file.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import overload

import numpy as np

from fave.data.dataset import IdMap, SequenceData
from fave.errors import FaveError

ID_ORDERS = ("auto", "numeric", "appearance")
MAX_ID_CHARS = 256  # longer raw ids are refused: they bloat the cache and id maps (and int() of them)
_INT = re.compile(r"[+-]?[0-9]+")


@dataclass(frozen=True, eq=False)
class RawIds(Sequence[str]):
    """[rows] raw ids held factorised: ``uniques[codes[r]]`` is row r's id, ``uniques`` in order
    of first appearance (as :func:`_codes` numbers them). A log of 10^7 rows then costs one
    integer per row plus each distinct id once, not a Python string per row."""

    codes: np.ndarray  # [rows] integers in 0..len(uniques)-1
    uniques: list[str]

    def __len__(self) -> int:
        return len(self.codes)

    @overload
    def __getitem__(self, index: int) -> str: ...
    @overload
    def __getitem__(self, index: slice) -> list[str]: ...
    def __getitem__(self, index: int | slice) -> str | list[str]:
        if isinstance(index, slice):
            return [self.uniques[c] for c in self.codes[index].tolist()]
        return self.uniques[int(self.codes[index])]

    def __eq__(self, other: object) -> bool:
        """Equal to any sequence of the same ids, in the same order (a list of strings too)."""
        if not isinstance(other, Sequence) or isinstance(other, str) or len(other) != len(self):
            return NotImplemented if not isinstance(other, Sequence) else False
        return list(self) == list(other)

    __hash__ = None  # type: ignore[assignment]  # mutable contents, as a list


@dataclass
class Interactions:
    """Raw interaction rows in file order.

    - ``users``, ``items``: [N] raw ids as strings (a list, or :class:`RawIds` from the log readers).
    - ``timestamps``: [N] numbers, or None when file order already is time order.
    - ``id_order``: how internal ids are assigned (``auto``: numeric when all raw ids are
      integers, else first appearance; ``numeric``; ``appearance``).
    - ``source``: where the rows came from, for error messages.
    - ``min_kcore``: a k-core that is part of the source's own definition (S3-Rec Amazon: 5);
      the k-core applied is the larger of this and the one asked for.
    """

    users: list[str] | RawIds
    items: list[str] | RawIds
    timestamps: np.ndarray | None = None
    id_order: str = "auto"
    source: str = ""
    min_kcore: int = 0

    def __post_init__(self) -> None:
        if len(self.users) != len(self.items):
            raise ValueError("users and items must have the same length")
        if self.timestamps is not None and len(self.timestamps) != len(self.users):
            raise ValueError("timestamps must have one entry per row")
        if self.id_order not in ID_ORDERS:
            raise ValueError(f"id_order must be one of {ID_ORDERS}, got {self.id_order!r}")

    def __len__(self) -> int:
        return len(self.users)


def _codes(raw: list[str] | RawIds) -> tuple[np.ndarray, list[str]]:
    """Integer codes in order of first appearance: ``uniques[codes[r]] == raw[r]``."""
    if isinstance(raw, RawIds):
        return np.asarray(raw.codes, dtype=np.int64), raw.uniques
    index: dict[str, int] = {}
    codes = np.fromiter((index.setdefault(x, len(index)) for x in raw), np.int64, len(raw))
    return codes, list(index)


def check_id_lengths(raw: list[str], what: str, where: str) -> None:
    """Refuse a raw id over :data:`MAX_ID_CHARS` characters, naming it (cut) and the fix."""
    longest = max(raw, key=len, default="")
    if len(longest) > MAX_ID_CHARS:
        raise FaveError(
            f"a {what} id{where} has {len(longest)} characters (starts {longest[:40]!r}); ids may have at most "
            f"{MAX_ID_CHARS}: shorten or hash them"
        )


def _all_int(raw: list[str]) -> bool:
    return len(raw) > 0 and all(_INT.fullmatch(x) for x in raw)


def _numeric(raw: list[str], order: str) -> bool:
    if order == "numeric":
        if not _all_int(raw):
            bad = next(x for x in raw if not _INT.fullmatch(x))
            raise FaveError(f"id_order='numeric' needs integer ids, got {bad!r}; use 'auto'")
        return True
    return order == "auto" and _all_int(raw)


def stable_time_order(user_codes: np.ndarray, timestamps: np.ndarray | None) -> np.ndarray:
    """Row permutation sorting by (user, timestamp); ties keep file order.

    Two stable sorts (timestamp, then user) give exactly ``sorted(rows, key=(user, ts))``.
    """
    if timestamps is None:
        return np.argsort(user_codes, kind="stable")
    by_time = np.argsort(timestamps, kind="stable")
    return by_time[np.argsort(user_codes[by_time], kind="stable")]


def kcore_mask(users: np.ndarray, items: np.ndarray, k: int) -> np.ndarray:
    """Rows kept by the iterative k-core: every kept user and item has >= k kept rows.

    Removing a user can push an item under k and vice versa, so counts are recomputed until
    nothing changes; the result (the maximal k-core) does not depend on removal order.
    """
    keep = np.ones(len(users), dtype=bool)
    if k <= 1:
        return keep
    n_users, n_items = int(users.max()) + 1, int(items.max()) + 1
    while True:
        user_count = np.bincount(users[keep], minlength=n_users)
        item_count = np.bincount(items[keep], minlength=n_items)
        new = keep & (user_count[users] >= k) & (item_count[items] >= k)
        if new.sum() == keep.sum():
            return keep
        keep = new


def to_sequences(
    inter: Interactions,
    name: str,
    kcore: int = 0,
    min_user_interactions: int = 0,
) -> SequenceData:
    """Build :class:`SequenceData` from raw rows (steps 1-3 of the module docstring)."""
    where = f" in {inter.source}" if inter.source else ""
    if len(inter) == 0:
        raise FaveError(f"no interactions{where}; the file holds no data rows")
    if kcore < 0 or min_user_interactions < 0:
        raise FaveError("kcore and min_user_interactions must be >= 0")
    kcore = max(kcore, inter.min_kcore)
    user_codes, user_raw = _codes(inter.users)
    item_codes, item_raw = _codes(inter.items)
    check_id_lengths(user_raw, "user", where)
    check_id_lengths(item_raw, "item", where)
    ts = None if inter.timestamps is None else np.asarray(inter.timestamps)

    order = stable_time_order(user_codes, ts)
    users, items = user_codes[order], item_codes[order]

    keep = kcore_mask(users, items, kcore)
    if min_user_interactions > 0:
        counts = np.bincount(users[keep], minlength=len(user_raw))
        keep &= counts[users] >= min_user_interactions
    if not keep.any():
        raise FaveError(
            f"no interactions left{where} after filtering (kcore={kcore}, "
            f"min_user_interactions={min_user_interactions}); lower these values"
        )
    users, items = users[keep], items[keep]

    # Users: numeric raw order or first appearance in the file (= code order).
    kept_users = np.unique(users)
    kept_user_raw = [user_raw[c] for c in kept_users]
    if _numeric(kept_user_raw, inter.id_order):
        rank = np.argsort([int(x) for x in kept_user_raw], kind="stable")
        kept_users, kept_user_raw = kept_users[rank], [kept_user_raw[r] for r in rank]
    user_rank = np.empty(len(user_raw), dtype=np.int64)
    user_rank[kept_users] = np.arange(len(kept_users))
    walk = np.argsort(user_rank[users], kind="stable")  # rows user by user, time order kept
    users, items = user_rank[users[walk]], items[walk]

    # Items: numeric raw order or first appearance along the walk.
    first_seen, first_pos = np.unique(items, return_index=True)
    kept_items = first_seen[np.argsort(first_pos, kind="stable")]
    kept_item_raw = [item_raw[c] for c in kept_items]
    if _numeric(kept_item_raw, inter.id_order):
        rank = np.argsort([int(x) for x in kept_item_raw], kind="stable")
        kept_items, kept_item_raw = kept_items[rank], [kept_item_raw[r] for r in rank]
    item_id = np.zeros(len(item_raw), dtype=np.int64)
    item_id[kept_items] = np.arange(1, len(kept_items) + 1)

    bounds = np.flatnonzero(np.diff(users)) + 1
    sequences = np.split(item_id[items], bounds)
    return SequenceData(
        name=name,
        sequences=sequences,
        num_items=len(kept_items),
        id_map=IdMap(users=kept_user_raw, items=kept_item_raw),
    )
