"""Vectorised reading of CSV/TSV/.inter logs with pyarrow (the optional ``fast`` extra).

:func:`read_arrow` gives exactly what :func:`fave.data.userlog.read_python` gives for the same
:class:`~fave.data.userlog.Layout`: the same ids (cells stripped of the characters Python's
``str.strip`` removes), factorised in order of first appearance, and the same timestamps.
Where pyarrow would read a file differently, or the file has an error, it returns None and the
caller reads the file line by line, which also names the bad line:

- whitespace delimiters (runs of blanks; pyarrow splits on one character);
- rows with another number of fields than the first (ragged rows, lines of blanks);
- an empty user or item id, a timestamp that is not a finite number or an ISO date.

``::`` (MovieLens 1M/10M) is read as ``:`` with every second field required empty; quotes are
then literal, as in the line reader. Memory: the three used columns as Arrow strings, then one
integer per row and id column.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from fave.data.fileio import is_gzip
from fave.data.preprocess import Interactions, RawIds
from fave.errors import FaveError

if TYPE_CHECKING:  # pragma: no cover
    from fave.data.userlog import Layout

# the characters str.strip() removes (Unicode White_Space plus the ASCII separators 0x1c-0x1f)
PY_WHITESPACE = "".join(chr(c) for c in range(sys.maxunicode + 1) if chr(c).isspace())
NUMBER_REGEX = r"^[+-]?([0-9]+\.?[0-9]*|\.[0-9]+)([eE][+-]?[0-9]+)?$"  # userlog._NUMBER, ASCII digits
BLOCK_BYTES = 1 << 24


def available() -> bool:
    """Whether pyarrow is installed (``pip install 'fave[fast]'``)."""
    return importlib.util.find_spec("pyarrow") is not None


def _require() -> Any:
    if not available():
        raise FaveError("the arrow CSV engine needs pyarrow; install it with pip install 'fave[fast]'")
    import pyarrow

    return pyarrow


def read_arrow(path: Path, layout: Layout) -> Interactions | None:
    """The log's rows, or None where the line reader must read it (module docstring)."""
    pa = _require()
    import pyarrow.compute as pc

    table = _read_table(path, layout)
    if table is None or table.num_rows <= int(layout.has_header):
        return None
    start = int(layout.has_header)

    def column(index: int) -> Any:
        col = table.column(f"c{index}").combine_chunks().slice(start)
        return pc.utf8_trim(col, characters=PY_WHITESPACE)

    user, item = column(layout.user), column(layout.item)
    if pc.any(pc.equal(pc.utf8_length(user), 0)).as_py() or pc.any(pc.equal(pc.utf8_length(item), 0)).as_py():
        return None
    timestamps = None
    if layout.time is not None:
        timestamps = _times(pa, pc, column(layout.time))
        if timestamps is None:
            return None
    return Interactions(_factorise(user), _factorise(item), timestamps, source=str(path))


def _read_table(path: Path, layout: Layout) -> Any:
    """The used columns as strings, named ``c<field index>`` as in ``layout``, or None."""
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.csv as csv

    delimiter = layout.delimiter
    if delimiter is None or (len(delimiter) > 1 and delimiter != "::"):
        return None
    double = delimiter == "::"
    step = 2 if double else 1  # "a::b::5" read on ":" is "a", "", "b", "", "5"
    width = step * (layout.fields - 1) + 1
    names = [f"c{i}" for i in range(width)]
    used = sorted({c for c in (layout.user, layout.item, layout.time) if c is not None})
    between = [f"c{i}" for i in range(1, width, 2)] if double else []
    source = pa.CompressedInputStream(pa.OSFile(str(path)), "gzip") if is_gzip(path) else pa.OSFile(str(path))
    try:
        table = csv.read_csv(
            source,
            read_options=csv.ReadOptions(column_names=names, block_size=BLOCK_BYTES),
            parse_options=csv.ParseOptions(
                delimiter=":" if double else delimiter, quote_char=False if double else '"', newlines_in_values=False
            ),
            convert_options=csv.ConvertOptions(
                column_types={n: pa.string() for n in names},
                include_columns=[f"c{step * c}" for c in used] + between,
                strings_can_be_null=False,
                quoted_strings_can_be_null=False,
            ),
        )
    except (pa.ArrowInvalid, OSError):  # ragged rows, bad UTF-8, a corrupt gzip: the line reader says where
        return None
    finally:
        source.close()
    if any(pc.any(pc.not_equal(table.column(n), "")).as_py() for n in between):
        return None  # a ":" inside a field: not what splitting on "::" gives
    return pa.table({f"c{c}": table.column(f"c{step * c}") for c in used})


def _factorise(col: Any) -> RawIds:
    """Dictionary-encode an Arrow string column: codes in order of first appearance."""
    encoded = col.dictionary_encode()
    return RawIds(encoded.indices.to_numpy().astype(np.int64), encoded.dictionary.to_pylist())


def _times(pa: Any, pc: Any, col: Any) -> np.ndarray | None:
    """Timestamps as :func:`fave.data.userlog.parse_time` reads them, or None (a value it refuses)."""
    from fave.data.userlog import parse_time

    numeric = pc.match_substring_regex(col, NUMBER_REGEX)
    out = np.empty(len(col), dtype=np.float64)
    mask = numeric.to_numpy(zero_copy_only=False)
    try:
        values = pc.cast(pc.filter(col, numeric), pa.float64()).to_numpy()
    except pa.ArrowInvalid:
        return None
    if not np.isfinite(values).all():  # parse_time would try these as dates, and refuse them
        return None
    out[mask] = values
    if not mask.all():  # dates (or digits Python's float() reads and RE2's [0-9] does not): per distinct value
        rest = pc.filter(col, pc.invert(numeric))
        distinct = rest.unique()
        try:
            parsed = np.array([parse_time(v) for v in distinct.to_pylist()], dtype=np.float64)
        except ValueError:
            return None
        out[~mask] = parsed[pc.index_in(rest, value_set=distinct).to_numpy()]
    return out
