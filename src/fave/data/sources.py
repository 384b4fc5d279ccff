"""Named datasets and file formats: which file to read, and which reader reads it.

A source is either a name (``ml-100k``, ``beauty``, ``steam``) resolved under the data
directory, or a path to a file in one of :data:`FORMATS`. ``auto`` picks the format from the
extension and, where that is ambiguous, from the first lines.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from fave.data import amazon, ml100k, steam
from fave.data.fileio import head_lines
from fave.data.paths import resolve_data_dir
from fave.data.preprocess import Interactions
from fave.data.userlog import read_delimited, read_inter, read_lines
from fave.errors import FaveError

NAMES = ("ml-100k", "beauty", "steam")
ALIASES = {"ml100k": "ml-100k", "movielens-100k": "ml-100k", "amazon_beauty": "beauty", "amazon-beauty": "beauty"}
FORMATS = ("auto", "csv", "tsv", "inter", "lines", "amazon", "steam", "pickle")

READERS: dict[str, Callable[[Path], Interactions]] = {
    "csv": lambda p: read_delimited(p),
    "tsv": lambda p: read_delimited(p, delimiter="\t"),
    "inter": read_inter,
    "lines": read_lines,
    "amazon": amazon.read_amazon_reviews,
    "steam": steam.read_steam_reviews,
    "pickle": steam.read_split_pickle,
}


def _json_flavour(path: Path, first: str) -> str:
    if "reviewerID" in first or "asin" in first:
        return "amazon"
    if "product_id" in first:
        return "steam"
    raise FaveError(
        f"{path}: cannot tell which review dump this is (expected Amazon 'reviewerID'/'asin' "
        "or Steam 'product_id' fields); pass --format amazon or --format steam"
    )


def canonical_name(name_or_path: str | Path) -> str | None:
    """The dataset name meant by ``name_or_path`` (case-insensitive, with aliases), or None."""
    key = str(name_or_path).strip().lower()
    key = ALIASES.get(key, key)
    return key if key in NAMES else None


def detect_format(path: str | Path) -> str:
    """The format of ``path`` from its extension (``.gz`` ignored) and first lines."""
    path = Path(path)
    suffixes = [s.lower() for s in path.suffixes if s.lower() != ".gz"]
    ext = suffixes[-1] if suffixes else ""
    if ext in (".pkl", ".pickle"):
        return "pickle"
    if ext == ".inter":
        return "inter"
    lines = head_lines(path, 20)
    if not lines:
        raise FaveError(f"{path} is empty; it needs interactions (see --format for layouts)")
    if lines[0].lstrip().startswith("{"):
        return _json_flavour(path, lines[0])
    if ext == ".csv":
        return "csv"
    if ext in (".tsv", ".tab", ".data"):
        return "tsv"
    if any(d in lines[0] for d in ("\t", ",", ";", "|", "::")):
        return "csv"  # the CSV reader sniffs the delimiter itself
    if ext == ".txt":
        return "lines"
    widths = {len(line.split()) for line in lines}
    if len(widths) > 1:
        return "lines"  # ragged whitespace rows: one user per line
    raise FaveError(
        f"{path}: cannot tell the format (whitespace-separated rows of equal width); pass "
        "--format csv for 'user item [timestamp]' rows or --format lines for 'user items...'"
    )


def read_interactions(path: str | Path, fmt: str = "auto") -> Interactions:
    """Read ``path`` with the reader for ``fmt`` (``auto``: :func:`detect_format`)."""
    path = Path(path)
    if fmt not in FORMATS:
        raise FaveError(f"unknown data format {fmt!r}; choose one of {', '.join(FORMATS)}")
    if not path.is_file():
        raise FaveError(f"data file not found: {path}; check the path")
    if fmt == "auto":
        fmt = detect_format(path)
    return READERS[fmt](path)


def named_file(name: str, data_dir: Path, allow_download: bool = True) -> Path:
    """The file behind a dataset name (fetched first for ml-100k when allowed)."""
    if name == "ml-100k":
        return ml100k.fetch_ml100k(data_dir, allow_download)
    if name == "beauty":
        return amazon.find_beauty(data_dir)
    if name == "steam":
        folder = data_dir / "steam"
        for candidate in steam.PICKLE_FILES + steam.RAW_FILES:
            if (folder / candidate).is_file():
                return folder / candidate
        raise FaveError(
            f"Steam data not found in {folder}; it cannot be downloaded automatically: put "
            "McAuley's steam_reviews.json.gz (https://cseweb.ucsd.edu/~jmcauley/datasets.html"
            f"#steam_data) or a DiffuRec dataset.pkl into {folder}"
        )
    raise FaveError(f"unknown dataset {name!r}; known: {', '.join(NAMES)}")


def read_named(name: str, path: Path) -> Interactions:
    """Read a named dataset's file (ML-100k's ``u.data`` has no header, so it is not sniffed)."""
    if name == "ml-100k":
        return ml100k.read_ml100k(path)
    return read_interactions(path)


def item_titles(name: str, data_dir: str | Path | None = None) -> dict[str, str] | None:
    """Raw item id -> display title for a named dataset, when its titles are on disk.

    Only ML-100k ships titles (``u.item`` or RecBole's ``ml-100k.item``); others give None.
    """
    if canonical_name(name) == "ml-100k":
        return ml100k.ml100k_titles(resolve_data_dir(data_dir))
    return None
