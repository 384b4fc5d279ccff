"""The contract every registered model honours, parametrized over ``MODELS`` itself.

The registry is read at collection time, so a model added to the table is covered without
touching this file. Each model is built small, sees a tiny generated dataset, and must
give a finite loss with finite gradients in every stage, finite [B, N] scores that are
deterministic under a fixed seed in eval mode, and identical scores after its weights go
through the checkpoint files.
"""

from __future__ import annotations

from dataclasses import fields

import numpy as np
import pytest
import torch

from fave.data.batching import Batch, eval_batches, train_batches
from fave.data.dataset import IdMap, SequenceData, Split
from fave.evaluation.evaluator import evaluate
from fave.models.base import SeqRecModel
from fave.models.registry import MODELS, build_model, model_class
from fave.training.checkpoint import load_weights, save_weights

N_USERS, N_ITEMS, MAX_LEN = 12, 20, 8

# Small values for whichever of these fields a model's Config declares.
SMALL = {
    "hidden": 16,
    "embedding": 16,
    "heads": 2,
    "layers": 1,
    "max_len": MAX_LEN,
    "decoder_block": 1,
    "decoder_hidden": [16, 16],
    "sample_steps": 2,
    "stage1_eval_steps": 2,
    "steps": 4,
    "diffusion_steps": 4,
    "user_slots": 64,
    "window": 3,
    "vertical": 2,
    "horizontal": 4,
}


def small_params(name: str) -> dict:
    declared = {f.name for f in fields(model_class(name).Config)}
    return {k: v for k, v in SMALL.items() if k in declared}


def build(name: str, seed: int = 0) -> SeqRecModel:
    torch.manual_seed(seed)
    return build_model(name, small_params(name), N_ITEMS)


@pytest.fixture(scope="module")
def split() -> Split:
    rng = np.random.default_rng(0)
    seqs = [rng.integers(1, N_ITEMS + 1, size=rng.integers(4, 11)) for _ in range(N_USERS)]
    ids = IdMap([f"u{u}" for u in range(N_USERS)], [f"i{i}" for i in range(1, N_ITEMS + 1)])
    return Split(SequenceData("tiny", seqs, N_ITEMS, ids))


def eval_batch(split: Split) -> Batch:
    es = split.eval_set("test")
    _, batch = next(eval_batches(es.users, es.inputs, es.targets, MAX_LEN, N_USERS))
    return batch


def scores(model: SeqRecModel, batch: Batch, seed: int = 0) -> torch.Tensor:
    model.eval()
    torch.manual_seed(seed)
    with torch.no_grad():
        return model.score_all(batch)


NAMES = sorted(MODELS)


def test_registry_names_resolve() -> None:
    for name in NAMES:
        cls = model_class(name)
        assert issubclass(cls, SeqRecModel), name
        assert hasattr(cls, "Config"), name


@pytest.mark.parametrize("name", NAMES)
def test_loss_is_finite_with_finite_grads_in_every_stage(name: str, split: Split) -> None:
    model = build(name)
    if not model.trainable:
        pytest.skip(f"{name} has nothing to train")
    model.observe(split.train)
    assert model.default_layout in ("prefix", "parallel")
    for plan in model.stages():
        model.begin_stage(plan.name)
        model.train()
        rng = np.random.default_rng(1)
        batch = next(train_batches(split.train, model.default_layout, MAX_LEN, 8, rng))
        torch.manual_seed(1)
        out = model.loss(batch)
        assert out.loss.ndim == 0 and torch.isfinite(out.loss), (plan.name, out.loss)
        assert all(np.isfinite(v) for v in out.parts.values()), out.parts
        model.zero_grad(set_to_none=True)
        out.loss.backward()
        trained = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
        assert trained, f"{name} stage {plan.name} trains no parameter"
        with_grad = [(n, p.grad) for n, p in trained if p.grad is not None]
        assert with_grad, f"{name} stage {plan.name}: no parameter received a gradient"
        for n, g in with_grad:
            assert torch.isfinite(g).all(), f"{name} stage {plan.name}: non-finite grad in {n}"
        assert any(g.abs().sum() > 0 for _, g in with_grad), f"{name} stage {plan.name}: all grads are zero"


@pytest.mark.parametrize("name", NAMES)
def test_every_trainable_parameter_gets_a_gradient_in_every_stage(name: str, split: Split) -> None:
    # torchrun's DistributedDataParallel reduces every trainable parameter's gradient after each
    # backward pass (fave.training.parallel.wrap); one left out of the graph would stall it
    model = build(name)
    if not model.trainable:
        pytest.skip(f"{name} has nothing to train")
    model.observe(split.train)
    for plan in model.stages():
        model.begin_stage(plan.name)
        model.train()
        batch = next(train_batches(split.train, model.default_layout, MAX_LEN, 8, np.random.default_rng(1)))
        trained = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
        grads = torch.autograd.grad(model.loss(batch).loss, [p for _, p in trained], allow_unused=True)
        missing = [n for (n, _), g in zip(trained, grads, strict=True) if g is None]
        assert not missing, f"{name} stage {plan.name}: no gradient for {missing}"


@pytest.mark.parametrize("name", NAMES)
def test_random_scores_says_whether_scoring_draws(name: str, split: Split) -> None:
    # a torchrun evaluation splits the users over the ranks only when scoring draws nothing
    model = build(name)
    model.observe(split.train)
    batch = eval_batch(split)
    differ = not torch.equal(scores(model, batch, seed=0), scores(model, batch, seed=1))
    assert differ == model.random_scores, f"{name}: random_scores={model.random_scores}, scores differ: {differ}"


@pytest.mark.parametrize("name", NAMES)
def test_scores_are_finite_and_deterministic_in_eval_mode(name: str, split: Split) -> None:
    model = build(name)
    model.observe(split.train)
    batch = eval_batch(split)
    s = scores(model, batch)
    assert s.shape == (N_USERS, N_ITEMS)
    assert torch.isfinite(s).all()
    assert torch.equal(s, scores(model, batch))
    vectors = model.item_representation()
    assert vectors is None or (vectors.shape[0] == N_ITEMS and vectors.ndim == 2)


NOT_INNER_PRODUCT = {"stosa", "autoseqrec", "pop"}  # -W2 distance; a mix of decoders; counts


@pytest.mark.parametrize("name", NAMES)
def test_inner_product_models_split_their_scores_into_query_and_item_sides(name: str, split: Split) -> None:
    """score_all = query_vector @ W^T + b under the same seed: what an approximate index searches."""
    model = build(name)
    model.observe(split.train)
    for plan in model.stages():  # after training (FAVE: Stage 2's one-step inference)
        model.begin_stage(plan.name)
    side = model.item_side()
    if name in NOT_INNER_PRODUCT:
        assert side is None
        return
    assert side is not None and side.weight.shape[0] == N_ITEMS
    assert side.bias is None or side.bias.shape == (N_ITEMS,)
    batch = eval_batch(split)
    torch.manual_seed(0)
    with torch.no_grad():
        q = model.eval().query_vector(batch)
        rebuilt = q @ side.weight.T + (0 if side.bias is None else side.bias)
    assert q.shape == (N_USERS, side.weight.shape[1])
    torch.testing.assert_close(rebuilt, scores(model, batch), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("name", NAMES)
def test_weights_round_trip_through_the_checkpoint(name: str, split: Split, tmp_path) -> None:
    model = build(name, seed=0)
    model.observe(split.train)
    for plan in model.stages():  # leave the model where a finished training leaves it
        model.begin_stage(plan.name)
    if model.trainable:  # one optimizer step, so the saved weights are not the initial ones
        opt = torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=0.1)
        model.train()
        batch = next(train_batches(split.train, model.default_layout, MAX_LEN, 8, np.random.default_rng(2)))
        model.loss(batch).loss.backward()
        opt.step()
    batch = eval_batch(split)
    before = scores(model, batch)
    save_weights(model, tmp_path / "w.safetensors")

    fresh = build(name, seed=123)  # different initial weights
    fresh.observe(split.train)
    if any(p.numel() for p in fresh.parameters()):
        assert not torch.equal(scores(fresh, batch), before)
    load_weights(fresh, tmp_path / "w.safetensors")
    assert torch.equal(scores(fresh, batch), before)


@pytest.mark.parametrize("name", NAMES)
def test_runs_through_the_evaluator(name: str, split: Split) -> None:
    model = build(name)
    model.train()
    res = evaluate(model, split.eval_set("valid"), MAX_LEN, batch_size=5, diversity_k=3)
    assert model.training  # mode restored
    for protocol in ("paper", "masked"):
        ranks = res.ranks[protocol]
        assert ranks.shape == (N_USERS,) and ranks.min() >= 1 and ranks.max() <= N_ITEMS
        assert 0.0 <= res.metrics[protocol]["HR@10"] <= 1.0
    assert (res.ranks["masked"] <= res.ranks["paper"]).all()  # removing items never lowers a rank


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU (run on a GPU machine)")
@pytest.mark.parametrize("name", NAMES)
def test_trains_and_evaluates_on_cuda(name: str, split: Split, tmp_path) -> None:
    from fave.config import DataConfig, RunConfig, TrainConfig
    from fave.training.run import train_run

    stages = {"stage1_epochs": 1, "stage2_epochs": 1} if name == "fave" else {}
    config = RunConfig(
        model=name,
        dataset="tiny",
        data=DataConfig(max_len=MAX_LEN),
        train=TrainConfig(epochs=1, batch_size=8, eval_batch_size=8, device="cuda"),
        params={**small_params(name), **stages},
    )
    metrics = train_run(config, tmp_path / "run", quiet=True, split=split)
    for protocol in ("paper", "masked"):
        assert 0.0 <= metrics["test"][protocol]["HR@20"] <= 1.0
