"""fave loadtest: bounded, loopback, JSON + Markdown with the command."""

from __future__ import annotations

import json

import pytest

from fave.cli import main

pytest.importorskip("uvicorn")
pytest.importorskip("httpx")


def test_loadtest_writes_bounded_results_with_the_command(tiny_run, tmp_path, capsys) -> None:
    run, _, data_dir = tiny_run
    out = tmp_path / "results" / "lt"
    argv = ["loadtest", str(run), "--out", str(out), "--concurrency", "1,3", "--requests", "12", "--seconds", "20"]
    assert main([*argv, "--threads", "1", "--data-dir", str(data_dir)]) == 0
    report = json.loads(out.with_suffix(".json").read_text())
    assert [x["clients"] for x in report["levels"]] == [1, 3]
    assert all(x["requests"] == 12 and x["errors"] == 0 for x in report["levels"])
    assert all(x["p50_ms"] <= x["p95_ms"] <= x["p99_ms"] <= x["max_ms"] for x in report["levels"])
    assert report["command"].startswith("fave loadtest ") and "--concurrency 1,3" in report["command"]
    assert "test users" in report["workload"] and report["server"]["graceful_shutdown"]
    assert report["server"]["http"].startswith("HTTP parser ") and "event loop" in report["client"]
    md = out.with_suffix(".md").read_text()
    assert report["command"] in md and "| 3 | 12 | 0 |" in md


@pytest.mark.parametrize(("flag", "value"), [("--concurrency", "0,4"), ("--concurrency", "x"), ("--requests", "0")])
def test_loadtest_bounds_are_checked(tiny_run, tmp_path, capsys, flag: str, value: str) -> None:
    assert main(["loadtest", str(tiny_run[0]), "--out", str(tmp_path / "x"), flag, value]) == 2
    assert flag in capsys.readouterr().err and not (tmp_path / "x.json").exists()
