"""Steam: the raw McAuley review dump and the DiffuRec/FMRec ``dataset.pkl`` layout.

- Raw reviews (``steam_reviews.json.gz``): one Python-literal dict per line with
  ``username`` (or ``user_id``), ``product_id`` and ``date`` (``YYYY-MM-DD``); read with
  ``ast.literal_eval``, never ``eval``. Same-day reviews keep their file order.
- ``dataset.pkl``: a pickled dict ``{'train': {user: [items]}, 'val': {user: [item]},
  'test': {user: [item]}, ...}`` (the BERT4Rec-style layout DiffuRec reads), or simply
  ``{user: [items]}``. A user's sequence is train + val + test.

Third-party pickles can run code when loaded, so :class:`SafeUnpickler` refuses every
global: only builtin containers, numbers and strings can be built.
"""

from __future__ import annotations

import ast
import calendar
import io
import pickle
from datetime import date
from pathlib import Path
from typing import Any

import numpy as np

from fave.data.fileio import malformed, review_rows
from fave.data.preprocess import Interactions
from fave.errors import FaveError

RAW_FILES = ("steam_reviews.json.gz", "steam_reviews.json")
PICKLE_FILES = ("dataset.pkl",)
SPLIT_KEYS = ("train", "val", "test")


def _day_seconds(value: str) -> float:
    d = date.fromisoformat(value.strip())
    return float(calendar.timegm(d.timetuple()))


def _review_row(path: Path, number: int, record: dict) -> tuple[str, str, float]:
    """One review -> (username, else user_id; product_id; date in seconds)."""
    user = record.get("username", record.get("user_id"))
    fields = (("username/user_id", user), ("product_id", record.get("product_id")), ("date", record.get("date")))
    missing = [name for name, value in fields if value is None]
    if missing:
        raise malformed(
            path,
            number,
            f"review has no {', '.join(missing)}",
            "this reader expects McAuley's steam_reviews format",
        )
    try:
        time = _day_seconds(str(record["date"]))
    except ValueError:
        raise malformed(
            path,
            number,
            f"date {record['date']!r} is not YYYY-MM-DD",
            "fix or remove that line",
        ) from None
    return str(user), str(record["product_id"]), time


def read_steam_reviews(path: str | Path) -> Interactions:
    """Raw Steam reviews -> rows (user = ``username``, else ``user_id``; time = ``date``)."""
    path = Path(path)
    users, items, times = review_rows(
        path,
        ast.literal_eval,
        "not a Python-literal dict",
        "not a dict",
        "{'username': ..., 'product_id': ..., 'date': '2017-12-17'}",
        _review_row,
    )
    return Interactions(users, items, np.asarray(times), source=str(path))


class SafeUnpickler(pickle.Unpickler):
    """An unpickler that refuses every global (class or function reference).

    Code execution through pickle needs a callable, and callables only enter a pickle as
    globals; refusing all of them leaves dicts, lists, tuples, sets, numbers and strings.
    """

    def __init__(self, file: Any, source: str) -> None:
        super().__init__(file)
        self.source = source

    def find_class(self, module: str, name: str) -> Any:
        raise FaveError(
            f"refusing to load {self.source}: it contains a global ({module}.{name}); only "
            "plain dicts/lists of numbers and strings are accepted"
        )


def load_pickle_safely(path: str | Path) -> Any:
    """Unpickle ``path`` with :class:`SafeUnpickler` (no globals, so no code can run)."""
    path = Path(path)
    if not path.is_file():
        raise FaveError(f"data file not found: {path}; check the path")
    data = path.read_bytes()
    try:
        return SafeUnpickler(io.BytesIO(data), str(path)).load()
    except FaveError:
        raise
    except Exception as e:  # a malformed pickle can fail in many ways
        raise FaveError(f"{path} is not a readable pickle ({e.__class__.__name__}: {e}); fetch it again") from None


def _as_sequence(path: Path, where: str, user: Any, value: Any) -> list[str]:
    if not isinstance(value, (list, tuple)):
        raise FaveError(f"{path}: {where}[{user!r}] is a {type(value).__name__}, expected a list of item ids")
    for item in value:
        if isinstance(item, bool) or not isinstance(item, (int, str)):
            raise FaveError(f"{path}: {where}[{user!r}] holds {item!r}; item ids must be ints or strings")
    return [str(item) for item in value]


def sequences_from_pickle(path: str | Path, obj: Any) -> dict[str, list[str]]:
    """A loaded ``dataset.pkl`` object -> ``{user: items}`` (train + val + test when split)."""
    path = Path(path)
    if not isinstance(obj, dict):
        raise FaveError(
            f"{path} holds a {type(obj).__name__}; expected a dict {{user: [items]}} or "
            "{'train': ..., 'val': ..., 'test': ...}"
        )
    if "train" in obj:
        parts = []
        for key in SPLIT_KEYS:
            part = obj.get(key)
            if not isinstance(part, dict):
                raise FaveError(f"{path}: entry {key!r} is missing or not a dict {{user: [items]}}")
            parts.append(part)
        out = {str(u): _as_sequence(path, "train", u, s) for u, s in parts[0].items()}
        for key, part in zip(SPLIT_KEYS[1:], parts[1:], strict=True):
            for u, s in part.items():
                if str(u) not in out:
                    raise FaveError(f"{path}: user {u!r} is in {key!r} but not in 'train'")
                out[str(u)].extend(_as_sequence(path, key, u, s))
        return out
    return {str(u): _as_sequence(path, "data", u, s) for u, s in obj.items()}


def read_split_pickle(path: str | Path) -> Interactions:
    """Read a DiffuRec/FMRec ``dataset.pkl`` (or ``{user: [items]}``) safely into rows."""
    sequences = sequences_from_pickle(path, load_pickle_safely(path))
    users = [u for u, items in sequences.items() for _ in items]
    items = [i for seq in sequences.values() for i in seq]
    if not users:
        raise FaveError(f"{path} holds no interactions")
    return Interactions(users, items, None, source=str(path))
