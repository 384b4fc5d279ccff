"""The bad-input corpus (issue 11): what a hostile or careless user can hand fave.

Every CLI case asserts exit status 2, one line on stderr naming the problem (no traceback)
and that no file was left half-written or lost; every HTTP case a 4xx, never a 5xx. The
numbered comments are the issue's defect classes; cases that already held stay here so they
keep holding. Run the whole corpus with ``pytest -k bad_input`` (well under a minute).
"""

from __future__ import annotations

import hashlib
import json
import random
import shutil
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import torch

from fave.cli import main
from fave.data.dataset import IdMap
from fave.data.load import load_dataset, pack_ids, unpack_ids
from fave.data.preprocess import MAX_ID_CHARS, to_sequences
from fave.data.sources import read_interactions
from fave.errors import FaveError
from fave.models.registry import build_model
from fave.serving.recommender import Recommender
from fave.training.checkpoint import load_state

SMALL_SASREC = ["--quiet", "--set", "epochs=1", "--set", "hidden=8", "--set", "heads=1", "--set", "layers=1"]
SMALL_SASREC += ["--set", "batch_size=16", "--set", "threads=1"]


@pytest.fixture(autouse=True)
def data_dir(tmp_path, monkeypatch) -> Path:
    d = tmp_path / "cache"
    monkeypatch.setenv("FAVE_DATA_DIR", str(d))
    return d


def write_log(path: Path, n_users: int = 12, n_items: int = 10, length: int = 5, seed: int = 1) -> Path:
    """A CSV log, ``user,item,timestamp`` with a header (ids u0.., i0..)."""
    rng = np.random.default_rng(seed)
    rows = ["user,item,timestamp"]
    for u in range(n_users):
        items = rng.choice(n_items, size=min(length, n_items), replace=False)
        rows += [f"u{u},i{i},{1000 + 10 * k}" for k, i in enumerate(items)]
    path.write_text("\n".join(rows) + "\n")
    return path


def snapshot(root: Path) -> dict[str, str]:
    """Every file under ``root`` (but the data cache) -> sha256 of its bytes."""
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file() and "cache" not in p.relative_to(root).parts
    }


def no_temp_files(root: Path) -> bool:
    return not [p for p in root.rglob("*.tmp")]


def fails_cleanly(capsys, code: int, *words: str) -> str:
    out, err = capsys.readouterr()
    assert code == 2, (code, err)
    assert "Traceback" not in err + out
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("fave: error:"), err
    for w in words:
        assert w in lines[0], (w, lines[0])
    return lines[0]


def refused(capsys, tmp_path: Path, argv: list[str], *words: str) -> str:
    """Run ``fave argv``: exit 2, one line with ``words``, no file under tmp_path changed or left behind."""
    before = snapshot(tmp_path)
    line = fails_cleanly(capsys, main(argv), *words)
    assert snapshot(tmp_path) == before
    assert no_temp_files(tmp_path)
    return line


@pytest.fixture
def pop_run(tmp_path, capsys) -> Path:
    run = tmp_path / "pop-run"
    assert main(["train", "--model", "pop", "--dataset", str(write_log(tmp_path / "log.csv")), "--out", str(run)]) == 0
    capsys.readouterr()
    return run


# -- 1. no file fave reads may execute code ----------------------------------------------
class Payload:
    """Unpickling this creates ``marker``: what a crafted state.pt would do."""

    def __init__(self, marker: Path) -> None:
        self.marker = str(marker)

    def __reduce__(self):  # noqa: ANN204
        return (open, (self.marker, "w"))


def test_bad_input_crafted_state_pt_runs_no_code(tmp_path) -> None:
    marker = tmp_path / "pwned"
    torch.save({"stage": 0, "epoch": 1, "done": [], "model": {}, "evil": Payload(marker)}, tmp_path / "state.pt")
    assert load_state(tmp_path / "state.pt") is None  # refused, so training restarts
    assert not marker.exists()
    import pickle

    (tmp_path / "plain.pt").write_bytes(pickle.dumps(Payload(marker)))  # the legacy (non-zip) format
    assert load_state(tmp_path / "plain.pt") is None
    assert not marker.exists()


def test_bad_input_crafted_state_pt_in_a_run_dir_restarts_training(tmp_path, capsys) -> None:
    marker, run = tmp_path / "pwned", tmp_path / "run"
    run.mkdir()
    torch.save({"stage": 0, "epoch": 1, "done": [], "model": {}, "evil": Payload(marker)}, run / "state.pt")
    data = write_log(tmp_path / "log.csv")
    assert main(["train", "--model", "sasrec", "--dataset", str(data), "--out", str(run), *SMALL_SASREC]) == 0
    assert not marker.exists()
    assert json.loads((run / "metrics.json").read_text())["stages"][0]["epochs"] == 1  # trained from scratch


@pytest.mark.parametrize("junk", [b"", b"not a torch file", b"PK\x03\x04 truncated zip"])
def test_bad_input_corrupt_state_pt_restarts(tmp_path, junk: bytes) -> None:
    (tmp_path / "state.pt").write_bytes(junk)
    assert load_state(tmp_path / "state.pt") is None


def test_bad_input_state_pt_of_the_wrong_shape_restarts(tmp_path) -> None:
    for state in ({"stage": "0"}, [1, 2], {"stage": 0, "epoch": 0, "done": [1], "model": {}}):
        torch.save(state, tmp_path / "state.pt")
        assert load_state(tmp_path / "state.pt") is None


# -- 2./3./4. runs that recommend ---------------------------------------------------------
def test_bad_input_pop_run_recommends_by_popularity(pop_run, tmp_path) -> None:
    from fave.data.dataset import Split
    from fave.training.checkpoint import load_run

    model, _, _ = load_run(pop_run)
    train = Split(load_dataset(str(tmp_path / "log.csv"))).train
    expected = np.bincount(np.concatenate(train), minlength=model.num_items + 1)[1:]
    assert model.counts.sum() > 0
    np.testing.assert_array_equal(model.counts.numpy(), expected)  # the saved run, not all zeros
    rec = Recommender.from_run(pop_run)
    top = rec.recommend([rec.id_map.items[0]], k=3, exclude_history=False)
    assert [s for _, s in top] == sorted(expected.tolist(), reverse=True)[:3]


def test_bad_input_autoseqrec_run_recommends_with_and_without_the_data(tmp_path, capsys) -> None:
    data, run = write_log(tmp_path / "log.csv"), tmp_path / "run"
    argv = ["train", "--model", "autoseqrec", "--dataset", str(data), "--out", str(run), "--quiet"]
    assert main([*argv, "--set", "epochs=1", "--set", "hidden=8", "--set", "threads=1"]) == 0
    capsys.readouterr()
    assert main(["recommend", str(run), "--user", "u3", "--k", "3"]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert lines[0].startswith("user u3") and len(lines) == 4
    data.unlink()  # the server case: the run directory alone
    shutil.rmtree(tmp_path / "cache")
    rec = Recommender.from_run(run)
    top = rec.recommend(["i1", "i2"], k=5)
    assert len(top) == 5 and not {"i1", "i2"} & {i for i, _ in top}
    assert all(np.isfinite(s) for _, s in top)


def test_bad_input_exclude_history_never_returns_seen_items() -> None:
    torch.manual_seed(0)
    model = build_model("sasrec", {"hidden": 8, "heads": 1, "layers": 1}, 6)
    rec = Recommender(model, IdMap(users=["u"], items=list("abcdef")), max_len=10)
    top = rec.recommend(["a", "b", "c", "d"], k=6)
    assert sorted(i for i, _ in top) == ["e", "f"] and all(np.isfinite(s) for _, s in top)
    assert len(rec.recommend(["a", "b", "c", "d", "e", "f"], k=3)) == 0
    assert len(rec.recommend(["a"], k=6, exclude_history=False)) == 6


# -- 5. a finished run is never lost ------------------------------------------------------
def test_bad_input_reusing_a_run_dir_for_another_model_is_refused(pop_run, tmp_path, capsys) -> None:
    data = str(tmp_path / "log.csv")
    argv = ["train", "--model", "sasrec", "--dataset", data, "--out", str(pop_run), *SMALL_SASREC]
    refused(capsys, tmp_path, argv, "pop", "--overwrite")
    refused(capsys, tmp_path, ["train", "--model", "pop", "--dataset", data, "--out", str(pop_run), "--seed", "3"])
    assert main(["evaluate", str(pop_run)]) == 0  # the old run still works
    assert main([*argv, "--overwrite"]) == 0
    assert "model: sasrec" in (pop_run / "config.yaml").read_text()


def test_bad_input_reusing_a_run_dir_with_the_same_config_resumes(pop_run, tmp_path, capsys) -> None:
    data = str(tmp_path / "log.csv")
    metrics = (pop_run / "metrics.json").read_text()
    assert main(["train", "--model", "pop", "--dataset", data, "--out", str(pop_run), "--quiet"]) == 0
    assert json.loads((pop_run / "metrics.json").read_text())["test"] == json.loads(metrics)["test"]


def test_bad_input_out_naming_an_existing_file(tmp_path, capsys) -> None:
    (tmp_path / "notes.txt").write_text("keep me")
    data = str(write_log(tmp_path / "log.csv"))
    refused(capsys, tmp_path, ["train", "--model", "pop", "--dataset", data, "--out", str(tmp_path / "notes.txt")])


# -- 6. one max_len --------------------------------------------------------------------
def test_bad_input_bare_max_len_above_the_default_trains_sasrec(tmp_path, capsys) -> None:
    data = write_log(tmp_path / "long.csv", n_users=6, n_items=70, length=60)  # histories longer than 50
    argv = ["train", "--model", "sasrec", "--dataset", str(data), "--out", str(tmp_path / "run"), *SMALL_SASREC]
    assert main([*argv, "--set", "max_len=100"]) == 0, capsys.readouterr().err
    from fave.training.checkpoint import read_config

    config = read_config(tmp_path / "run")
    assert config.data.max_len == config.params.max_len == 100


def test_bad_input_conflicting_max_lens_are_refused(tmp_path, capsys) -> None:
    data = str(write_log(tmp_path / "log.csv"))
    argv = ["train", "--model", "sasrec", "--dataset", data, "--out", str(tmp_path / "run"), *SMALL_SASREC]
    refused(capsys, tmp_path, [*argv, "--set", "max_len=100", "--set", "params.max_len=50"], "params.max_len")
    assert not (tmp_path / "run").exists()


# -- 7. long ids -------------------------------------------------------------------------
@pytest.mark.parametrize("long_id", ["x" * (MAX_ID_CHARS + 1), "7" * 5000])
def test_bad_input_overlong_ids_are_refused(tmp_path, capsys, long_id: str) -> None:
    log = write_log(tmp_path / "log.csv")
    log.write_text(log.read_text() + f"u0,{long_id},2000\n")
    argv = ["train", "--model", "pop", "--dataset", str(log), "--out", str(tmp_path / "run")]
    refused(capsys, tmp_path, argv, "item id", str(MAX_ID_CHARS))
    assert not (tmp_path / "run").exists()


def test_bad_input_cache_size_follows_the_ids_total_length(tmp_path, data_dir) -> None:
    log = tmp_path / "log.csv"
    rows = ["user,item,timestamp"] + [f"u{u},i{u}-{k},{k}" for u in range(400) for k in range(3)]
    rows.append(f"u0,{'y' * MAX_ID_CHARS},9")  # one id at the limit must not widen every other one
    log.write_text("\n".join(rows) + "\n")
    data = load_dataset(str(log))
    (cache,) = (data_dir / "processed").glob("*.npz")
    assert cache.stat().st_size < 60_000  # fixed-width unicode: 1201 ids x 256 chars x 4 bytes = 1.2 MB
    assert load_dataset(str(log)).id_map == data.id_map  # read back from the cache


def test_bad_input_id_packing_round_trips_and_rejects_bad_offsets() -> None:
    ids = ["a", "", "日本語", "x" * 300]
    assert unpack_ids(*pack_ids(ids)) == ids
    data, ends = pack_ids(ids)
    with pytest.raises(ValueError):
        unpack_ids(data, ends[::-1].copy())


def test_bad_input_tampered_cache_is_rebuilt(tmp_path, data_dir) -> None:
    log = write_log(tmp_path / "log.csv")
    first = load_dataset(str(log))
    (cache,) = (data_dir / "processed").glob("*.npz")
    cache.write_bytes(b"garbage")
    again = load_dataset(str(log))
    assert again.id_map == first.id_map and again.num_items == first.num_items


# -- 8. one-line errors instead of tracebacks --------------------------------------------
@pytest.mark.parametrize(
    "content", [b"\x00\xff\xfe\x89PNG binary", b"train: [unclosed\n", b"- a list\n", b"params: 5\n"]
)
def test_bad_input_config_file(tmp_path, capsys, content: bytes) -> None:
    (tmp_path / "c.yaml").write_bytes(content)
    data = str(write_log(tmp_path / "log.csv"))
    argv = ["train", "--model", "sasrec", "--dataset", data, "--out", str(tmp_path / "run"), "--config"]
    refused(capsys, tmp_path, [*argv, str(tmp_path / "c.yaml")], "c.yaml" if b"params" not in content else "params")
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize(
    ("setting", "word"),
    [
        ("lr=.nan", "lr"),
        ("lr=.inf", "lr"),
        ("weight_decay=-.inf", "weight_decay"),
        ("params.dropout=.nan", "dropout"),
        ("epoch=2", "epoch"),
        ("epochs=many", "epochs"),
        ("train=3", "train"),
        ("train.lr.x=1", "lr"),
        ("noequals", "key=value"),
    ],
)
def test_bad_input_set(tmp_path, capsys, setting: str, word: str) -> None:
    data = str(write_log(tmp_path / "log.csv"))
    argv = ["train", "--model", "sasrec", "--dataset", data, "--out", str(tmp_path / "run"), *SMALL_SASREC]
    refused(capsys, tmp_path, [*argv, "--set", setting], word)


@pytest.mark.parametrize(
    ("model", "settings", "word"),
    [
        ("sasrec", ["hidden=10", "heads=3"], "heads"),
        ("dreamrec", ["denoiser=mlp9"], "denoiser"),
        ("dreamrec", ["steps=10", "sample_steps=20"], "sample_steps"),
        ("nosuchmodel", [], "nosuchmodel"),
    ],
)
def test_bad_input_model_settings(tmp_path, capsys, model: str, settings: list[str], word: str) -> None:
    data = str(write_log(tmp_path / "log.csv"))
    argv = ["train", "--model", model, "--dataset", data, "--out", str(tmp_path / "run"), "--quiet"]
    refused(capsys, tmp_path, [*argv, *(a for s in settings for a in ("--set", s))], word)
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize("k", ["-5", "0", "1001"])
def test_bad_input_recommend_k(pop_run, tmp_path, capsys, k: str) -> None:
    refused(capsys, tmp_path, ["recommend", str(pop_run), "--k", k], "--k")


@pytest.mark.parametrize(
    "text",
    ["", "\n", "{unclosed: [", "- just a list\n", "dataset: x\n", "model: 5\n", "model: nosuch\ndataset: x\n"],
)
@pytest.mark.parametrize("command", ["evaluate", "recommend", "serve"])
def test_bad_input_run_dir_config(pop_run, tmp_path, capsys, text: str, command: str) -> None:
    (pop_run / "config.yaml").write_text(text)
    refused(capsys, tmp_path, [command, str(pop_run)], "config.yaml" if "nosuch" not in text else "nosuch")


@pytest.mark.parametrize(
    "text",
    [
        "",
        "{not json",
        "[]",
        '{"num_items": 10, "users": [], "items": ["a"]}',  # too few items
        '{"num_items": "10", "users": [], "items": []}',
        '{"num_items": 1, "users": [1], "items": ["a"]}',
    ],
)
def test_bad_input_run_dir_id_map(pop_run, tmp_path, capsys, text: str) -> None:
    (pop_run / "id_map.json").write_text(text)
    refused(capsys, tmp_path, ["recommend", str(pop_run)], "id_map.json")
    refused(capsys, tmp_path, ["evaluate", str(pop_run)], "id_map.json")


@pytest.mark.parametrize("name", ["model.safetensors", "id_map.json", "config.yaml"])
def test_bad_input_run_dir_missing_files(pop_run, tmp_path, capsys, name: str) -> None:
    (pop_run / name).unlink()
    refused(capsys, tmp_path, ["evaluate", str(pop_run)], name if name != "config.yaml" else "not a run directory")


def test_bad_input_run_dir_corrupt_weights(pop_run, tmp_path, capsys) -> None:
    (pop_run / "model.safetensors").write_bytes(b"\x00" * 64)
    refused(capsys, tmp_path, ["recommend", str(pop_run)], "model.safetensors")


# cases that already held: names, missing and malformed data files
@pytest.mark.parametrize(
    ("dataset", "word"),
    [("no-such-dataset", "no-such-dataset"), ("missing.csv", "missing.csv"), ("bad.csv", "line 3")],
)
def test_bad_input_datasets(tmp_path, capsys, dataset: str, word: str) -> None:
    (tmp_path / "bad.csv").write_text("user,item,timestamp\nu1,i1,1\nu1,i2\n")
    path = str(tmp_path / dataset) if dataset.endswith(".csv") else dataset
    refused(capsys, tmp_path, ["train", "--model", "pop", "--dataset", path, "--out", str(tmp_path / "run")], word)


@pytest.mark.parametrize("content", [b"\xff\xfe\x00 not utf-8\n", b"\x1f\x8b\x08 truncated gzip"])
def test_bad_input_undecodable_data_files(tmp_path, capsys, content: bytes) -> None:
    (tmp_path / "log.csv").write_bytes(content)
    argv = ["train", "--model", "pop", "--dataset", str(tmp_path / "log.csv"), "--out", str(tmp_path / "run")]
    refused(capsys, tmp_path, argv, "log.csv")


def random_line(rng: random.Random) -> str:
    alphabet = ["u1", "i2", ",", "\t", " ", "::", '"', "1e308", "nan", "-", "2017-13-45", "\\", "é", "|", "x" * 300]
    return "".join(rng.choice(alphabet) for _ in range(rng.randint(0, 8)))


@pytest.mark.parametrize("seed", range(4))
def test_bad_input_log_parsers_fail_only_with_fave_errors(tmp_path, seed: int) -> None:
    """Seeded random logs (a cheap stand-in for hypothesis): parsed, or refused with a FaveError."""
    rng = random.Random(seed)
    for case in range(40):
        fmt = rng.choice(["auto", "csv", "tsv", "lines", "inter"])
        path = tmp_path / f"f{case}.{rng.choice(['csv', 'txt', 'inter', 'data'])}"
        path.write_text("\n".join(random_line(rng) for _ in range(rng.randint(0, 6))), encoding="utf-8")
        try:
            to_sequences(read_interactions(path, fmt), "fuzz")
        except FaveError as e:
            assert "\n" not in str(e)


def test_bad_input_tampered_titles_are_ignored(tmp_path) -> None:
    from fave.data.ml100k import ml100k_titles

    folder = tmp_path / "ml-100k"
    folder.mkdir()
    (folder / "ml-100k.item").write_text("item_id:token\tmovie_title:token_seq\n1\tNot The Real Title\n")
    assert ml100k_titles(tmp_path) is None


# -- 9. the server -----------------------------------------------------------------------
@pytest.fixture
def client() -> Iterator:
    pytest.importorskip("fastapi")
    from fastapi.testclient import TestClient

    from fave.serving.app import create_app

    torch.manual_seed(0)
    model = build_model("sasrec", {"hidden": 8, "heads": 1, "layers": 1}, 6)
    rec = Recommender(model, IdMap(users=["u"], items=list("abcdef")), max_len=10)
    yield TestClient(create_app(rec, "SASRec"), raise_server_exceptions=False)


@pytest.mark.parametrize(
    "body",
    [
        {"items": ["a"], "k": True},
        {"items": ["a"], "k": 1.0},
        {"items": ["a"], "k": "5"},
        {"items": ["a"], "k": 0},
        {"items": ["a"], "k": 10_000},
        {"items": ["a"], "exclude_history": "yes"},
        {"items": "a"},
        {"items": [1, 2]},
        {"items": []},
        {"items": ["zzz"]},
        {"k": 3},
        [],
        None,
    ],
)
def test_bad_input_recommend_requests(client, body) -> None:
    r = client.post("/recommend", json=body)
    assert r.status_code == 422, (body, r.status_code, r.text)


@pytest.mark.parametrize("raw", [b"{not json", b"", b"\xff\xfe", b'{"items": ["a"]', b"[" * 10_000])
def test_bad_input_malformed_json(client, raw: bytes) -> None:
    r = client.post("/recommend", content=raw, headers={"content-type": "application/json"})
    assert r.status_code in (400, 422), (raw[:20], r.status_code)  # 400: nested too deep to parse


def test_bad_input_huge_body_is_413(client) -> None:
    r = client.post("/recommend", json={"items": ["a"] * 400_000})
    assert r.status_code == 413

    def chunks() -> Iterator[bytes]:  # no content-length: counted as it arrives
        yield b'{"items": ['
        for _ in range(300):
            yield b'"a",' * 1000
        yield b'"a"]}'

    r = client.post("/recommend", content=chunks(), headers={"content-type": "application/json"})
    assert r.status_code == 413


def test_bad_input_huge_unknown_id_is_not_echoed(client) -> None:
    r = client.post("/recommend", json={"items": ["q" * 500_000]})
    assert r.status_code == 422 and len(r.text) < 500 and "500000 characters" in r.text
    r = client.post("/recommend", json={"items": ["a"], "k": "w" * 500_000})
    assert r.status_code == 422 and len(r.text) < 500


def test_bad_input_random_requests_never_give_a_5xx(client) -> None:
    """Seeded random request bodies (a cheap stand-in for hypothesis)."""
    rng = random.Random(0)
    values = [None, True, 0, -1, 3, 1.5, "a", "zzz", "", [], ["a"], ["a", "b"], {}, {"items": ["a"]}, "é" * 50]
    keys = ["items", "k", "exclude_history", "extra"]
    for _ in range(150):
        body = {rng.choice(keys): rng.choice(values) for _ in range(rng.randint(0, 4))}
        r = client.post("/recommend", json=body)
        assert r.status_code in (200, 422), (body, r.status_code, r.text)
        if r.status_code == 200:
            assert all(o["score"] is not None for o in r.json()["items"])


def test_bad_input_fuzz_server_script_is_bounded_and_finds_no_5xx(capsys) -> None:
    pytest.importorskip("fastapi")
    import importlib.util

    path = Path(__file__).resolve().parents[1] / "scripts" / "fuzz_server.py"
    spec = importlib.util.spec_from_file_location("fuzz_server", path)
    assert spec is not None and spec.loader is not None
    fuzz = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(fuzz)
    assert fuzz.main(["--count", "40", "--seconds", "30", "--seed", "1"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("40 requests") and "5xx=0 failed=0" in out
