"""The command line end to end on tiny generated files, and its behaviour on bad input.

Every bad input must end with a non-zero status, one line on stderr, no traceback, and no
run directory left behind.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from fave.cli import main

TRAIN_SMALL = [
    "--quiet",
    "--set",
    "epochs=2",
    "--set",
    "hidden=16",
    "--set",
    "layers=1",
    "--set",
    "heads=2",
    "--set",
    "max_len=8",
    "--set",
    "params.max_len=8",
    "--set",
    "batch_size=16",
    "--set",
    "threads=1",
]


@pytest.fixture(autouse=True)
def data_dir(tmp_path, monkeypatch) -> Path:
    """Keep the processed-data cache inside the test's directory."""
    d = tmp_path / "cache"
    monkeypatch.setenv("FAVE_DATA_DIR", str(d))
    return d


def write_lines(path: Path, n_users: int = 20, n_items: int = 15, seed: int = 0) -> Path:
    """One line per user: ``user item_1 item_2 ...`` (raw ids are strings)."""
    rng = np.random.default_rng(seed)
    rows = []
    for u in range(n_users):
        items = rng.choice(n_items, size=rng.integers(4, 9), replace=False) + 100
        rows.append(" ".join([f"user{u}", *(f"it{i}" for i in items)]))
    path.write_text("\n".join(rows) + "\n")
    return path


def write_csv(path: Path, n_users: int = 12, n_items: int = 10, seed: int = 1) -> Path:
    rng = np.random.default_rng(seed)
    rows = ["user,item,timestamp"]
    for u in range(n_users):
        for k, i in enumerate(rng.choice(n_items, size=5, replace=False)):
            rows.append(f"u{u},i{i},{1000 + 10 * k}")
    path.write_text("\n".join(rows) + "\n")
    return path


def assert_clean_failure(capsys, code: int, *words: str) -> str:
    out, err = capsys.readouterr()
    assert code != 0
    assert "Traceback" not in err and "Traceback" not in out
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("fave: error:"), err
    for w in words:
        assert w in lines[0], (w, err)
    return lines[0]


def test_train_evaluate_recommend(tmp_path, capsys) -> None:
    data = write_lines(tmp_path / "tiny.txt")
    run = tmp_path / "run"
    assert main(["train", "--model", "sasrec", "--dataset", str(data), "--out", str(run), *TRAIN_SMALL]) == 0
    out, err = capsys.readouterr()
    assert "test [paper " in out and "test [masked" in out and str(run) in out
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["stages"][0]["epochs"] == 2

    assert main(["evaluate", str(run), "--json"]) == 0
    out, _ = capsys.readouterr()
    again = json.loads(out)
    assert again["test"] == metrics["test"] and again["valid"] == metrics["valid"]

    assert main(["recommend", str(run), "--user", "user3", "--k", "4"]) == 0
    out, _ = capsys.readouterr()
    lines = out.strip().splitlines()
    assert lines[0].startswith("user user3: last items")
    history = set((tmp_path / "tiny.txt").read_text().splitlines()[3].split()[1:])
    recs = [line.split()[1] for line in lines[1:]]
    assert len(recs) == 4 and len(set(recs)) == 4
    assert all(r.startswith("it") for r in recs)
    assert not set(recs) & history  # the user's own items are not recommended

    assert main(["recommend", str(run)]) == 0  # default: the first three users
    out, _ = capsys.readouterr()
    assert [line.split(":")[0] for line in out.splitlines() if line.startswith("user ")] == [
        "user user0",
        "user user1",
        "user user2",
    ]


def test_train_on_a_csv_log(tmp_path, capsys) -> None:
    data = write_csv(tmp_path / "log.csv")
    run = tmp_path / "run"
    assert main(["train", "--model", "pop", "--dataset", str(data), "--out", str(run), "--quiet"]) == 0
    metrics = json.loads((run / "metrics.json").read_text())
    assert set(metrics["test"]) == {"paper", "masked"}
    ids = json.loads((run / "id_map.json").read_text())
    assert ids["num_items"] == 10 and len(ids["users"]) == 12


def test_models_lists_the_registry(capsys) -> None:
    from fave.models.registry import MODELS

    assert main(["models"]) == 0
    out, _ = capsys.readouterr()
    assert [line.split()[0] for line in out.strip().splitlines()] == list(MODELS)


def test_a_closed_pipe_ends_quietly(monkeypatch, capsys) -> None:
    """`fave models | head`: the reader leaving is not an error (exit 0, nothing on stderr)."""
    import fave.cli

    def reader_left(_args) -> int:
        raise BrokenPipeError(32, "Broken pipe")

    monkeypatch.setitem(fave.cli.COMMANDS, "models", reader_left)
    assert main(["models"]) == 0
    assert capsys.readouterr().err == ""


# -- bad input ----------------------------------------------------------------------------
def train(tmp_path: Path, dataset: str, *extra: str, model: str = "sasrec") -> int:
    return main(["train", "--model", model, "--dataset", dataset, "--out", str(tmp_path / "run"), *TRAIN_SMALL, *extra])


def test_unknown_model(tmp_path, capsys) -> None:
    code = train(tmp_path, str(write_lines(tmp_path / "tiny.txt")), model="nosuchmodel")
    assert_clean_failure(capsys, code, "nosuchmodel", "sasrec")
    assert not (tmp_path / "run").exists()


def test_unknown_dataset_name(tmp_path, capsys) -> None:
    code = train(tmp_path, "no-such-dataset")
    assert_clean_failure(capsys, code, "no-such-dataset", "ml-100k")
    assert not (tmp_path / "run").exists()


def test_missing_file(tmp_path, capsys) -> None:
    code = train(tmp_path, str(tmp_path / "missing.csv"))
    assert_clean_failure(capsys, code, "missing.csv")
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize(
    ("name", "text", "line"),
    [
        ("bad.csv", "user,item,timestamp\nu1,i1,1\nu1,i2\nu1,i3,3\n", "line 3"),
        ("bad_time.csv", "user,item,timestamp\nu1,i1,1\nu1,i2,yesterday\n", "line 3"),
        ("bad.txt", "u1 a b c\nu2\nu3 a b c\n", "line 2"),
    ],
)
def test_malformed_lines(tmp_path, capsys, name: str, text: str, line: str) -> None:
    (tmp_path / name).write_text(text)
    code = train(tmp_path, str(tmp_path / name))
    assert_clean_failure(capsys, code, name, line)
    assert not (tmp_path / "run").exists()


def test_users_with_fewer_than_three_interactions(tmp_path, capsys) -> None:
    (tmp_path / "short.txt").write_text("u1 a b c d\nu2 a b\nu3 b c d e\n")
    code = train(tmp_path, str(tmp_path / "short.txt"))
    assert_clean_failure(capsys, code, "fewer than 3", "u2")
    assert not (tmp_path / "run").exists()


def test_users_with_fewer_than_three_interactions_can_be_filtered(tmp_path, capsys) -> None:
    write_lines(tmp_path / "tiny.txt")
    with open(tmp_path / "tiny.txt", "a") as f:
        f.write("shortuser it100 it101\n")
    code = main(
        [
            "train",
            "--model",
            "pop",
            "--dataset",
            str(tmp_path / "tiny.txt"),
            "--out",
            str(tmp_path / "run"),
            "--quiet",
            "--set",
            "min_user_interactions=3",
        ]
    )
    assert code == 0, capsys.readouterr().err
    assert "shortuser" not in json.loads((tmp_path / "run" / "id_map.json").read_text())["users"]


@pytest.mark.parametrize(
    ("setting", "word"),
    [
        ("epoch=2", "epoch"),
        ("train.nope=1", "train.nope"),
        ("epochs=many", "train.epochs"),
        ("select_metric=Recall@10", "select_metric"),
        ("eval_every=0", "eval_every"),
        ("seed=abc", "seed"),
    ],
)
def test_bad_set(tmp_path, capsys, setting: str, word: str) -> None:
    code = train(tmp_path, str(write_lines(tmp_path / "tiny.txt")), "--set", setting)
    assert_clean_failure(capsys, code, word)
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize("text", ["train: [unclosed\n", "- a list\n", "train:\n  epoch: 2\n"])
def test_bad_config_file(tmp_path, capsys, text: str) -> None:
    (tmp_path / "c.yaml").write_text(text)
    code = train(tmp_path, str(write_lines(tmp_path / "tiny.txt")), "--config", str(tmp_path / "c.yaml"))
    assert_clean_failure(capsys, code)
    assert not (tmp_path / "run").exists()


def test_missing_config_file(tmp_path, capsys) -> None:
    code = train(tmp_path, str(write_lines(tmp_path / "tiny.txt")), "--config", str(tmp_path / "none.yaml"))
    assert_clean_failure(capsys, code, "none.yaml")
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize("command", ["evaluate", "recommend"])
def test_commands_on_a_directory_that_is_not_a_run(tmp_path, capsys, command: str) -> None:
    (tmp_path / "somedir").mkdir()
    code = main([command, str(tmp_path / "somedir")])
    assert_clean_failure(capsys, code, "not a run directory")
    code = main([command, str(tmp_path / "absent")])
    assert_clean_failure(capsys, code, "absent")
    assert not (tmp_path / "absent").exists()


def test_evaluate_fails_cleanly_when_the_data_or_weights_are_gone(tmp_path, capsys) -> None:
    data = write_lines(tmp_path / "tiny.txt")
    run = tmp_path / "run"
    assert main(["train", "--model", "pop", "--dataset", str(data), "--out", str(run), "--quiet"]) == 0
    capsys.readouterr()
    (run / "model.safetensors").write_bytes(b"not a safetensors file")
    assert_clean_failure(capsys, main(["evaluate", str(run)]), "model.safetensors")
    (run / "model.safetensors").unlink()
    assert_clean_failure(capsys, main(["evaluate", str(run)]), "model.safetensors")
    assert run.is_dir()  # a failed evaluation never deletes a run


def test_evaluate_fails_cleanly_when_the_dataset_file_is_gone(tmp_path, capsys) -> None:
    data = write_lines(tmp_path / "tiny.txt")
    run = tmp_path / "run"
    assert main(["train", "--model", "pop", "--dataset", str(data), "--out", str(run), "--quiet"]) == 0
    capsys.readouterr()
    data.unlink()
    assert_clean_failure(capsys, main(["evaluate", str(run)]), "tiny.txt")


def test_recommend_for_an_unknown_user(tmp_path, capsys) -> None:
    data = write_lines(tmp_path / "tiny.txt")
    run = tmp_path / "run"
    assert main(["train", "--model", "pop", "--dataset", str(data), "--out", str(run), "--quiet"]) == 0
    capsys.readouterr()
    assert_clean_failure(capsys, main(["recommend", str(run), "--user", "nobody"]), "nobody")


def test_the_config_built_from_the_command_line_is_the_one_the_model_receives(tmp_path, monkeypatch) -> None:
    import fave.config
    import fave.training.run

    built, received = [], []
    resolve, trainer = fave.config.resolve_config, fave.training.run.Trainer

    def resolving(*args, **kwargs):
        built.append(resolve(*args, **kwargs))
        return built[-1]

    def training(model, *args, **kwargs):
        received.append(model)
        return trainer(model, *args, **kwargs)

    monkeypatch.setattr(fave.config, "resolve_config", resolving)
    monkeypatch.setattr(fave.training.run, "Trainer", training)
    data = write_lines(tmp_path / "tiny.txt")
    argv = ["train", "--model", "sasrec", "--dataset", str(data), "--out", str(tmp_path / "run"), *TRAIN_SMALL]
    assert main([*argv, "--set", "epochs=1"]) == 0
    assert len(built) == 1 and len(received) == 1
    assert received[0].config is built[0].params  # one object from parsing to the model, never rebuilt
