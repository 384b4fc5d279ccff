"""One entry point from a dataset name or file to :class:`SequenceData`, with a disk cache.

``load_dataset("ml-100k")`` fetches (if allowed), parses and preprocesses once, then keeps
the sequences in ``<data_dir>/processed/<key>.npz``. The key hashes the source file's bytes
and every option that changes the result, so a changed file or option never reuses a stale
cache; a cache that cannot be read is rebuilt. Raw ids are stored as one UTF-8 byte array plus their
end offsets, so the cache grows with the ids' total length, not with the longest one.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
import zipfile
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from fave.data.dataset import IdMap, SequenceData, Split
from fave.data.download import sha256_file
from fave.data.paths import resolve_data_dir
from fave.data.preprocess import to_sequences
from fave.data.sources import (
    FORMATS,
    NAMES,
    canonical_name,
    item_titles,
    named_file,
    read_interactions,
    read_named,
)
from fave.errors import FaveError
from fave.io_utils import atomic_write

if TYPE_CHECKING:  # pragma: no cover
    from fave.config import RunConfig

__all__ = ["dataset_key", "fetch", "item_titles", "load_dataset", "load_split", "processed_path"]

log = logging.getLogger(__name__)

CACHE_VERSION = 2  # 2: ids as UTF-8 bytes + offsets (1: fixed-width unicode arrays)


def pack_ids(ids: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """Raw ids -> (UTF-8 bytes of all of them [uint8], end offset of each [int64])."""
    encoded = [x.encode("utf-8") for x in ids]
    ends = np.cumsum([len(b) for b in encoded], dtype=np.int64) if encoded else np.zeros(0, np.int64)
    return np.frombuffer(b"".join(encoded), dtype=np.uint8), ends


def unpack_ids(data: np.ndarray, ends: np.ndarray) -> list[str]:
    """The inverse of :func:`pack_ids`; ValueError when the offsets do not fit the bytes."""
    if ends.ndim != 1 or (len(ends) and (ends[-1] != len(data) or np.any(np.diff(ends) < 0) or ends[0] < 0)):
        raise ValueError("inconsistent id offsets")
    raw = data.tobytes()
    starts = np.concatenate([[0], ends[:-1]]) if len(ends) else ends
    return [raw[a:b].decode("utf-8") for a, b in zip(starts.tolist(), ends.tolist(), strict=True)]


def dataset_key(name_or_path: str) -> str:
    """Short dataset name for configs: a known name itself, anything else ``"custom"``."""
    return canonical_name(name_or_path) or "custom"


def _unknown(name_or_path: str) -> FaveError:
    return FaveError(
        f"unknown dataset {name_or_path!r} (and no such file); use one of "
        f"{', '.join(NAMES)}, or a path to a CSV/TSV/.inter/.txt file of your own"
    )


def fetch(name: str, data_dir: str | Path | None = None) -> Path:
    """Make a dataset's source file available locally (download only) and return its path.

    ML-100k is downloaded; Beauty and Steam cannot be and are only located. A path to an
    existing file is returned as is.
    """
    named = canonical_name(name)
    if named is not None:
        return named_file(named, resolve_data_dir(data_dir), allow_download=True)
    path = Path(name).expanduser()
    if path.is_file():
        return path
    raise _unknown(name)


def _label(named: str | None, path: Path) -> str:
    if named is not None:
        return named
    stem = path.name.split(".")[0] or "custom"
    return re.sub(r"[^A-Za-z0-9_-]+", "_", stem)[:40]


def processed_path(label: str, source: Path, data_dir: Path, fmt: str, kcore: int, min_user_interactions: int) -> Path:
    """``<data_dir>/processed/<label>-<hash>.npz``; the hash covers the source and options."""
    options = {
        "version": CACHE_VERSION,
        "label": label,
        "source_sha256": sha256_file(source),
        "format": fmt,
        "kcore": kcore,
        "min_user_interactions": min_user_interactions,
    }
    digest = hashlib.sha256(json.dumps(options, sort_keys=True).encode()).hexdigest()[:16]
    return data_dir / "processed" / f"{label}-{digest}.npz"


def load_split(config: RunConfig, data_dir: str | Path | None = None) -> Split:
    """The leave-one-out split of the data a run config names (``dataset`` and the ``data`` section)."""
    d = config.data
    data = load_dataset(
        config.dataset, data_dir, fmt=d.format, kcore=d.kcore, min_user_interactions=d.min_user_interactions
    )
    return Split(data)


def load_dataset(
    name_or_path: str,
    data_dir: str | Path | None = None,
    fmt: str = "auto",
    kcore: int = 0,
    min_user_interactions: int = 0,
    download: bool = True,
) -> SequenceData:
    """Sequences of a named dataset (``ml-100k``, ``beauty``, ``steam``) or of a file.

    ``fmt`` applies to files (``auto`` detects it); ``kcore`` and ``min_user_interactions``
    filter (0 = off, so by default no user is dropped); ``download=False`` never touches
    the network and fails with the fetch command instead.
    """
    if fmt not in FORMATS:
        raise FaveError(f"unknown data format {fmt!r}; choose one of {', '.join(FORMATS)}")
    root = resolve_data_dir(data_dir)
    named = canonical_name(name_or_path)
    if named is not None:
        source = named_file(named, root, allow_download=download)
    else:
        source = Path(name_or_path).expanduser()
        if not source.is_file():
            raise _unknown(name_or_path)
    label = _label(named, source)
    cache = processed_path(label, source, root, fmt, kcore, min_user_interactions)
    cached = _read_cache(cache)
    if cached is not None:
        return cached
    if named is not None and fmt == "auto":
        inter = read_named(named, source)
    else:
        inter = read_interactions(source, fmt)
    data = to_sequences(inter, label, kcore=kcore, min_user_interactions=min_user_interactions)
    _write_cache(cache, data)
    return data


def _write_cache(path: Path, data: SequenceData) -> None:
    lengths = np.array([len(s) for s in data.sequences], dtype=np.int64)
    items = np.concatenate(data.sequences).astype(np.int64) if data.sequences else lengths[:0]

    users, user_ends = pack_ids(data.id_map.users)
    item_ids, item_ends = pack_ids(data.id_map.items)

    def _write(tmp: str) -> None:
        with open(tmp, "wb") as f:
            np.savez(
                f,
                version=np.int64(CACHE_VERSION),
                name=np.str_(data.name),
                num_items=np.int64(data.num_items),
                lengths=lengths,
                items=items,
                users=users,
                user_ends=user_ends,
                item_ids=item_ids,
                item_ends=item_ends,
            )

    try:
        atomic_write(path, _write)
    except OSError as e:  # a read-only data dir costs speed, not correctness
        log.warning("could not write the processed cache %s (%s)", path, e)


def _read_cache(path: Path) -> SequenceData | None:
    """The cached sequences, or None when absent or unreadable (then it is rebuilt)."""
    if not path.is_file():
        return None
    try:
        with np.load(path, allow_pickle=False) as z:
            if int(z["version"]) != CACHE_VERSION:
                return None
            lengths, items = z["lengths"], z["items"]
            users = unpack_ids(z["users"], z["user_ends"])
            item_ids = unpack_ids(z["item_ids"], z["item_ends"])
            num_items, name = int(z["num_items"]), str(z["name"])
        if int(lengths.sum()) != len(items) or len(users) != len(lengths):
            raise ValueError("inconsistent arrays")
        in_range = len(items) == 0 or 1 <= items.min() <= items.max() <= num_items
        if len(item_ids) != num_items or not in_range:
            raise ValueError("item ids out of range")
    except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile) as e:
        log.warning("rebuilding the unreadable processed cache %s (%s)", path, e)
        return None
    sequences = np.split(items, np.cumsum(lengths)[:-1]) if len(lengths) else []
    return SequenceData(name, sequences, num_items, IdMap(users=users, items=item_ids))
