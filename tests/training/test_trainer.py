"""Short SASRec runs through ``train_run``: the run directory, reloading, seeds and resume."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
import yaml

from fave.config import DataConfig, RunConfig, TrainConfig
from fave.data.dataset import IdMap, SequenceData, Split
from fave.models.base import StagePlan
from fave.models.sasrec import SASRec
from fave.training import run as run_mod
from fave.training import trainer as trainer_mod
from fave.training.checkpoint import load_run
from fave.training.trainer import Trainer

N_USERS, N_ITEMS = 30, 25


@pytest.fixture(scope="module")
def split() -> Split:
    rng = np.random.default_rng(0)
    seqs = [rng.integers(1, N_ITEMS + 1, size=rng.integers(4, 12)) for _ in range(N_USERS)]
    ids = IdMap([f"user{u}" for u in range(N_USERS)], [f"item{i}" for i in range(1, N_ITEMS + 1)])
    return Split(SequenceData("tiny", seqs, N_ITEMS, ids))


def config(epochs: int = 4, seed: int = 0, **train) -> RunConfig:
    train = {"batch_size": 8, "eval_batch_size": 64, "lr": 1e-2, "patience": 100, "threads": 1, **train}
    return RunConfig(
        model="sasrec",
        dataset="tiny",
        seed=seed,
        data=DataConfig(max_len=8),
        train=TrainConfig(epochs=epochs, **train),
        params=SASRec.Config(loss="full", hidden=16, heads=2, layers=1, dropout=0.2, max_len=8),  # fully resolved
    )


def outcome(metrics: dict) -> dict:
    """The parts of metrics.json that a seed determines (not the wall-clock times)."""
    stages = [{k: v for k, v in s.items() if k != "seconds"} for s in metrics["stages"]]
    return {"stages": stages, **{k: metrics[k] for k in ("valid", "test", "diversity")}}


def test_run_directory_contents(split: Split, tmp_path) -> None:
    out = tmp_path / "run"
    metrics = run_mod.train_run(config(epochs=2), out, quiet=True, split=split)
    for name in ("config.yaml", "metrics.json", "log.txt", "model.safetensors", "id_map.json"):
        assert (out / name).is_file(), name

    saved = json.loads((out / "metrics.json").read_text())
    assert saved == json.loads(json.dumps(metrics))
    for phase in ("valid", "test"):
        assert set(saved[phase]) == {"paper", "masked"}
        for protocol in ("paper", "masked"):
            assert {"HR@10", "NDCG@10", "HR@20", "NDCG@20"} <= set(saved[phase][protocol])
            assert all(0.0 <= v <= 1.0 for v in saved[phase][protocol].values())
    assert saved["seed"] == 0 and saved["train_seconds"] >= 0
    assert saved["stages"][0]["epochs"] == 2

    cfg = yaml.safe_load((out / "config.yaml").read_text())
    assert cfg["model"] == "sasrec" and cfg["train"]["epochs"] == 2 and cfg["params"]["hidden"] == 16
    id_map = json.loads((out / "id_map.json").read_text())
    assert id_map == {"num_items": N_ITEMS, "users": split.data.id_map.users, "items": split.data.id_map.items}
    log = (out / "log.txt").read_text()
    assert "stage=main epoch=1 " in log and "stage=main epoch=2 " in log and "test paper" in log


def test_load_run_reproduces_the_test_metrics(split: Split, tmp_path) -> None:
    out = tmp_path / "run"
    metrics = run_mod.train_run(config(epochs=2), out, quiet=True, split=split)
    model, cfg, id_map = load_run(out)
    assert cfg == config(epochs=2)
    assert id_map == split.data.id_map
    again = run_mod.evaluate_both(model, split, cfg)
    assert again["test"] == metrics["test"]
    assert again["valid"] == metrics["valid"]


def test_a_fixed_seed_reproduces_a_run_exactly(split: Split, tmp_path) -> None:
    a = run_mod.train_run(config(epochs=2), tmp_path / "a", quiet=True, split=split)
    b = run_mod.train_run(config(epochs=2), tmp_path / "b", quiet=True, split=split)
    c = run_mod.train_run(config(epochs=2, seed=1), tmp_path / "c", quiet=True, split=split)
    assert outcome(a) == outcome(b)
    assert outcome(a) != outcome(c)


def test_interrupted_run_resumes_to_the_same_result(split: Split, tmp_path, monkeypatch) -> None:
    reference = run_mod.train_run(config(epochs=4), tmp_path / "whole", quiet=True, split=split)

    out = tmp_path / "interrupted"
    original = Trainer._train_epoch

    def interrupt_on_third_epoch(self, opt, stage, epoch, name, *budget):
        if epoch == 2:
            raise KeyboardInterrupt
        return original(self, opt, stage, epoch, name, *budget)

    monkeypatch.setattr(Trainer, "_train_epoch", interrupt_on_third_epoch)
    with pytest.raises(KeyboardInterrupt):
        run_mod.train_run(config(epochs=4), out, quiet=True, split=split)
    assert (out / "state.pt").is_file()  # two validated epochs are worth keeping
    assert not (out / "metrics.json").exists()
    monkeypatch.setattr(Trainer, "_train_epoch", original)

    epochs_run = []

    def counting(self, opt, stage, epoch, name, *budget):
        epochs_run.append(epoch)
        return original(self, opt, stage, epoch, name, *budget)

    monkeypatch.setattr(Trainer, "_train_epoch", counting)
    resumed = run_mod.train_run(config(epochs=4), out, quiet=True, split=split)
    assert epochs_run == [2, 3]  # only the epochs that had not been validated
    log = (out / "log.txt").read_text()
    assert "resuming" in log and "epoch 2" in log
    assert outcome(resumed) == outcome(reference)


def test_a_state_file_of_the_older_layout_resumes_to_the_same_result(split: Split, tmp_path, monkeypatch) -> None:
    reference = run_mod.train_run(config(epochs=4), tmp_path / "whole", quiet=True, split=split)
    out = tmp_path / "interrupted"
    original = Trainer._train_epoch

    def interrupt_on_third_epoch(self, opt, stage, epoch, name, *budget):
        if epoch == 2:
            raise KeyboardInterrupt
        return original(self, opt, stage, epoch, name, *budget)

    monkeypatch.setattr(Trainer, "_train_epoch", interrupt_on_third_epoch)
    with pytest.raises(KeyboardInterrupt):
        run_mod.train_run(config(epochs=4), out, quiet=True, split=split)
    state = torch.load(out / "state.pt", weights_only=True)  # only plain types: the safe unpickler reads it
    assert state["stage"] == 0 and state["epoch"] == 2 and state["stop_reason"] == ""
    for key in ("best_values", "stop_reason"):  # keys added after the first state files were written
        del state[key]
    torch.save(state, out / "state.pt")
    monkeypatch.setattr(Trainer, "_train_epoch", original)
    assert outcome(run_mod.train_run(config(epochs=4), out, quiet=True, split=split)) == outcome(reference)


@pytest.mark.parametrize(
    ("train", "reason"), [({"epochs": 10, "lr": 0.0, "patience": 2}, "patience"), ({"time_budget_s": 1e-9}, "budget")]
)
def test_a_stage_interrupted_after_it_stopped_resumes_without_training(
    split: Split, tmp_path, monkeypatch, train: dict, reason: str
) -> None:
    reference = run_mod.train_run(config(**train), tmp_path / "whole", quiet=True, split=split)
    assert reference["stages"][0]["stop_reason"] == reason
    out, save = tmp_path / "interrupted", trainer_mod.save_state

    def interrupt_when_the_stage_closes(path, state):
        if state["stage"] == 1:
            raise KeyboardInterrupt
        save(path, state)

    monkeypatch.setattr(trainer_mod, "save_state", interrupt_when_the_stage_closes)
    with pytest.raises(KeyboardInterrupt):
        run_mod.train_run(config(**train), out, quiet=True, split=split)
    monkeypatch.setattr(trainer_mod, "save_state", save)
    epochs_run = []
    original = Trainer._train_epoch

    def counting(self, opt, stage, epoch, name, *budget):
        epochs_run.append(epoch)
        return original(self, opt, stage, epoch, name, *budget)

    monkeypatch.setattr(Trainer, "_train_epoch", counting)
    resumed = run_mod.train_run(config(**train), out, quiet=True, split=split)
    assert epochs_run == [] and outcome(resumed) == outcome(reference)


def test_early_stopping_after_patience_evaluations_without_improvement(split: Split, tmp_path) -> None:
    # lr = 0: the validation metric never improves on the first evaluation
    cfg = config(epochs=10, lr=0.0, patience=2)
    metrics = run_mod.train_run(cfg, tmp_path / "run", quiet=True, split=split)
    stage = metrics["stages"][0]
    assert stage["epochs"] == 3 and stage["best_epoch"] == 1


def test_a_failed_fresh_run_leaves_no_directory(split: Split, tmp_path, monkeypatch) -> None:
    def boom(self, opt, stage, epoch, name, *budget):
        raise RuntimeError("boom")

    monkeypatch.setattr(Trainer, "_train_epoch", boom)
    with pytest.raises(RuntimeError):
        run_mod.train_run(config(epochs=2), tmp_path / "run", quiet=True, split=split)
    assert not (tmp_path / "run").exists()


def test_rerunning_a_finished_run_trains_nothing_and_gives_the_same_metrics(
    split: Split, tmp_path, monkeypatch
) -> None:
    out = tmp_path / "run"
    first = run_mod.train_run(config(epochs=2), out, quiet=True, split=split)
    epochs_run = []
    original = Trainer._train_epoch

    def counting(self, opt, stage, epoch, name, *budget):
        epochs_run.append(epoch)
        return original(self, opt, stage, epoch, name, *budget)

    monkeypatch.setattr(Trainer, "_train_epoch", counting)
    again = run_mod.train_run(config(epochs=2), out, quiet=True, split=split)
    assert epochs_run == []
    assert outcome(again) == outcome(first)


TWO_STAGES = [StagePlan("a", epochs=2), StagePlan("b", epochs=2, lr_scale=0.5)]


@pytest.mark.parametrize(("stage", "epoch"), [(0, 1), (1, 0), (1, 1)])
def test_two_stage_run_resumes_at_any_point(split: Split, tmp_path, monkeypatch, stage: int, epoch: int) -> None:
    monkeypatch.setattr(SASRec, "stages", lambda self: TWO_STAGES)
    reference = run_mod.train_run(config(), tmp_path / "whole", quiet=True, split=split)
    assert [(s["name"], s["epochs"]) for s in reference["stages"]] == [("a", 2), ("b", 2)]

    original = Trainer._train_epoch
    calls = []

    def interrupt(self, opt, si, ep, name, *budget):
        if (si, ep) == (stage, epoch):
            raise KeyboardInterrupt
        return original(self, opt, si, ep, name, *budget)

    monkeypatch.setattr(Trainer, "_train_epoch", interrupt)
    out = tmp_path / "interrupted"
    with pytest.raises(KeyboardInterrupt):
        run_mod.train_run(config(), out, quiet=True, split=split)

    def counting(self, opt, si, ep, name, *budget):
        calls.append((si, ep))
        return original(self, opt, si, ep, name, *budget)

    monkeypatch.setattr(Trainer, "_train_epoch", counting)
    resumed = run_mod.train_run(config(), out, quiet=True, split=split)
    assert calls[0] == (stage, epoch)  # restarts at the interrupted epoch, not before
    assert outcome(resumed) == outcome(reference)


def test_time_budget_ends_an_epoch_early(split: Split, tmp_path) -> None:
    cfg = config(epochs=50, time_budget_s=1e-9)  # spent after the first batch
    metrics = run_mod.train_run(cfg, tmp_path / "run", split=split, quiet=True)
    assert metrics["stages"][0]["epochs"] == 1


def test_val_users_validates_on_a_fixed_subset(split: Split, tmp_path, monkeypatch) -> None:
    seen: list[np.ndarray] = []
    real = trainer_mod.evaluate

    def spy(model, users, *args, **kwargs):
        seen.append(users.users)
        return real(model, users, *args, **kwargs)

    monkeypatch.setattr(trainer_mod, "evaluate", spy)
    run_mod.train_run(config(epochs=2, val_users=7), tmp_path / "run", quiet=True, split=split)
    assert len(seen) == 2 and all(len(u) == 7 for u in seen)
    assert np.array_equal(seen[0], seen[1])  # the same users at every validation
    assert len(set(seen[0].tolist())) == 7


def test_eval_set_sample_keeps_users_inputs_and_targets_together(split: Split) -> None:
    full = split.eval_set("valid")
    sub = full.sample(5, seed=3)
    assert len(sub.users) == 5 and np.all(np.diff(sub.users) > 0)
    for u, inp, tgt in zip(sub.users, sub.inputs, sub.targets, strict=True):
        assert np.array_equal(inp, full.inputs[u]) and tgt == full.targets[u]
    assert full.sample(0, seed=3) is full and full.sample(N_USERS + 5, seed=3) is full


def test_unknown_device_is_a_clear_error() -> None:
    from fave.config import config_from_dict
    from fave.errors import FaveError

    with pytest.raises(FaveError, match="train.device must be"):
        config_from_dict({"model": "sasrec", "dataset": "tiny", "train": {"device": "gpu"}}, SASRec.Config)


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the machine without a GPU")
def test_cuda_without_a_gpu_is_a_clear_error(split: Split, tmp_path) -> None:
    from fave.errors import FaveError

    c = config(epochs=1, device="cuda")
    with pytest.raises(FaveError, match="no CUDA GPU is visible"):
        run_mod.train_run(c, tmp_path / "run", quiet=True, split=split)
    assert not (tmp_path / "run").exists()  # nothing written
    c = config(epochs=1, device="auto")
    assert run_mod.resolve_device(c.train.device).type == "cpu"


def test_fused_adam_takes_the_same_steps_as_the_default_loop() -> None:
    torch.manual_seed(0)
    start = [torch.randn(40, 16), torch.randn(16)]
    fused = [torch.nn.Parameter(p.clone()) for p in start]
    loop = [torch.nn.Parameter(p.clone()) for p in start]
    opts = trainer_mod.adam(fused, lr=1e-2, weight_decay=0.01), torch.optim.Adam(loop, lr=1e-2, weight_decay=0.01)
    assert opts[0].defaults["fused"]
    for _ in range(5):
        grads = [torch.randn_like(p) for p in start]
        for params, opt in zip((fused, loop), opts, strict=True):
            for p, g in zip(params, grads, strict=True):
                p.grad = g.clone()
            opt.step()
    for a, b, s in zip(fused, loop, start, strict=True):
        assert not torch.equal(a, s)  # the parameters moved
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)


def test_adam_beta2_reaches_the_optimizer_and_changes_the_steps(split: Split, tmp_path, monkeypatch) -> None:
    from fave.config import config_from_dict
    from fave.errors import FaveError

    made = []
    real = trainer_mod.adam

    def recording_adam(*args, **kwargs):
        made.append(real(*args, **kwargs))
        return made[-1]

    monkeypatch.setattr(trainer_mod, "adam", recording_adam)
    run_mod.train_run(config(epochs=1, adam_beta2=0.98), tmp_path / "run", quiet=True, split=split)
    assert made[0].defaults["betas"] == (0.9, 0.98)
    start = torch.randn(8, 4)  # a different second-moment decay takes different steps from the second on
    steps = []
    for beta2 in (0.999, 0.98):
        p = torch.nn.Parameter(start.clone())
        opt = real([p], lr=1e-2, weight_decay=0.0, beta2=beta2)
        for g in (torch.ones_like(start), 10 * torch.ones_like(start)):
            p.grad = g
            opt.step()
        steps.append(p.detach().clone())
    assert not torch.allclose(steps[0], steps[1])
    with pytest.raises(FaveError, match="train.adam_beta2"):
        config_from_dict({"model": "sasrec", "dataset": "tiny", "train": {"adam_beta2": 1.0}}, SASRec.Config)


def test_any_rule_selects_an_epoch_where_only_one_metric_improved() -> None:
    best = {"HR@10": 0.40, "NDCG@20": 0.20}
    better_hr = {"HR@5": 0.1, "HR@10": 0.45, "HR@20": 0.5, "NDCG@5": 0.1, "NDCG@10": 0.1, "NDCG@20": 0.15}
    one = trainer_mod.selection_keys(TrainConfig(select_metric="NDCG@20"))
    assert one == ["NDCG@20"]
    assert not trainer_mod.update_best(better_hr, dict(best), one)  # NDCG@20 fell: not better
    anyk = trainer_mod.selection_keys(TrainConfig(select_metric="any"))
    assert set(anyk) == {f"{m}@{k}" for m in ("HR", "NDCG") for k in (5, 10, 20)}
    kept = dict(best)
    assert trainer_mod.update_best(better_hr, kept, anyk)  # HR@10 rose: better under `any`
    assert kept["HR@10"] == 0.45 and kept["NDCG@20"] == 0.20  # each metric keeps its own best


@pytest.mark.parametrize(
    ("train", "reason"),
    [({}, "epochs"), ({"patience": 1, "lr": 0.0}, "patience"), ({"time_budget_s": 1e-9}, "budget")],
)
def test_metrics_json_records_why_training_ended(split: Split, tmp_path, train: dict, reason: str) -> None:
    metrics = run_mod.train_run(config(epochs=3, **train), tmp_path / "run", quiet=True, split=split)
    assert [s["stop_reason"] for s in metrics["stages"]] == [reason]
    saved = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert saved["stages"][0]["stop_reason"] == reason


def test_budget_that_cuts_an_improving_run_warns(split: Split, tmp_path) -> None:
    run_mod.train_run(config(epochs=3, time_budget_s=1e-9), tmp_path / "run", quiet=True, split=split)
    assert "still improving" in (tmp_path / "run" / "log.txt").read_text()


def test_cosine_schedule_reaches_zero_at_the_last_epoch(split: Split) -> None:
    torch.manual_seed(0)
    model = SASRec(SASRec.Config(hidden=16, heads=2, layers=1, dropout=0.0, max_len=8), N_ITEMS)
    cfg = config(epochs=2, lr_schedule="cosine", warmup_epochs=1)
    seen: list[float] = []
    orig = torch.optim.Adam.step

    def spy(self, *a, **k):
        seen.append(self.param_groups[0]["lr"])
        return orig(self, *a, **k)

    torch.optim.Adam.step = spy
    try:
        Trainer(model, split, cfg, progress=False, log=lambda _: None).fit()
    finally:
        torch.optim.Adam.step = orig
    assert max(seen) == pytest.approx(1e-2) and seen[0] < 1e-2 and seen[-1] == pytest.approx(0.0, abs=1e-12)


def test_weight_averaging_selects_the_average_and_resumes_to_the_same_result(
    split: Split, tmp_path, monkeypatch
) -> None:
    plain = run_mod.train_run(config(epochs=4), tmp_path / "plain", quiet=True, split=split)
    reference = run_mod.train_run(config(epochs=4, ema_epochs=1.0), tmp_path / "whole", quiet=True, split=split)
    assert outcome(reference)["valid"] != outcome(plain)["valid"]  # the averaged weights were validated and kept

    out = tmp_path / "interrupted"
    original = Trainer._train_epoch

    def interrupt_on_third_epoch(self, opt, stage, epoch, name, *budget):
        if epoch == 2:
            raise KeyboardInterrupt
        return original(self, opt, stage, epoch, name, *budget)

    monkeypatch.setattr(Trainer, "_train_epoch", interrupt_on_third_epoch)
    with pytest.raises(KeyboardInterrupt):
        run_mod.train_run(config(epochs=4, ema_epochs=1.0), out, quiet=True, split=split)
    state = torch.load(out / "state.pt", weights_only=True)
    assert state["average_steps"] > 0 and len(state["average"]) > 0
    monkeypatch.setattr(Trainer, "_train_epoch", original)
    resumed = run_mod.train_run(config(epochs=4, ema_epochs=1.0), out, quiet=True, split=split)
    assert outcome(resumed) == outcome(reference)
