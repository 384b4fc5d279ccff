"""A tiny trained FAVE run shared by the API and export tests (raw ids shaped like ML-100k's)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from fave.cli import main

TINY_FAVE = ["--quiet", "--set", "stage1_epochs=1", "--set", "stage2_epochs=1", "--set", "threads=1"]
TINY_FAVE += ["--set", "hidden=16", "--set", "heads=2", "--set", "layers=2", "--set", "batch_size=32"]
TINY_FAVE += ["--set", "max_len=10"]


def write_log(path: Path, n_users: int = 20, n_items: int = 60, length: int = 12) -> Path:
    """``user,item,timestamp`` with numeric raw ids 1.. (so the README's ML-100k ids exist here too)."""
    rng = np.random.default_rng(0)
    rows = ["user,item,timestamp"]
    for u in range(1, n_users + 1):
        items = rng.choice(np.arange(1, n_items + 1), size=length, replace=False)
        rows += [f"{u},{i},{1000 + 10 * k}" for k, i in enumerate(items)]
    path.write_text("\n".join(rows) + "\n")
    return path


@pytest.fixture(scope="session")
def tiny_run(tmp_path_factory) -> tuple[Path, Path, Path]:
    """-> (run dir, data log, data dir) of a FAVE run trained for one epoch per stage."""
    root = tmp_path_factory.mktemp("tiny-fave")
    log, data_dir, run = write_log(root / "log.csv"), root / "cache", root / "run"
    argv = ["train", "--model", "fave", "--dataset", str(log), "--out", str(run), "--data-dir", str(data_dir)]
    assert main([*argv, *TINY_FAVE]) == 0
    return run, log, data_dir
