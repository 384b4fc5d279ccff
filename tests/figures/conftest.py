"""Shared by the figure tests: the tiny FAVE/FMRec settings and the generated log they train on."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

N_ITEMS = 15
#: `fave train` flags for a tiny, one-thread network (the figure commands need trained runs)
SMALL = ["--quiet", "--set", "threads=1", "--set", "batch_size=16", "--set", "max_len=8", "--set", "params.max_len=8"]
for _kv in ("hidden=16", "layers=1", "heads=2", "params.decoder_hidden=[8,8]", "params.decoder_block=1"):
    SMALL += ["--set", _kv]


def _write_log(path: Path, n_users: int = 14, n_items: int = N_ITEMS, seed: int = 0) -> Path:
    """A whitespace log: each of ``n_users`` users has 4-8 distinct items of ``n_items``."""
    rng = np.random.default_rng(seed)
    rows = []
    for u in range(n_users):
        items = rng.choice(n_items, size=int(rng.integers(4, 9)), replace=False)
        rows.append(" ".join([f"u{u}", *(f"i{i}" for i in items)]))
    path.write_text("\n".join(rows) + "\n")
    return path


@pytest.fixture(scope="session")
def write_log() -> Callable[..., Path]:
    return _write_log


@pytest.fixture(scope="session")
def small_flags() -> list[str]:
    return list(SMALL)
