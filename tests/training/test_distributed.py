"""Training under torchrun: two gloo processes against one process on the same global batches.

Two worker processes (``torch.multiprocessing.spawn``, one process group for all their runs)
train a tiny SASRec and a tiny FAVE and interrupt and resume a SASRec run; the tests compare
their run directories with runs of this process. SASRec without dropout draws nothing while
training, so two processes must match one plain process; FAVE draws noise, times and anchors,
so two processes must match one process that cuts each batch into two micro-batches, each
drawing its own stream as a rank does (:mod:`fave.training.parallel`).
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from safetensors.torch import load_file

from fave.cli import main
from fave.config import DataConfig, RunConfig, TrainConfig
from fave.data.batching import Batch, parallel_batches
from fave.data.dataset import IdMap, SequenceData, Split
from fave.distributed import SINGLE, World
from fave.errors import FaveError
from fave.models.fave import FAVE
from fave.models.sasrec import SASRec
from fave.training import run as run_mod
from fave.training.parallel import BatchPlan, supervised
from fave.training.trainer import Trainer

# 25 users, batches of 8: the last batch of an epoch has one row, so rank 1's part is empty
N_USERS, N_ITEMS, MAX_LEN = 25, 20, 8
# float32: two half-batch gradients summed differ from one whole-batch gradient in the last bits,
# which Adam's normalisation carries into the weights (measured: 7e-8 relative on the losses,
# 7e-6 on the weights after 16 SASRec steps; FAVE against two micro-batches: identical)
LOSS_TOLERANCE, WEIGHT_TOLERANCE = 1e-5, 1e-4


def tiny_split() -> Split:
    rng = np.random.default_rng(0)
    seqs = [rng.integers(1, N_ITEMS + 1, size=rng.integers(4, 12)) for _ in range(N_USERS)]
    ids = IdMap([f"u{u}" for u in range(N_USERS)], [f"i{i}" for i in range(1, N_ITEMS + 1)])
    return Split(SequenceData("tiny", seqs, N_ITEMS, ids))


def run_config(model: str, params, **train) -> RunConfig:
    train = {"batch_size": 8, "eval_batch_size": 8, "lr": 1e-2, "patience": 100, "threads": 1, **train}
    return RunConfig(model, "tiny", 0, DataConfig(max_len=MAX_LEN), TrainConfig(**train), params)


def sasrec_config(**train) -> RunConfig:
    params = SASRec.Config(loss="full", hidden=16, heads=2, layers=1, dropout=0.0, max_len=MAX_LEN)
    return run_config("sasrec", params, **{"epochs": 4, **train})


def fave_config(**train) -> RunConfig:
    small = {"hidden": 16, "heads": 2, "layers": 1, "decoder_block": 1, "decoder_hidden": [16, 16]}
    params = FAVE.Config(**small, max_len=MAX_LEN)
    params.stage1_eval_steps, params.stage1_epochs, params.stage2_epochs = 2, 2, 2
    return run_config("fave", params, **{"epochs": 2, **train})


def recording_losses(out: Path, world: World):
    """Trainer._train_epoch that also writes each epoch's mean loss to ``out/losses-rankR.json``."""
    original = Trainer._train_epoch
    path = out / f"losses-rank{world.rank}.json"

    def record(self, *args, **kwargs):
        loss = original(self, *args, **kwargs)
        seen = json.loads(path.read_text()) if path.is_file() else []
        path.write_text(json.dumps([*seen, loss.total / max(1, loss.batches)]))
        return loss

    return record


def train_recorded(config: RunConfig, out: Path, world: World = SINGLE) -> dict:
    out.mkdir(parents=True, exist_ok=True)
    original = Trainer._train_epoch
    Trainer._train_epoch = recording_losses(out, world)
    try:
        return run_mod.train_run(config, out, quiet=True, split=tiny_split())
    finally:
        Trainer._train_epoch = original


def _worker(rank: int, ports: list[int], root: str) -> None:
    """One rank: SASRec and FAVE, each joining its own process group as under torchrun (from the
    environment), then an interrupted SASRec run resumed, in a group opened here (as a caller may)."""
    os.environ.update(MASTER_ADDR="127.0.0.1", RANK=str(rank), LOCAL_RANK=str(rank), WORLD_SIZE="2")
    torch.set_num_threads(1)
    world, root_path = World(rank, 2), Path(root)
    for (name, config), port in zip((("sasrec", sasrec_config()), ("fave", fave_config())), ports, strict=False):
        os.environ["MASTER_PORT"] = str(port)
        train_recorded(config, root_path / name, world)
    os.environ["MASTER_PORT"] = str(ports[2])
    dist.init_process_group("gloo", rank=rank, world_size=2)
    original = Trainer._train_epoch

    def interrupt_on_third_epoch(self, opt, stage, epoch, *args):
        if epoch == 2:
            raise KeyboardInterrupt  # on both ranks, where no collective is pending
        return original(self, opt, stage, epoch, *args)

    Trainer._train_epoch = interrupt_on_third_epoch
    try:
        run_mod.train_run(sasrec_config(), root_path / "resumed", quiet=True, split=tiny_split())
    except KeyboardInterrupt:
        pass
    Trainer._train_epoch = original
    run_mod.train_run(sasrec_config(), root_path / "resumed", quiet=True, split=tiny_split())
    assert dist.is_initialized()  # train_run left the caller's group open
    dist.destroy_process_group()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def two_ranks(tmp_path_factory) -> Path:
    """The run directories the two spawned ranks wrote."""
    root = tmp_path_factory.mktemp("ddp")
    mp.spawn(_worker, args=([free_port() for _ in range(3)], str(root)), nprocs=2, join=True)
    return root


def weights_gap(a: Path, b: Path) -> float:
    wa, wb = load_file(str(a / "model.safetensors")), load_file(str(b / "model.safetensors"))
    assert wa.keys() == wb.keys()
    return max(float((wa[k] - wb[k]).abs().max()) for k in wa)


def losses(run: Path, rank: int = 0) -> list[float]:
    return json.loads((run / f"losses-rank{rank}.json").read_text())


def assert_same_run(ddp: Path, single: Path) -> None:
    assert losses(ddp) == pytest.approx(losses(single), rel=LOSS_TOLERANCE)
    assert losses(ddp, rank=1) == losses(ddp)  # every rank logs the whole batches' losses
    assert weights_gap(ddp, single) < WEIGHT_TOLERANCE
    a, b = (json.loads((r / "metrics.json").read_text()) for r in (ddp, single))
    assert a["world_size"] == 2 and b["world_size"] == 1
    for phase in ("valid", "test"):  # sharded evaluation (SASRec) or rank 0's (FAVE), on every rank
        for protocol in ("paper", "masked"):
            assert a[phase][protocol] == pytest.approx(b[phase][protocol], abs=1e-9), (phase, protocol)
    assert (ddp / "ranks.npz").is_file() and (ddp / "state.pt").is_file()


def test_two_processes_train_sasrec_as_one_process(two_ranks: Path, tmp_path) -> None:
    train_recorded(sasrec_config(), tmp_path / "single")
    assert_same_run(two_ranks / "sasrec", tmp_path / "single")


def test_two_processes_train_fave_as_one_process_with_two_micro_batches(two_ranks: Path, tmp_path) -> None:
    train_recorded(fave_config(micro_batches=2), tmp_path / "single")
    assert len(losses(tmp_path / "single")) == 4  # two stages of two epochs
    assert_same_run(two_ranks / "fave", tmp_path / "single")


def test_an_interrupted_two_process_run_resumes_to_the_uninterrupted_one(two_ranks: Path) -> None:
    resumed, whole = two_ranks / "resumed", two_ranks / "sasrec"
    assert "resuming" in (resumed / "log.txt").read_text()
    assert weights_gap(resumed, whole) == 0.0
    a, b = (json.loads((r / "metrics.json").read_text()) for r in (resumed, whole))
    assert {k: a[k] for k in ("valid", "test")} == {k: b[k] for k in ("valid", "test")}
    assert [s["best_metric"] for s in a["stages"]] == [s["best_metric"] for s in b["stages"]]


def test_parts_weighted_by_their_targets_give_the_whole_batch_mean() -> None:
    batch = next(parallel_batches(tiny_split().train, MAX_LEN, 7, np.random.default_rng(0)))
    per_target = torch.rand(batch.targets.shape)  # a loss value for every target position

    def mean(b: Batch, values: torch.Tensor) -> float:
        return float(values[b.targets > 0].mean())

    whole = mean(batch, per_target)
    for world_size, micro in ((2, 1), (3, 1), (2, 2)):
        plan_parts = [BatchPlan(World(r, world_size), micro).mine(batch) for r in range(world_size)]
        parts = [p for ps in plan_parts for p in ps]
        assert sorted(p.stream for p in parts) == list(range(world_size * micro))
        rows = [0, *np.cumsum([len(p.batch) for p in parts])]
        values = [per_target[a:b] for a, b in zip(rows[:-1], rows[1:], strict=True)]
        assert sum(p.share * mean(p.batch, v) for p, v in zip(parts, values, strict=True)) == pytest.approx(whole)
        assert sum(supervised(p.batch) for p in parts) == supervised(batch)


def test_a_global_batch_that_does_not_split_evenly_is_refused() -> None:
    with pytest.raises(FaveError, match="batch_size=10 .* divisible by 2 process"):
        BatchPlan(World(0, 2), micro_batches=2).check(10)


TINY_CLI = ["--quiet", "--set", "epochs=1", "--set", "hidden=8", "--set", "heads=1", "--set", "layers=1"]
TINY_CLI += ["--set", "batch_size=8", "--set", "threads=1"]


def write_log(path: Path) -> Path:
    rng = np.random.default_rng(1)
    rows = ["user,item,timestamp"]
    for u in range(16):
        items = rng.choice(12, size=6, replace=False)
        rows += [f"u{u},i{i},{1000 + 10 * k}" for k, i in enumerate(items)]
    path.write_text("\n".join(rows) + "\n")
    return path


def train_command(tmp_path: Path, *extra: str) -> list[str]:
    log = write_log(tmp_path / "log.csv")
    return ["train", "--model", "sasrec", "--dataset", str(log), "--out", str(tmp_path / "run"), *TINY_CLI, *extra]


def test_an_unreachable_master_is_a_one_line_error_within_the_timeout(tmp_path, monkeypatch, capsys) -> None:
    monkeypatch.setenv("FAVE_DATA_DIR", str(tmp_path / "cache"))
    env = {"WORLD_SIZE": "2", "RANK": "1", "LOCAL_RANK": "1", "MASTER_ADDR": "127.0.0.1"}
    for k, v in {**env, "MASTER_PORT": str(free_port())}.items():  # nobody listens there
        monkeypatch.setenv(k, v)
    start = time.perf_counter()
    assert main(train_command(tmp_path, "--set", "dist_timeout_s=2")) == 2
    assert time.perf_counter() - start < 30
    err = capsys.readouterr().err.strip()
    assert err.startswith("fave: error: rank 1 of 2 could not join") and "\n" not in err, err
    assert "dist_timeout_s" in err and not (tmp_path / "run").exists()


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
def test_nccl_without_cuda_is_a_one_line_error(tmp_path, monkeypatch, capsys) -> None:
    monkeypatch.setenv("FAVE_DATA_DIR", str(tmp_path / "cache"))
    for k, v in {"WORLD_SIZE": "2", "RANK": "0", "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": "1"}.items():
        monkeypatch.setenv(k, v)
    assert main(train_command(tmp_path, "--set", "dist_backend=nccl")) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("fave: error: train.dist_backend=nccl needs CUDA") and "\n" not in err, err


def test_fave_train_nproc_launches_torchrun_on_this_machine(tmp_path, monkeypatch) -> None:
    # the launch itself is not run here (three more interpreters would double this file's time);
    # the spawned ranks above run what torchrun's workers run
    monkeypatch.setenv("FAVE_DATA_DIR", str(tmp_path / "cache"))
    calls = []
    monkeypatch.setattr(
        subprocess, "run", lambda command, check: calls.append(command) or subprocess.CompletedProcess(command, 0)
    )
    assert main(train_command(tmp_path, "--nproc", "2", "--seed", "3")) == 0
    (command,) = calls
    assert command[:5] == [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node=2"]
    assert command[5:8] == ["-m", "fave.cli", "train"] and "--nproc" not in command
    assert command[command.index("--seed") + 1] == "3" and command.count("--set") == TINY_CLI.count("--set")


def test_fave_train_nproc_checks_the_config_before_launching(tmp_path, monkeypatch, capsys) -> None:
    monkeypatch.setattr(subprocess, "run", lambda *a, **k: pytest.fail("launched"))
    assert main(train_command(tmp_path, "--nproc", "3")) == 2  # batch_size=8 over 3 processes
    err = capsys.readouterr().err.strip()
    assert "divisible by 3 process" in err and "\n" not in err
