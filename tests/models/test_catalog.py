"""`auto` loss keys: the exact choices up to their thresholds (LARGE_CATALOG; recon: GATHER_ABOVE items),
bounded ones above, recorded in the run."""

from __future__ import annotations

import numpy as np
import pytest
import yaml

from fave.config import resolve_config
from fave.data.dataset import IdMap, SequenceData, Split
from fave.models.catalog import GATHER_ABOVE, LARGE_CATALOG, resolve_auto
from fave.models.registry import build_model
from fave.training.run import train_run

BIG = LARGE_CATALOG + 1
TINY_FLOW = {"hidden": 8, "heads": 1, "layers": 2, "decoder_hidden": (8, 16), "max_len": 8}


def test_auto_keeps_the_exact_choices_for_a_small_catalog() -> None:
    values = {"loss": "auto", "ce_loss": "auto", "recon": "auto", "decoder_output": "auto", "hidden": 8}
    resolved, notes = resolve_auto(values, GATHER_ABOVE)
    assert resolved == {"loss": "full", "ce_loss": "full", "recon": "full", "decoder_output": "linear", "hidden": 8}
    assert notes == []


def test_recon_gathers_from_its_own_lower_threshold_the_other_keys_stay_exact() -> None:
    values = {"loss": "auto", "ce_loss": "auto", "recon": "auto", "decoder_output": "auto"}
    assert GATHER_ABOVE < LARGE_CATALOG
    resolved, notes = resolve_auto(values, GATHER_ABOVE + 1)
    assert resolved == {"loss": "full", "ce_loss": "full", "recon": "gathered", "decoder_output": "linear"}
    assert len(notes) == 1 and "params.recon=gathered" in notes[0] and "ce_loss" not in notes[0]
    resolved, notes = resolve_auto({"recon": "full"}, LARGE_CATALOG)  # explicit full above its threshold: warned
    assert resolved == {"recon": "full"} and notes[0].startswith("warning: params.recon=full")


def test_auto_picks_bounded_choices_above_the_threshold_and_says_so_once() -> None:
    resolved, notes = resolve_auto({"ce_loss": "auto", "recon": "auto", "decoder_output": "auto"}, BIG)
    assert resolved == {"ce_loss": "sampled", "recon": "gathered", "decoder_output": "tied"}
    assert len(notes) == 1 and "params.ce_loss=sampled" in notes[0] and f"{BIG:,} items" in notes[0]


def test_an_explicit_value_wins_and_a_full_one_over_a_big_catalog_is_warned() -> None:
    resolved, notes = resolve_auto({"loss": "full"}, BIG)
    assert resolved == {"loss": "full"}
    assert len(notes) == 1 and notes[0].startswith("warning: params.loss=full")
    assert resolve_auto({"loss": "chunked"}, BIG) == ({"loss": "chunked"}, [])
    assert resolve_auto({"loss": "sampled"}, 10) == ({"loss": "sampled"}, [])


@pytest.mark.parametrize("model", ["sasrec", "gru4rec"])
def test_softmax_models_resolve_auto_from_num_items(model: str) -> None:
    small = build_model(model, {"hidden": 8} if model == "sasrec" else {"embedding": 8, "hidden": 8}, 100)
    big = build_model(model, {"hidden": 8} if model == "sasrec" else {"embedding": 8, "hidden": 8}, BIG)
    assert small.config.loss == "full" and small.notes == []
    assert big.config.loss == "sampled" and len(big.notes) == 1


@pytest.mark.parametrize("model", ["fave", "fmrec"])
def test_flow_models_above_the_threshold_have_no_d2_x_n_layer(model: str) -> None:
    m = build_model(model, dict(TINY_FLOW), BIG)
    assert (m.config.ce_loss, m.config.recon, m.config.decoder_output) == ("sampled", "gathered", "tied")
    assert m.net.config.decoder_output == "tied" and m.net.decoder[-1].weight.shape == (8, 16)
    assert build_model(model, dict(TINY_FLOW), 100).net.decoder[-1].weight.shape == (100, 16)


def _wide_split(num_items: int) -> Split:
    """Six users over a few items of a catalog of ``num_items`` (the rest never interacted with)."""
    rng = np.random.default_rng(0)
    seqs = [rng.integers(1, 40, size=6) for _ in range(6)]
    ids = IdMap([f"u{u}" for u in range(6)], [str(i) for i in range(1, num_items + 1)])
    return Split(SequenceData("wide", seqs, num_items, ids))


def test_a_run_records_the_resolved_choice_and_logs_it(tmp_path) -> None:
    config = resolve_config(
        "sasrec",
        "wide",
        build_model("sasrec", {}, 10).Config,
        overrides=["epochs=1", "hidden=8", "heads=1", "layers=1", "max_len=8", "data.max_len=8", "threads=1"],
    )
    assert config.params.loss == "auto"
    train_run(config, tmp_path / "run", split=_wide_split(BIG), quiet=True)
    saved = yaml.safe_load((tmp_path / "run" / "config.yaml").read_text())
    assert saved["params"]["loss"] == "sampled"
    assert "params.loss=sampled" in (tmp_path / "run" / "log.txt").read_text()
    assert config.params.loss == "auto"  # the caller's config is not changed
    train_run(config, tmp_path / "run", split=_wide_split(BIG), quiet=True)  # the same run: resumed, not refused
