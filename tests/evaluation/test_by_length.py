"""scripts/by_length.py: test accuracy by history length from saved ranks, against hand-computed groups."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import numpy as np
import pytest

from fave.data.load import load_dataset
from fave.evaluation.significance import save_ranks


def script():
    path = Path(__file__).resolve().parents[2] / "scripts" / "by_length.py"
    spec = importlib.util.spec_from_file_location("by_length", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def write_run(run: Path, test_ranks: np.ndarray) -> str:
    users = np.arange(len(test_ranks))
    save_ranks(run, {"test_users": users, "test_paper": test_ranks, "test_masked": test_ranks})
    return str(run)


def test_groups_split_users_by_their_test_input_length(tmp_path: Path) -> None:
    # users with 3, 4, 5 and 7 items: test inputs of 2, 3, 4 and 6 items
    data_file = tmp_path / "tiny.txt"
    data_file.write_text("u1 a b c\nu2 a b c d\nu3 b c d e f\nu4 a b c d e f g\n")
    lengths = np.array([len(s) - 1 for s in load_dataset(str(data_file)).sequences])
    # model a: every user's target at rank 1; model b: rank 1 for test inputs of 4 items or more, else rank 30
    a = write_run(tmp_path / "a", np.ones(4, dtype=np.int64))
    b = write_run(tmp_path / "b", np.where(lengths >= 4, 1, 30).astype(np.int64))
    out = tmp_path / "by-length"
    code = script().main(["--dataset", str(data_file), "--edges", "2,4", "--out", str(out), f"a={a}", f"b={b}"])
    assert code == 0
    rows = json.loads(out.with_suffix(".json").read_text())["rows"]
    assert [(r["length"], r["users"]) for r in rows] == [("2-3", 2), ("4+", 2)]
    short, long = rows
    assert short["models"]["a"]["HR@20"] == 1.0 and short["models"]["b"]["HR@20"] == 0.0
    assert short["models"]["b"]["HR@20 diff"] == -1.0 and short["models"]["b"]["HR@20 t_p"] == 0.0
    assert long["models"]["b"]["NDCG@20"] == 1.0 and long["models"]["b"]["NDCG@20 t_p"] == 1.0
    assert "| 2-3 | 2 |" in out.with_suffix(".md").read_text()


def test_a_run_without_ranks_is_a_one_line_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "empty").mkdir()
    code = script().main(["--dataset", "x", "--out", str(tmp_path / "o"), f"a={tmp_path / 'empty'}"])
    assert code == 2 and "has no ranks.npz" in capsys.readouterr().err
