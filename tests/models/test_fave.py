"""FAVE invariants: anchor prior, one-step inference, frozen embeddings, stages end to end."""

import numpy as np
import pytest
import torch

from fave.config import resolve_config
from fave.data.batching import train_batches
from fave.data.dataset import IdMap, SequenceData, Split
from fave.models.fave import FAVE
from fave.models.registry import build_model
from fave.training.run import train_run

SMALL = {"hidden": 16, "heads": 2, "layers": 2, "decoder_hidden": [16, 32], "stage1_eval_steps": 3}


def tiny_split(n_users=12, n_items=15, seed=0) -> Split:
    rng = np.random.default_rng(seed)
    seqs = [rng.permutation(np.arange(1, n_items + 1))[: rng.integers(4, 12)] for _ in range(n_users)]
    ids = IdMap([str(u) for u in range(n_users)], [str(i) for i in range(1, n_items + 1)])
    return Split(SequenceData("tiny", seqs, n_items, ids))


def make(**kw) -> FAVE:
    return build_model("fave", {**SMALL, **kw}, 15)


@pytest.mark.parametrize("positions", ["history", "padded"])
def test_anchor_is_a_real_history_item(positions):
    torch.manual_seed(0)
    model = make(anchor_positions=positions, p_keep=1.0)
    history = torch.tensor([[0, 0, 0, 3, 7, 9], [0, 0, 0, 0, 0, 4], [2, 5, 6, 8, 1, 11]])
    emb = model.net.item_emb.weight.detach()
    for _ in range(20):
        x0 = model.anchor(history, p_keep=1.0)  # [B, L, D]
        for b in range(3):
            for pos in range(6):
                if history[b, pos] == 0:
                    continue
                d = (emb[None] - x0[b, pos][None, None]).abs().sum(-1)[0]  # distance to every row
                k = int(d.argmin())
                if positions == "history":  # a real item at a position <= pos
                    assert d[k] < 1e-6 and k in history[b, : pos + 1].tolist() and k != 0
                else:  # the authors' code may pick padding (row 0), never a later item
                    assert d[k] < 1e-6 and (k == 0 or k in history[b, : pos + 1].tolist())


def test_authors_padded_anchor_is_mostly_padding_for_short_histories():
    torch.manual_seed(0)
    model = make(anchor_positions="padded", p_keep=1.0)
    history = torch.tensor([[0] * 45 + [3, 7, 9, 2, 5]])
    x0 = model.anchor(history, 1.0)[0, -1]
    assert torch.all(x0 == 0)  # n = 5 < 26: positions 0..4 of a 50-wide row are padding


def test_one_step_inference_is_one_call_equal_to_f_x0_0_1():
    model = make().eval()
    model.begin_stage("stage2")
    history = torch.tensor([[0, 0, 3, 7, 9], [1, 2, 3, 4, 5]])
    calls = []
    forward = model.net.forward
    model.net.forward = lambda *a, **k: calls.append(1) or forward(*a, **k)
    torch.manual_seed(1)
    out = model.generate(history)
    assert len(calls) == 1
    model.net.forward = forward
    torch.manual_seed(1)
    x0 = model.prior(history, per_position=False, p_keep=model.config.p_keep)
    f = model.net(history, x0, torch.zeros(2), torch.ones(2), last_only=True)[0][:, -1]
    assert torch.equal(out, f)
    full = model.net(history, x0, torch.zeros(2), torch.ones(2))[0][:, -1]  # the whole forward, to rounding
    torch.testing.assert_close(out, full, rtol=1e-5, atol=1e-6)
    assert model.score_all(type("B", (), {"history": history})()).shape == (2, 15)


def test_stage1_validation_uses_configured_euler_steps():
    model = make(stage="1").eval()
    calls = []
    forward = model.net.forward
    model.net.forward = lambda *a, **k: calls.append(1) or forward(*a, **k)
    model.generate(torch.tensor([[0, 1, 2]]))
    assert len(calls) == SMALL["stage1_eval_steps"]


@pytest.mark.parametrize("objective", ["paper", "consistent", "authors"])
@pytest.mark.parametrize("layout", ["parallel", "prefix"])
def test_stage2_freezes_item_embeddings(objective, layout):
    torch.manual_seed(0)
    split = tiny_split()
    model = make(objective=objective, recipe=layout)
    model.begin_stage("stage2")
    before = model.net.item_emb.weight.detach().clone()
    opt = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=1e-2, weight_decay=0.01)
    for batch in train_batches(split.train, layout, 50, 4, np.random.default_rng(0)):
        out = model.loss(batch)
        assert torch.isfinite(out.loss)
        opt.zero_grad()
        out.loss.backward()
        opt.step()
    assert torch.equal(model.net.item_emb.weight, before)


@pytest.mark.parametrize(
    "switch",
    [
        {"stage": "1"},
        {"use_cons": False},
        {"use_match": False},
        {"prior": "gaussian"},
        {"anchor_positions": "padded"},
        {"objective": "authors", "inference_output": "raw"},
        {"objective": "consistent", "use_cons": False},
    ],
)
def test_ablation_switches_train_and_score(switch):
    torch.manual_seed(0)
    split = tiny_split()
    model = make(**switch)
    for stage in model.stages():
        model.begin_stage(stage.name)
        batch = next(iter(train_batches(split.train, model.default_layout, 50, 8, np.random.default_rng(0))))
        model.loss(batch).loss.backward()
    model.eval()
    batch = next(iter(train_batches(split.train, "prefix", 50, 8, np.random.default_rng(0))))
    assert torch.isfinite(model.score_all(batch)).all()


def _cfg(**params):
    over = [f"params.{k}={v}" for k, v in {**SMALL, **params}.items()] + [
        "epochs=2",
        "batch_size=8",
        "eval_batch_size=8",
    ]
    over = [o.replace("[16, 32]", "[16,32]") for o in over]
    return resolve_config("fave", "tiny", FAVE.Config, overrides=over, seed=3)


def test_fixed_seed_reproduces_a_short_run(tmp_path):
    split = tiny_split()
    a = train_run(_cfg(), tmp_path / "a", split=split, quiet=True)
    b = train_run(_cfg(), tmp_path / "b", split=split, quiet=True)
    assert a["test"] == b["test"] and a["valid"] == b["valid"]


def test_stage1_then_stage2_from_run_dir_then_evaluate(tmp_path):
    split = tiny_split()
    m1 = train_run(_cfg(stage="1"), tmp_path / "s1", split=split, quiet=True)
    assert [s["name"] for s in m1["stages"]] == ["stage1"]
    cfg2 = _cfg(stage="2")
    cfg2.train.init_from = str(tmp_path / "s1")
    m2 = train_run(cfg2, tmp_path / "s2", split=split, quiet=True)
    assert [s["name"] for s in m2["stages"]] == ["stage2"]
    from fave.training.checkpoint import load_run
    from fave.training.run import evaluate_both

    s1, _, _ = load_run(tmp_path / "s1")
    s2, config, _ = load_run(tmp_path / "s2")
    assert torch.equal(s1.net.item_emb.weight, s2.net.item_emb.weight)  # Stage 2 kept E
    again = evaluate_both(s2, split, config)
    assert again["test"] == m2["test"]


def test_two_stage_run_keeps_its_stage1_weights_and_a_stage2_run_can_start_from_them(tmp_path):
    from fave.rundir import STAGE1
    from fave.training.checkpoint import load_run

    split = tiny_split()
    train_run(_cfg(stage="both"), tmp_path / "both", split=split, quiet=True)
    train_run(_cfg(stage="1"), tmp_path / "s1", split=split, quiet=True)
    kept, _, _ = load_run(tmp_path / "both", STAGE1)
    alone, _, _ = load_run(tmp_path / "s1")
    final, _, _ = load_run(tmp_path / "both")
    # the two-stage run's Stage 1 is the Stage-1 run's training (same seed and draws), not its final weights
    assert all(torch.equal(v, alone.state_dict()[k]) for k, v in kept.state_dict().items())
    assert not all(torch.equal(v, final.state_dict()[k]) for k, v in kept.state_dict().items())
    runs = {}
    for name, init in (("from-dir", tmp_path / "s1"), ("from-file", tmp_path / "both" / STAGE1)):
        cfg = _cfg(stage="2")
        cfg.train.init_from = str(init)
        runs[name] = train_run(cfg, tmp_path / name, split=split, quiet=True)
    assert runs["from-file"]["test"] == runs["from-dir"]["test"]
    assert not (tmp_path / "s1" / STAGE1).exists()  # one stage: nothing to keep beside the run's weights
