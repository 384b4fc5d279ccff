"""Reading text sources: gzip-transparent opening and numbered lines for error messages."""

from __future__ import annotations

import gzip
import io
import zlib
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TextIO

from fave.errors import FaveError

GZIP_MAGIC = b"\x1f\x8b"


def is_gzip(path: str | Path) -> bool:
    with open(path, "rb") as f:
        return f.read(2) == GZIP_MAGIC


def open_text(path: str | Path, encoding: str = "utf-8-sig") -> TextIO:
    """Open ``path`` for reading text, decompressing gzip by content (not by name).

    ``utf-8-sig`` drops a byte-order mark that spreadsheet exports often add.
    """
    path = Path(path)
    if not path.is_file():
        raise FaveError(f"data file not found: {path}; check the path")
    if is_gzip(path):
        return io.TextIOWrapper(gzip.open(path, "rb"), encoding=encoding, errors="strict")
    return open(path, encoding=encoding)


def numbered_lines(path: str | Path, encoding: str = "utf-8-sig") -> Iterator[tuple[int, str]]:
    """``(line_number, line)`` for every non-blank line (1-based numbers, newline stripped)."""
    try:
        with open_text(path, encoding) as f:
            for number, line in enumerate(f, start=1):
                line = line.rstrip("\r\n")
                if line.strip():
                    yield number, line
    except UnicodeDecodeError as e:
        raise FaveError(
            f"{path} is not {encoding.split('-sig')[0].upper()} text ({e.reason}); "
            "save it as UTF-8 or pass the right --format"
        ) from None
    except (EOFError, gzip.BadGzipFile, zlib.error) as e:
        raise FaveError(f"{path} is a truncated or corrupt gzip file ({e}); fetch it again") from None
    except OSError as e:
        raise FaveError(f"cannot read {path} ({e.strerror or e}); check its permissions") from None


def head_lines(path: str | Path, n: int = 20) -> list[str]:
    """The first ``n`` non-blank lines, for format detection."""
    out: list[str] = []
    for _, line in numbered_lines(path):
        out.append(line)
        if len(out) >= n:
            break
    return out


def malformed(path: str | Path, line_number: int, problem: str, fix: str) -> FaveError:
    """The one error shape for a bad line: file, line number, what is wrong, how to fix it."""
    return FaveError(f"{path}, line {line_number}: {problem}; {fix}")


def review_rows(
    path: Path,
    parse: Callable[[str], Any],
    not_parsed: str,
    not_dict: str,
    example: str,
    row: Callable[[Path, int, dict], tuple[str, str, float]],
) -> tuple[list[str], list[str], list[float]]:
    """A review dump, one dict per non-blank line -> (users, items, times), in file order.

    ``parse`` reads a line; a line it rejects, or one that is not a dict, is an error
    (``not_parsed`` / ``not_dict``; ``example`` shows a good line), and so is a file with no
    review at all. ``row(path, line_number, record)`` checks a record and returns its row.
    """
    users: list[str] = []
    items: list[str] = []
    times: list[float] = []
    for number, line in numbered_lines(path):
        try:
            record = parse(line)
        except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
            raise malformed(path, number, not_parsed, f"each line must hold one review, e.g. {example}") from None
        if not isinstance(record, dict):
            raise malformed(path, number, not_dict, "each line must hold one review")
        user, item, time = row(path, number, record)
        users.append(user)
        items.append(item)
        times.append(time)
    if not users:
        raise FaveError(f"{path} is empty; it needs one review per line")
    return users, items, times
