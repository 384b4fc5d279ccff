"""The Python API: fave.load(run_dir) round trips from the run directory alone, and the README example runs."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import numpy as np
import pytest

import fave
from fave.errors import FaveError

README = Path(__file__).resolve().parents[2] / "README.md"


def readme_example() -> str:
    """The first ```python block of the README's "Python API" section."""
    section = README.read_text().split("## Python API", 1)[1].split("\n## ", 1)[0]
    m = re.search(r"```python\n(.*?)```", section, flags=re.S)
    assert m is not None, "README: no python example in the Python API section"
    return m.group(1)


def test_round_trip_from_the_run_dir_alone(tiny_run, tmp_path) -> None:
    run, log, _ = tiny_run
    alone = tmp_path / "copied-run"  # its dataset moved away: the run directory alone
    shutil.copytree(run, alone)
    config = alone / "config.yaml"
    config.write_text(config.read_text().replace(str(log), str(tmp_path / "moved.csv")))
    rec = fave.load(str(alone), data_dir=str(tmp_path / "empty"))
    top = rec.recommend(["1", "7", "50"], k=5)
    assert len(top) == 5 and not {"1", "7", "50"} & {i for i, _ in top}
    assert [s for _, s in top] == sorted((s for _, s in top), reverse=True)
    assert rec.recommend(["1", "7", "50"], k=5) == top  # deterministic for the run's seed
    left_out = rec.recommend(["1", "7", "50"], k=5, exclude=[top[0][0]])
    assert top[0][0] not in {i for i, _ in left_out}
    histories = [["1", "7", "50"], ["2"], [str(i) for i in range(1, 30)]]
    batched = rec.recommend_batch(histories, k=5)
    for h, b in zip(histories, batched, strict=True):
        alone_top = rec.recommend(h, k=5)
        assert [i for i, _ in b] == [i for i, _ in alone_top]
        np.testing.assert_allclose([s for _, s in b], [s for _, s in alone_top], rtol=1e-5, atol=1e-6)
    emb = rec.item_embeddings()
    assert emb.vectors.shape == (len(emb.items), 16) and set(emb.items) == set(rec.id_map.items)
    with pytest.raises(FaveError, match="--data-dir"):
        rec.recommend_user("3")
    with pytest.raises(FaveError, match="unknown item id 'nope'"):
        rec.recommend(["nope"])
    with pytest.raises(FaveError, match="k=0"):
        rec.recommend(["1"], k=0)


def test_recommend_user_with_the_data(tiny_run) -> None:
    run, _, data_dir = tiny_run
    rec = fave.load(str(run), data_dir=str(data_dir))
    history = rec.user_history("3")
    assert len(history) == 12 and rec.recommend_user("3", k=4) == rec.recommend(history, k=4)
    with pytest.raises(FaveError, match="unknown user 'nobody'"):
        rec.recommend_user("nobody")
    assert len(rec.popular(3)) == 3


def test_the_readme_example_runs(tiny_run) -> None:
    run, _, data_dir = tiny_run
    code = (
        readme_example().replace('"runs/fave"', repr(str(run))).replace("data_dir=None", f"data_dir={str(data_dir)!r}")
    )
    namespace: dict = {}
    exec(compile(code, "README.md", "exec"), namespace)  # noqa: S102 - our own README
    assert (
        namespace["top"] and namespace["per_user"] and namespace["vectors"].shape[0] == len(namespace["emb"].items) > 0
    )
