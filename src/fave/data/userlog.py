"""A user's own interaction log: CSV/TSV, RecBole ``.inter`` and one-line-per-user text.

- CSV/TSV: one interaction per line with user, item and (optionally) timestamp columns.
  A header is recognised by common column names (``user``/``user_id``/``userId``,
  ``item``/``item_id``/``itemId``/``movieId``, ``timestamp``/``time``/``ts``, ...). Without
  a header the columns are read by count: ``user item``, ``user item timestamp`` or
  ``user item rating timestamp`` (the ML-100k ``u.data`` layout). The delimiter is sniffed.
- RecBole ``.inter``: tab-separated with a typed header (``user_id:token``).
- lines: ``user item_1 item_2 ...`` with items already in time order (S3-Rec ``Beauty.txt``).

Timestamps are numbers (e.g. unix seconds) or ISO dates; rows without timestamps keep
their file order.
"""

from __future__ import annotations

import csv
import math
import re
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

from fave.data.fileio import head_lines, malformed, numbered_lines
from fave.data.preprocess import Interactions
from fave.errors import FaveError

USER_NAMES = {"user", "userid", "uid", "users", "username", "reviewerid", "customerid", "visitorid"}
ITEM_NAMES = {
    "item",
    "itemid",
    "iid",
    "items",
    "movieid",
    "movie",
    "productid",
    "product",
    "asin",
    "trackid",
    "songid",
    "bookid",
    "businessid",
}
TIME_NAMES = {
    "timestamp",
    "time",
    "ts",
    "unixtime",
    "unixreviewtime",
    "date",
    "datetime",
    "timestamps",
    "createdat",
    "eventtime",
}
NAMES_HINT = "user/user_id/userId, item/item_id/itemId/movieId, timestamp/time/ts"
DELIMITERS = ("\t", ",", ";", "|", "::")
_NUMBER = re.compile(r"[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?")


def _norm(cell: str) -> str:
    """Header cell -> comparable name: drop a RecBole ``:type``, case, ``_``, ``-`` and spaces."""
    name = cell.strip().strip('"').split(":")[0]
    return re.sub(r"[\s_\-]", "", name.lower())


def parse_time(value: str) -> float:
    """A timestamp as a float: a finite number, or an ISO date/time (naive = UTC) in seconds."""
    value = value.strip()
    if _NUMBER.fullmatch(value):
        t = float(value)
        if math.isfinite(t):
            return t
    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise ValueError(value) from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=timezone.utc)
    return moment.timestamp()


def _looks_like_value(cell: str) -> bool:
    try:
        parse_time(cell)
        return True
    except ValueError:
        return False


def sniff_delimiter(lines: list[str], candidates: tuple[str, ...] = DELIMITERS) -> str | None:
    """The candidate present, with the same count, on every sampled line; None = whitespace."""
    for d in candidates:
        counts = {line.count(d) for line in lines}
        if len(counts) == 1 and counts.pop() > 0:
            return d
    for d in candidates:  # ragged lines (quoted fields, a short line): first line decides
        if lines and d in lines[0]:
            return d
    return None


def _split(line: str, delimiter: str | None) -> list[str]:
    if delimiter is None:
        return line.split()
    if len(delimiter) > 1 or '"' not in line:  # csv only when quoting is possible
        return [c.strip() for c in line.split(delimiter)]
    return [c.strip() for c in next(csv.reader([line], delimiter=delimiter))]


def _columns_from_header(path: Path, header: list[str]) -> tuple[int, int, int | None]:
    names = [_norm(c) for c in header]

    def find(known: set[str]) -> int | None:
        return next((i for i, n in enumerate(names) if n in known), None)

    def missing(what: str) -> FaveError:
        return FaveError(
            f"{path}: the header {header} has no {what} column; name the columns "
            f"{NAMES_HINT} (or remove the header and use the order user, item, timestamp)"
        )

    user, item, time = find(USER_NAMES), find(ITEM_NAMES), find(TIME_NAMES)
    if user is None:
        raise missing("user")
    if item is None:
        raise missing("item")
    return user, item, time


def _columns_by_count(path: Path, n: int) -> tuple[int, int, int | None]:
    if n == 2:
        return 0, 1, None
    if n == 3:
        return 0, 1, 2
    if n == 4:
        return 0, 1, 3  # user item rating timestamp (ML-100k u.data)
    raise FaveError(
        f"{path}: {n} columns and no header, so the timestamp column is unknown; add a header "
        f"line naming the columns ({NAMES_HINT})"
    )


def read_delimited(path: str | Path, delimiter: str | None = "auto", header: str = "auto") -> Interactions:
    """Read a CSV/TSV log (one interaction per line).

    ``delimiter``: ``"auto"`` sniffs tab, comma, semicolon, pipe, ``::`` and whitespace.
    ``header``: ``"auto"`` (detected by column names), ``"required"`` or ``"none"``.
    """
    path = Path(path)
    sample = head_lines(path, 50)
    if not sample:
        raise FaveError(f"{path} is empty; it needs one line per interaction (user, item, time)")
    if delimiter == "auto":
        delimiter = sniff_delimiter(sample)
    first = _split(sample[0], delimiter)
    known = USER_NAMES | ITEM_NAMES | TIME_NAMES
    has_header = header == "required" or (
        header == "auto" and (any(_norm(c) in known for c in first) or not any(_looks_like_value(c) for c in first))
    )
    if has_header:
        user_col, item_col, time_col = _columns_from_header(path, first)
    else:
        user_col, item_col, time_col = _columns_by_count(path, len(first))
    need = max(c for c in (user_col, item_col, time_col) if c is not None) + 1
    shown = {None: "whitespace", "\t": "tabs"}.get(delimiter, repr(delimiter))

    users: list[str] = []
    items: list[str] = []
    times: list[float] = []
    lines = numbered_lines(path)
    if has_header:
        next(lines)
    for number, line in lines:
        row = _split(line, delimiter)
        if len(row) < need:
            raise malformed(
                path,
                number,
                f"expected {need} fields separated by {shown}, got {len(row)}",
                "fix or remove that line",
            )
        user, item = row[user_col], row[item_col]
        if not user or not item:
            raise malformed(path, number, "empty user or item id", "fill it in or remove the line")
        users.append(user)
        items.append(item)
        if time_col is not None:
            try:
                times.append(parse_time(row[time_col]))
            except ValueError:
                raise malformed(
                    path,
                    number,
                    f"timestamp {row[time_col]!r} is not a number or ISO date",
                    "use unix seconds (e.g. 881250949) or dates like 2017-12-17",
                ) from None
    if not users:
        raise FaveError(f"{path} has a header but no data rows; add one line per interaction")
    timestamps = np.asarray(times, dtype=np.float64) if time_col is not None else None
    return Interactions(users, items, timestamps, source=str(path))


def read_inter(path: str | Path) -> Interactions:
    """Read a RecBole atomic ``.inter`` file (tab-separated, typed header required)."""
    return read_delimited(path, delimiter="\t", header="required")


def read_lines(path: str | Path) -> Interactions:
    """Read ``user item_1 item_2 ...`` lines (items in time order; a user may span lines)."""
    path = Path(path)
    users: list[str] = []
    items: list[str] = []
    for number, line in numbered_lines(path):
        fields = line.split()
        if len(fields) < 2:
            raise malformed(
                path,
                number,
                "a user id with no items",
                "each line must be 'user item_1 item_2 ...'; remove the line or add items",
            )
        users.extend([fields[0]] * (len(fields) - 1))
        items.extend(fields[1:])
    if not users:
        raise FaveError(f"{path} is empty; it needs lines 'user item_1 item_2 ...'")
    return Interactions(users, items, None, source=str(path))
