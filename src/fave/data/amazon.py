"""Amazon Beauty: the prepared S3-Rec ``Beauty.txt`` and the raw 2014 review dump.

``Beauty.txt`` (one line per user, items in time order, ids 1..12101) is the file every
paper in this line uses; it is located, never downloaded. The raw ``reviews_Beauty_5.json``
is read with the S3-Rec preprocessing: keep all ratings, order each user's items by review
time (stable), 5-core filter (iterative), number users and items by first appearance.
"""

from __future__ import annotations

import ast
import json
from pathlib import Path

import numpy as np

from fave.data.fileio import malformed, review_rows
from fave.data.paths import repo_root
from fave.data.preprocess import Interactions
from fave.errors import FaveError

BEAUTY_SHA256 = "226cce9c3105299ca0db9615d7d3fb32b3175e90da43100ae352599f0f0107b8"
BEAUTY_FILE = "Beauty.txt"
RAW_FILES = ("reviews_Beauty_5.json.gz", "reviews_Beauty_5.json")
S3REC_KCORE = 5


def beauty_candidates(data_dir: Path) -> list[Path]:
    """Where ``Beauty.txt`` may be, in the order tried.

    ``<data_dir>/beauty/``, then the project's shared data (``../shared/data/beauty/``)
    relative to the working directory and to the source checkout.
    """
    shared = Path("..") / "shared" / "data" / "beauty" / BEAUTY_FILE
    out = [data_dir / "beauty" / BEAUTY_FILE, Path.cwd() / shared]
    root = repo_root()
    if root is not None:
        out.append(root / shared)
    return [Path(p).resolve() if p.exists() else p for p in out]


def find_beauty(data_dir: Path) -> Path:
    """The first existing ``Beauty.txt``, else a raw review dump in ``<data_dir>/beauty``."""
    for p in beauty_candidates(data_dir):
        if p.is_file():
            return p
    for name in RAW_FILES:
        if (data_dir / "beauty" / name).is_file():
            return data_dir / "beauty" / name
    tried = ", ".join(str(p) for p in beauty_candidates(data_dir))
    raise FaveError(
        f"Beauty data not found (looked for {tried}); copy the S3-Rec Beauty.txt (or "
        f"reviews_Beauty_5.json.gz) into {data_dir / 'beauty'}, or pass --data-dir"
    )


def _parse_record(line: str) -> dict:
    try:
        return json.loads(line)
    except json.JSONDecodeError:
        return ast.literal_eval(line)  # the older "python literal" dumps


def _review_row(path: Path, number: int, record: dict) -> tuple[str, str, float]:
    """One review -> (reviewerID, asin, unixReviewTime)."""
    missing = [k for k in ("reviewerID", "asin", "unixReviewTime") if k not in record]
    if missing:
        raise malformed(
            path,
            number,
            f"review has no {', '.join(missing)}",
            "this reader expects the Amazon 2014 review format",
        )
    t = record["unixReviewTime"]
    if isinstance(t, bool) or not isinstance(t, (int, float)):
        raise malformed(path, number, f"unixReviewTime {t!r} is not a number", "fix or remove that line")
    return str(record["reviewerID"]), str(record["asin"]), float(t)


def read_amazon_reviews(path: str | Path) -> Interactions:
    """Raw Amazon reviews (reviewerID, asin, unixReviewTime per line) with S3-Rec settings.

    The returned rows ask for first-appearance ids and at least a 5-core (``min_kcore``).
    """
    path = Path(path)
    users, items, times = review_rows(
        path,
        _parse_record,
        "not a JSON object or Python literal",
        "not a JSON object",
        '{"reviewerID": ..., "asin": ..., "unixReviewTime": ...}',
        _review_row,
    )
    return Interactions(
        users,
        items,
        np.asarray(times),
        id_order="appearance",
        source=str(path),
        min_kcore=S3REC_KCORE,
    )
