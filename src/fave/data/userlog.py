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
from array import array
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

from fave.data.fileio import head_lines, malformed, numbered_lines
from fave.data.preprocess import Interactions, RawIds
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
ENGINES = ("auto", "python", "arrow")
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


@dataclass(frozen=True)
class Layout:
    """How a delimited log is laid out, read from its first lines: the delimiter (None:
    whitespace), whether the first line is a header, how many fields it has, and the columns."""

    delimiter: str | None
    has_header: bool
    fields: int
    user: int
    item: int
    time: int | None

    @property
    def need(self) -> int:
        """Fields a row must have to reach every column used."""
        return max(c for c in (self.user, self.item, self.time) if c is not None) + 1


def sniff_layout(path: Path, delimiter: str | None = "auto", header: str = "auto") -> Layout:
    """The :class:`Layout` of ``path`` from its first 50 non-blank lines (see :func:`read_delimited`)."""
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
    return Layout(delimiter, has_header, len(first), user_col, item_col, time_col)


def read_delimited(
    path: str | Path, delimiter: str | None = "auto", header: str = "auto", engine: str = "auto"
) -> Interactions:
    """Read a CSV/TSV log (one interaction per line).

    ``delimiter``: ``"auto"`` sniffs tab, comma, semicolon, pipe, ``::`` and whitespace.
    ``header``: ``"auto"`` (detected by column names), ``"required"`` or ``"none"``.
    ``engine``: ``"python"`` reads line by line; ``"arrow"`` parses with pyarrow's vectorised
    CSV reader (the ``fast`` extra, :mod:`fave.data.fastparse`), with the same result, and
    reads the file again line by line when it meets anything it does not read exactly as the
    python engine would (whitespace delimiters, ragged or blank-looking rows, a bad value),
    so errors name the line; ``"auto"``: arrow when pyarrow is installed.
    """
    path = Path(path)
    if engine not in ENGINES:
        raise FaveError(f"unknown CSV engine {engine!r}; choose one of {', '.join(ENGINES)}")
    layout = sniff_layout(path, delimiter, header)
    if engine != "python":
        from fave.data import fastparse

        if fastparse.available() or engine == "arrow":
            fast = fastparse.read_arrow(path, layout)
            if fast is not None:
                return fast
    return read_python(path, layout)


def read_python(path: Path, layout: Layout) -> Interactions:
    """The line-by-line reader: ids are factorised as they are read (one integer per row)."""
    delimiter, need = layout.delimiter, layout.need
    shown = {None: "whitespace", "\t": "tabs"}.get(delimiter, repr(delimiter))
    user_index: dict[str, int] = {}
    item_index: dict[str, int] = {}
    user_codes, item_codes, times = array("q"), array("q"), array("d")
    lines = numbered_lines(path)
    if layout.has_header:
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
        user, item = row[layout.user], row[layout.item]
        if not user or not item:
            raise malformed(path, number, "empty user or item id", "fill it in or remove the line")
        user_codes.append(user_index.setdefault(user, len(user_index)))
        item_codes.append(item_index.setdefault(item, len(item_index)))
        if layout.time is not None:
            try:
                times.append(parse_time(row[layout.time]))
            except ValueError:
                raise malformed(
                    path,
                    number,
                    f"timestamp {row[layout.time]!r} is not a number or ISO date",
                    "use unix seconds (e.g. 881250949) or dates like 2017-12-17",
                ) from None
    if not user_codes:
        raise FaveError(f"{path} has a header but no data rows; add one line per interaction")
    timestamps = np.frombuffer(times, dtype=np.float64) if layout.time is not None else None
    return Interactions(
        RawIds(np.frombuffer(user_codes, dtype=np.int64), list(user_index)),
        RawIds(np.frombuffer(item_codes, dtype=np.int64), list(item_index)),
        timestamps,
        source=str(path),
    )


def read_inter(path: str | Path, engine: str = "auto") -> Interactions:
    """Read a RecBole atomic ``.inter`` file (tab-separated, typed header required)."""
    return read_delimited(path, delimiter="\t", header="required", engine=engine)


def read_lines(path: str | Path) -> Interactions:
    """Read ``user item_1 item_2 ...`` lines (items in time order; a user may span lines)."""
    path = Path(path)
    user_index: dict[str, int] = {}
    item_index: dict[str, int] = {}
    user_codes, item_codes = array("q"), array("q")
    for number, line in numbered_lines(path):
        fields = line.split()
        if len(fields) < 2:
            raise malformed(
                path,
                number,
                "a user id with no items",
                "each line must be 'user item_1 item_2 ...'; remove the line or add items",
            )
        user_codes.extend([user_index.setdefault(fields[0], len(user_index))] * (len(fields) - 1))
        item_codes.extend(item_index.setdefault(item, len(item_index)) for item in fields[1:])
    if not user_codes:
        raise FaveError(f"{path} is empty; it needs lines 'user item_1 item_2 ...'")
    return Interactions(
        RawIds(np.frombuffer(user_codes, dtype=np.int64), list(user_index)),
        RawIds(np.frombuffer(item_codes, dtype=np.int64), list(item_index)),
        None,
        source=str(path),
    )
