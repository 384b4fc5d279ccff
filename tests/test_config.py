"""Run configuration: --set parsing, precedence, type checks and YAML file errors."""

from __future__ import annotations

import dataclasses

import pytest

from fave.config import (
    DataConfig,
    RunConfig,
    apply_overrides,
    config_from_dict,
    load_yaml,
    parse_set,
    resolve_config,
)
from fave.errors import FaveError
from fave.models.sasrec import SASRecConfig

SASREC_KEYS = {"hidden", "heads", "layers", "dropout", "max_len"}


def resolve(overrides: list[str] | None = None, config_file: str | None = None) -> RunConfig:
    return resolve_config("sasrec", "tiny.txt", SASRecConfig, config_file, overrides)


# -- --set parsing ------------------------------------------------------------------------
def test_bare_keys_find_their_section() -> None:
    out = parse_set(["epochs=2", "kcore=5", "hidden=16", "seed=3"], SASREC_KEYS)
    assert out == {"train": {"epochs": 2}, "data": {"kcore": 5}, "params": {"hidden": 16}, "seed": 3}


def test_a_bare_key_in_two_sections_goes_to_the_first_of_train_data_params() -> None:
    # max_len is both data.max_len and params.max_len for SASRec: data wins
    assert parse_set(["max_len=8"], SASREC_KEYS) == {"data": {"max_len": 8}}


def test_dotted_keys_and_value_types() -> None:
    out = parse_set(["train.lr=0.5", "params.max_len=8", "train.select_metric=HR@10", "train.init_from="], SASREC_KEYS)
    assert out == {"train": {"lr": 0.5, "select_metric": "HR@10", "init_from": ""}, "params": {"max_len": 8}}


def test_overrides_reach_the_resolved_config() -> None:
    cfg = resolve(["epochs=2", "train.lr=0.01", "hidden=16", "params.max_len=8", "max_len=9", "seed=4"])
    assert cfg.train.epochs == 2 and cfg.train.lr == 0.01
    assert cfg.params.hidden == 16 and cfg.params.max_len == 8
    assert cfg.data.max_len == 9 and cfg.seed == 4
    assert cfg.params.heads == resolve().params.heads  # untouched keys keep their defaults
    assert cfg.model == "sasrec" and cfg.dataset == "tiny.txt"


def test_an_int_is_accepted_for_a_float_key() -> None:
    cfg = resolve(["lr=1"])
    assert cfg.train.lr == 1.0 and isinstance(cfg.train.lr, float)


def test_scientific_notation_is_accepted_for_a_float_key() -> None:
    # YAML 1.1 reads "1e-3" as a string; users write learning rates like this
    assert resolve(["lr=1e-3"]).train.lr == pytest.approx(1e-3)
    assert resolve(["train.weight_decay=5e-4"]).train.weight_decay == pytest.approx(5e-4)


def test_unknown_bare_key_names_the_key_and_the_allowed_keys() -> None:
    with pytest.raises(FaveError) as e:
        resolve(["epoch=2"])
    msg = str(e.value)
    assert "'epoch'" in msg and "epochs" in msg and "hidden" in msg and "max_len" in msg


@pytest.mark.parametrize(
    ("item", "key"),
    [("train.epoch=2", "train.epoch"), ("params.hiden=8", "params.hiden"), ("data.maxlen=8", "data.maxlen")],
)
def test_unknown_dotted_key_names_the_key_and_the_allowed_keys(item: str, key: str) -> None:
    with pytest.raises(FaveError, match="allowed") as e:
        resolve([item])
    assert key in str(e.value)


def test_unknown_section_is_named() -> None:
    with pytest.raises(FaveError, match="'optim'"):
        resolve(["optim.lr=0.1"])


def test_set_without_equals_sign() -> None:
    with pytest.raises(FaveError, match="key=value"):
        resolve(["epochs"])


@pytest.mark.parametrize(
    ("item", "key"),
    [
        ("epochs=abc", "train.epochs"),
        ("epochs=2.5", "train.epochs"),
        ("lr=fast", "train.lr"),
        ("hidden=[1, 2]", "params.hidden"),
        ("epochs=true", "train.epochs"),
    ],
)
def test_bad_type_names_the_key_and_the_value(item: str, key: str) -> None:
    with pytest.raises(FaveError, match="expected (int|float)") as e:
        resolve([item])
    msg = str(e.value).lower()
    assert key in msg and item.split("=", 1)[1].split(",")[0] in msg


@pytest.mark.parametrize("item", ["select_protocol=both", "layout=random"])
def test_choice_keys_reject_values_outside_the_allowed_set(item: str) -> None:
    with pytest.raises(FaveError, match=item.split("=")[1]):
        resolve([item])


@pytest.mark.parametrize(
    ("item", "key"),
    [
        ("select_metric=Recall@10", "train.select_metric"),
        ("select_metric=HR@7", "train.select_metric"),
        ("eval_every=0", "train.eval_every"),
        ("batch_size=0", "train.batch_size"),
        ("eval_batch_size=0", "train.eval_batch_size"),
        ("epochs=-1", "train.epochs"),
        ("lr=-0.1", "train.lr"),
        ("patience=0", "train.patience"),
        ("max_len=0", "data.max_len"),
        ("kcore=-2", "data.kcore"),
    ],
)
def test_values_out_of_range_name_the_key_and_the_allowed_values(item: str, key: str) -> None:
    # each of these used to fail later, inside training, with a traceback (or ran silently)
    with pytest.raises(FaveError, match="allowed") as e:
        resolve([item])
    assert key in str(e.value) and item.split("=")[1] in str(e.value)


def test_selectable_metrics_and_zero_epochs_are_accepted() -> None:
    assert resolve(["select_metric=HR@10"]).train.select_metric == "HR@10"
    assert resolve(["select_metric=MRR@5", "select_protocol=masked"]).train.select_protocol == "masked"
    assert resolve(["epochs=0"]).train.epochs == 0


@pytest.mark.parametrize("value", ["abc", "1.5", "true"])
def test_seed_must_be_an_integer(value: str) -> None:
    with pytest.raises(FaveError, match="seed"):
        resolve([f"seed={value}"])


# -- YAML files ---------------------------------------------------------------------------
def test_file_then_overrides_precedence(tmp_path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text("seed: 7\ntrain:\n  epochs: 5\n  lr: 0.5\nparams:\n  hidden: 32\n")
    cfg = resolve(["epochs=2"], str(path))
    assert cfg.train.epochs == 2  # --set beats the file
    assert cfg.train.lr == 0.5 and cfg.params.hidden == 32 and cfg.seed == 7
    assert cfg.train.batch_size == resolve().train.batch_size  # defaults fill the rest


def test_missing_config_file(tmp_path) -> None:
    with pytest.raises(FaveError, match="not found") as e:
        resolve(config_file=str(tmp_path / "nope.yaml"))
    assert "nope.yaml" in str(e.value)


def test_invalid_yaml(tmp_path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text("train:\n  epochs: [1, 2\n")
    with pytest.raises(FaveError, match="not valid YAML") as e:
        load_yaml(path)
    assert "bad.yaml" in str(e.value)


def test_yaml_that_is_not_a_mapping(tmp_path) -> None:
    path = tmp_path / "list.yaml"
    path.write_text("- epochs\n- 2\n")
    with pytest.raises(FaveError, match="mapping"):
        load_yaml(path)


def test_empty_yaml_is_an_empty_config(tmp_path) -> None:
    path = tmp_path / "empty.yaml"
    path.write_text("")
    assert load_yaml(path) == {}
    assert resolve(config_file=str(path)) == resolve()


def test_unknown_keys_in_a_file(tmp_path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text("trian:\n  epochs: 2\n")
    with pytest.raises(FaveError, match="'trian'"):
        resolve(config_file=str(path))
    path.write_text("train:\n  epoch: 2\n")
    with pytest.raises(FaveError, match=r"train\.epoch\b.*allowed"):
        resolve(config_file=str(path))


def test_config_round_trips_through_a_dict() -> None:
    cfg = resolve(["epochs=3", "hidden=16", "seed=5"])
    again = config_from_dict(cfg.to_dict(), SASRecConfig)
    assert again == cfg
    assert again.data == DataConfig() and again.train.epochs == 3 and again.params.hidden == 16


def test_params_is_the_models_config_instance_and_saves_as_a_mapping() -> None:
    cfg = resolve(["hidden=16"])
    assert isinstance(cfg.params, SASRecConfig)
    assert cfg.to_dict()["params"] == dataclasses.asdict(cfg.params)  # config.yaml keeps its layout


def test_apply_overrides_returns_a_checked_copy() -> None:
    cfg = resolve(["hidden=16", "epochs=3"])
    new = apply_overrides(cfg, ["params.dropout=0.5", "eval_seed=7", "max_len=4"])
    assert isinstance(new.params, SASRecConfig) and new.params.dropout == 0.5 and new.train.eval_seed == 7
    assert new.params.hidden == 16 and new.train.epochs == 3 and cfg.params.dropout != 0.5  # the original is kept
    # a saved model's positions do not follow data.max_len
    assert new.data.max_len == 4 and new.params.max_len == cfg.params.max_len
    with pytest.raises(FaveError, match=r"params\.hiden"):
        apply_overrides(cfg, ["params.hiden=3"])


@pytest.mark.parametrize("dataset", ["ml-100k", "beauty"])
def test_the_packaged_benchmark_recipes_have_no_wall_clock_budget(dataset: str) -> None:
    """Table 1's recipes end on epoch counts or early stopping, so their results do not depend on the machine's load."""
    from fave.models.registry import MODELS, model_class

    for name in MODELS:
        config = resolve_config(name, dataset, model_class(name).Config, dataset_key=dataset)
        assert config.train.time_budget_s == 0, f"{name}.{dataset}.yaml sets a wall-clock budget"
