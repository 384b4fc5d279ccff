"""``fave bench-eval``: the whole test evaluation timed per run."""

from __future__ import annotations

from pathlib import Path

import pytest

import fave.benchmark.eval_time as eval_time
from fave.benchmark.eval_time import time_evaluation
from fave.cli import main


@pytest.fixture
def pop_run(tmp_path) -> Path:
    data = tmp_path / "log.txt"
    data.write_text("\n".join(f"u{u} " + " ".join(str((u + k) % 9 + 1) for k in range(6)) for u in range(8)) + "\n")
    run = tmp_path / "run"
    assert main(["train", "--model", "pop", "--dataset", str(data), "--out", str(run), "--quiet"]) == 0
    return run


def test_bench_eval_times_a_run(pop_run, tmp_path):
    row = time_evaluation(pop_run, repeats=2)
    assert row["users"] == 8 and len(row["runs_s"]) == 2 and row["median_s"] > 0 and row["warmup"] is True
    assert main(["bench-eval", str(pop_run), "--out", str(tmp_path / "t"), "--repeats", "1"]) == 0
    assert (tmp_path / "t.json").is_file() and "| pop |" in (tmp_path / "t.md").read_text()


@pytest.mark.parametrize("warmup, passes", [(True, 3), (False, 2)])
def test_bench_eval_warmup_pass_is_optional(pop_run, monkeypatch, warmup, passes):
    calls = []
    real = eval_time.evaluate
    monkeypatch.setattr(eval_time, "evaluate", lambda *a, **k: calls.append(1) or real(*a, **k))
    row = time_evaluation(pop_run, repeats=2, warmup=warmup)
    assert len(calls) == passes and len(row["runs_s"]) == 2 and row["warmup"] is warmup


def test_bench_eval_no_warmup_flag_is_in_the_report(pop_run, tmp_path):
    assert main(["bench-eval", str(pop_run), "--out", str(tmp_path / "t"), "--repeats", "1", "--no-warmup"]) == 0
    assert "--repeats 1 --no-warmup" in (tmp_path / "t.md").read_text()


def test_bench_eval_needs_a_timed_pass(pop_run, tmp_path, capsys):
    assert main(["bench-eval", str(pop_run), "--out", str(tmp_path / "t"), "--repeats", "0"]) == 2
    assert "--repeats 0" in capsys.readouterr().err
