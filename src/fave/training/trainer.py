"""The model-agnostic trainer: stages, early stopping, best checkpoint, resume.

For each stage the model declares (``model.stages()``), the trainer builds a (fused) Adam optimizer
over the parameters that require grad, trains epoch by epoch, validates every
``eval_every`` epochs, keeps the best weights by the validation metric and stops after
``patience`` validations without improvement. After every validation it writes
``state.pt`` atomically, so an interrupted run resumes from its last validated epoch.

A stage's progress is a :class:`StageProgress`; ``state.pt`` is a :class:`ResumeState` written
as plain tensors, numbers, strings and bytes (readable with ``torch.load(weights_only=True)``).

Under torchrun every process runs this same loop on its part of each global batch
(:mod:`fave.training.parallel`); rank 0 alone reads and writes ``state.pt`` and the best weights,
the others receive the resume state from it, and validation gives every rank the same numbers,
so all take the same early-stopping decisions.
"""

from __future__ import annotations

import contextlib
import io
import math
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm import tqdm

from fave.config import RunConfig, TrainConfig
from fave.data.batching import Batch, count_batches, train_batches
from fave.data.dataset import EvalSet, Split
from fave.distributed import SINGLE, World
from fave.errors import FaveError
from fave.evaluation.evaluator import evaluate
from fave.evaluation.metrics import KS
from fave.models.base import SeqRecModel, StagePlan
from fave.rundir import BEST, STATE, load_state, save_state, save_weights, stage_weights
from fave.training.average import WeightAverage
from fave.training.parallel import BatchPlan, LossStep, RandomStreams, wrap
from fave.training.schedule import lr_factor


@dataclass
class StageResult:
    name: str
    epochs: int
    seconds: float
    best_epoch: int
    best_metric: float
    stop_reason: str = ""  # patience (early stopping) | epochs (all planned epochs ran) | budget (time_budget_s)


@dataclass
class TrainResult:
    stages: list[StageResult] = field(default_factory=list)

    @property
    def seconds(self) -> float:
        return sum(s.seconds for s in self.stages)


@dataclass
class StageProgress:
    """Where one stage stands after ``epoch`` epochs: what resuming it needs besides the weights and the optimizer."""

    epoch: int = 0  # epochs trained
    best: float = -math.inf  # the shown validation metric at the best checkpoint
    best_values: dict[str, float] = field(default_factory=dict)  # each selection metric's best so far
    best_epoch: int = -1  # 0-based epoch of the best checkpoint (-1: none yet)
    bad: int = 0  # validations since the last improvement
    seconds: float = 0.0  # training time spent in the stage (validation excluded)
    best_blob: bytes | None = None  # the best checkpoint's weights (torch.save of the state dict)
    stop_reason: str = ""  # set once the stage has stopped: patience | epochs | budget
    average: list[torch.Tensor] = field(default_factory=list)  # train.ema_epochs: the weight average so far
    average_steps: int = 0  # the optimizer steps it has seen

    def to_state(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_state(cls, state: dict[str, Any], shown: str) -> StageProgress:
        """From ``state.pt``'s keys; files written before ``best_values``/``stop_reason`` existed resume too."""
        best = state["best"]
        return cls(
            epoch=state["epoch"],
            best=best,
            best_values=dict(state.get("best_values") or {shown: best}),
            best_epoch=state["best_epoch"],
            bad=state["bad"],
            seconds=state["seconds"],
            best_blob=state["best_blob"],
            stop_reason=state.get("stop_reason", ""),
            average=list(state.get("average") or []),
            average_steps=state.get("average_steps", 0),
        )


@dataclass
class ResumeState:
    """``state.pt``: the stage in progress (``progress`` and ``optimizer`` set) or the next stage to start.

    ``stage`` counts from 0; when every stage has finished it equals the number of stages.
    """

    stage: int
    done: list[StageResult]
    model: dict[str, torch.Tensor]
    optimizer: dict[str, Any] | None = None
    progress: StageProgress | None = None

    def to_state(self) -> dict[str, Any]:
        state: dict[str, Any] = {
            "stage": self.stage,
            "epoch": self.progress.epoch if self.progress else 0,
            "done": [asdict(s) for s in self.done],
            "model": self.model,
        }
        if self.progress is not None:
            state.update(self.progress.to_state(), optimizer=self.optimizer)
        return state

    @classmethod
    def from_state(cls, state: dict[str, Any], shown: str) -> ResumeState:
        in_stage = "optimizer" in state
        return cls(
            stage=state["stage"],
            done=[StageResult(**s) for s in state["done"]],
            model=state["model"],
            optimizer=state["optimizer"] if in_stage else None,
            progress=StageProgress.from_state(state, shown) if in_stage else None,
        )


@dataclass
class EpochLoss:
    """Sums over one epoch's batches: the loss and its named parts."""

    total: float = 0.0
    parts: dict[str, float] = field(default_factory=dict)
    batches: int = 0

    def add(self, loss: float, parts: dict[str, float], share: float = 1.0) -> None:
        """One part's loss, weighted by its ``share`` of the batch's targets (1.0: the whole batch)."""
        self.total += loss if share == 1.0 else share * loss
        for k, v in parts.items():
            self.parts[k] = self.parts.get(k, 0.0) + (v if share == 1.0 else share * v)

    def summed(self, world: World) -> EpochLoss:
        """The sums over every rank's parts: the whole batches' losses, as one process would log them."""
        if not world.distributed:
            return self
        keys = list(self.parts)
        total, *parts = world.sum([self.total, *(self.parts[k] for k in keys)])
        return EpochLoss(total, dict(zip(keys, parts, strict=True)), self.batches)

    def describe(self) -> str:
        n = max(1, self.batches)
        return f"loss={self.total / n:.4f} " + " ".join(f"{k}={v / n:.4f}" for k, v in self.parts.items())


def _state_bytes(model: SeqRecModel) -> bytes:
    buf = io.BytesIO()
    torch.save(model.state_dict(), buf)
    return buf.getvalue()


def _restore(model: SeqRecModel, blob: bytes) -> None:
    model.load_state_dict(torch.load(io.BytesIO(blob), weights_only=True, map_location="cpu"))


def adam(params: list[torch.nn.Parameter], lr: float, weight_decay: float, beta2: float = 0.999) -> torch.optim.Adam:
    """Adam with torch's fused kernel: the same update as torch's default loop over the tensors, in
    one pass. The optimizer step alone is several times faster on CPU for the flow models, whose
    history decoder has 25M weights (``results/adam-step/``, made by ``scripts/adam_step.py``); a
    whole training step much less, since the forward and backward passes dominate it."""
    return torch.optim.Adam(params, lr=lr, betas=(0.9, beta2), weight_decay=weight_decay, fused=True)


def selection_keys(tc: TrainConfig) -> list[str]:
    """The validation metrics that can make a checkpoint the best: ``select_metric``, or for ``any``
    every HR/NDCG@K (the authors' rule: better when any of them beats its own best)."""
    if tc.select_metric == "any":
        return [f"{m}@{k}" for m in ("HR", "NDCG") for k in KS]
    return [tc.select_metric]


def update_best(metrics: dict[str, float], best: dict[str, float], keys: list[str]) -> bool:
    """Raise ``best`` to ``metrics`` where they beat it (each metric its own best); True if any did."""
    better = [k for k in keys if metrics[k] > best.get(k, -math.inf)]
    for k in better:
        best[k] = metrics[k]
    return bool(better)


def validation_users(split: Split, tc: TrainConfig) -> EvalSet:
    """The users that select the model: all of them, or a fixed random ``tc.val_users`` of them."""
    return split.eval_set("valid").sample(tc.val_users, tc.eval_seed)


class Trainer:
    """Trains ``model`` on ``split.train``; validation on ``split.eval_set('valid')``."""

    def __init__(
        self,
        model: SeqRecModel,
        split: Split,
        config: RunConfig,
        run_dir: Path | None = None,
        log: Callable[[str], None] = print,
        progress: bool = True,
        world: World = SINGLE,
    ) -> None:
        """``world``: this process's place in a torchrun run; only rank 0 writes ``run_dir``."""
        self.model, self.split, self.config = model, split, config
        self.run_dir, self.log, self.progress, self.world = run_dir, log, progress, world
        self.plan = BatchPlan(world, config.train.micro_batches)
        self.plan.check(config.train.batch_size)
        self.loss_step: torch.nn.Module = LossStep(model)  # per stage: DDP over the stage's trainable parameters
        self.average: WeightAverage | None = None  # per stage, when train.ema_epochs > 0
        self.layout = config.train.layout if config.train.layout != "auto" else model.default_layout
        if self.layout == "parallel" and model.default_layout == "prefix":
            raise FaveError(
                "train.layout=parallel needs a causal model, but this one is built for the prefix recipe "
                "(its attention would see the targets); set params.recipe=parallel instead"
            )
        tc = config.train
        self.state_path = run_dir / STATE if run_dir else None
        self.writes = world.main and run_dir is not None  # whether this process writes the run directory
        self.keys = selection_keys(tc)  # the metrics that can make a checkpoint the best
        self.shown = "NDCG@20" if tc.select_metric == "any" else tc.select_metric  # the one logged and recorded

    def validate(self) -> dict[str, dict[str, float]]:
        tc = self.config.train
        users = validation_users(self.split, tc)
        res = evaluate(
            self.model, users, self.config.data.max_len, tc.eval_batch_size, seed=tc.eval_seed, world=self.world
        )
        self.model.observe(self.split.train)
        return res.metrics

    def fit(self) -> TrainResult:
        """Every stage in turn, from where ``state.pt`` left off; the model ends with each stage's best weights."""
        if self.config.train.threads > 0:
            torch.set_num_threads(self.config.train.threads)
        state = self._load_state()
        result = TrainResult(list(state.done) if state else [])
        if not self.model.trainable:  # nothing to fit, but the saved run must hold what it observed (pop's counts)
            self.model.observe(self.split.train)
            return result
        plans = self.model.stages()
        for index, plan in enumerate(plans):
            self.model.begin_stage(plan.name)
            if state and index < state.stage:  # finished before the interruption
                continue
            resume, state = (state, None) if state and index == state.stage else (None, state)
            result.stages.append(self._fit_stage(index, plan, resume, result.stages))
            if index + 1 < len(plans) and self.writes and self.run_dir:  # a later run may start from this stage
                save_weights(self.model, self.run_dir / stage_weights(plan.name))
        if state is not None:  # every stage had finished before the interruption
            self.model.load_state_dict(state.model)
        return result

    def _load_state(self) -> ResumeState | None:
        """Rank 0's ``state.pt`` on every rank (the others need not see the run directory)."""
        path = self.state_path
        saved = self.world.on_main(lambda: load_state(path) if path else None)
        if saved is None:
            return None
        self.log(f"resuming from {self.state_path}: stage {saved['stage']} epoch {saved['epoch']}")
        return ResumeState.from_state(saved, self.shown)

    def _save_state(self, state: ResumeState) -> None:
        if self.writes and self.state_path:
            save_state(self.state_path, state.to_state())

    def _fit_stage(
        self, index: int, plan: StagePlan, resume: ResumeState | None, done: list[StageResult]
    ) -> StageResult:
        """Stage ``index`` from its start or ``resume``; ends on its best weights, ``state.pt`` on the next stage."""
        tc = self.config.train
        self.model.observe(self.split.train)
        params = [p for p in self.model.parameters() if p.requires_grad]
        wd = tc.weight_decay if plan.weight_decay is None else plan.weight_decay
        opt = adam(params, lr=tc.lr * plan.lr_scale, weight_decay=wd, beta2=tc.adam_beta2)
        epochs = plan.epochs if plan.epochs is not None else tc.epochs
        progress = StageProgress()
        if resume is not None:
            self.model.load_state_dict(resume.model)
            if resume.progress is not None:  # else the previous stage had finished: this one starts afresh
                opt.load_state_dict(resume.optimizer)
                progress = resume.progress
        self.average = None
        max_len = self.config.data.max_len
        if tc.ema_epochs > 0:  # validated, selected and saved instead of the last step's weights
            per_epoch = count_batches(self.split.train, self.layout, tc.batch_size, max_len, tc.windows)
            self.average = WeightAverage(params, tc.ema_epochs * per_epoch, progress.average, progress.average_steps)
        # the stage's trainable parameters, wrapped after resuming (DDP starts every rank from rank 0's weights)
        self.loss_step = wrap(LossStep(self.model), self.world, self.model.device)
        if not progress.stop_reason and progress.bad >= tc.patience:
            progress.stop_reason = "patience"  # interrupted after early stopping (a state from before stop_reason)
        start = epochs if progress.stop_reason else progress.epoch
        bar = tqdm(total=epochs, initial=start, desc=plan.name, unit="epoch", disable=not self.progress)
        for epoch in range(start, epochs):
            bar.update(1)
            if self._epoch(opt, index, plan, epoch, epochs, progress, bar, done):
                break
        bar.close()
        if progress.best_blob is not None:
            _restore(self.model, progress.best_blob)
        stage = StageResult(
            plan.name,
            progress.epoch if epochs else 0,
            progress.seconds,
            progress.best_epoch + 1,
            progress.best,
            progress.stop_reason or "epochs",
        )
        self._save_state(ResumeState(index + 1, [*done, stage], self.model.state_dict()))
        return stage

    def _epoch(
        self,
        opt: torch.optim.Optimizer,
        index: int,
        plan: StagePlan,
        epoch: int,
        epochs: int,
        progress: StageProgress,
        bar: tqdm,
        done: list[StageResult],
    ) -> bool:
        """Train epoch ``epoch``; validate, log and save ``state.pt`` when it is due. True when the stage stops."""
        tc = self.config.train
        t0 = time.perf_counter()
        left = tc.time_budget_s - progress.seconds if tc.time_budget_s else float("inf")
        loss = self._train_epoch(opt, index, epoch, plan.name, left, epochs)
        progress.seconds += self.world.max(time.perf_counter() - t0)  # one clock, so every rank stops alike
        progress.epoch = epoch + 1
        last = epoch + 1 == epochs or bool(tc.time_budget_s and progress.seconds >= tc.time_budget_s)
        if (epoch + 1) % tc.eval_every and not last:
            return False
        best_before = progress.best
        value = self._select(progress, epoch)
        bar.set_postfix_str(f"valid {self.shown}={value:.4f} best={max(best_before, value):.4f}")
        self.log(
            f"stage={plan.name} epoch={epoch + 1} {loss.describe()} "
            f"valid_{tc.select_protocol}_{self.shown}={value:.4f} best={progress.best:.4f}@{progress.best_epoch + 1} "
            f"time={progress.seconds:.1f}s"
        )
        if progress.bad >= tc.patience or last:
            progress.stop_reason = self._stop_reason(plan, progress, epoch, epochs)
        if self.average is not None:
            progress.average, progress.average_steps = self.average.shadow, self.average.steps
        self._save_state(ResumeState(index, done, self.model.state_dict(), opt.state_dict(), progress))
        return bool(progress.stop_reason)

    def _select(self, progress: StageProgress, epoch: int) -> float:
        """Validate; keep the weights as the best (and ``best.safetensors``) when a selection metric improved.

        Returns the shown metric's value."""
        tc = self.config.train
        with self.average.applied() if self.average is not None else contextlib.nullcontext():
            metrics = self.validate()[tc.select_protocol]
            value = metrics[self.shown]
            if update_best(metrics, progress.best_values, self.keys):
                progress.best, progress.best_epoch, progress.bad = value, epoch, 0
                progress.best_blob = _state_bytes(self.model)
                if self.writes and self.run_dir:
                    save_weights(self.model, self.run_dir / BEST)
            else:
                progress.bad += 1
        return value

    def _stop_reason(self, plan: StagePlan, progress: StageProgress, epoch: int, epochs: int) -> str:
        """Why the stage stops after ``epoch``; warns when the time budget cut a still improving stage."""
        tc = self.config.train
        if progress.bad >= tc.patience:
            return "patience"
        if epoch + 1 == epochs:
            return "epochs"
        if progress.bad == 0:
            self.log(
                f"warning: stage {plan.name} ended by train.time_budget_s={tc.time_budget_s:g} at epoch "
                f"{epoch + 1} while validation was still improving; raise the budget or set it to 0"
            )
        return "budget"

    def _train_epoch(
        self,
        opt: torch.optim.Optimizer,
        stage: int,
        epoch: int,
        name: str,
        budget_s: float = float("inf"),
        epochs: int = 1,
    ) -> EpochLoss:
        """One pass over the training batches; stops early once ``budget_s`` seconds are spent.

        Every rank draws the same batches (``rng``); its parts draw their own random streams."""
        start = time.perf_counter()
        cfg, tc = self.config, self.config.train
        seed = (cfg.seed * 1_000_003 + stage * 10_007 + epoch) % (2**31)
        # a resumed epoch draws exactly what it would have drawn
        streams = RandomStreams(seed, self.plan.streams, self.model.device)
        rng = np.random.default_rng(seed)
        self.model.train()
        batches = train_batches(
            self.split.train,
            self.layout,
            cfg.data.max_len,
            tc.batch_size,
            rng,
            tc.windows,
            order_by=tc.batch_order,
            random_offsets=tc.window_offset == "random",
        )
        total = count_batches(self.split.train, self.layout, tc.batch_size, cfg.data.max_len, tc.windows)
        base_lrs = [g.get("initial_lr", g["lr"]) for g in opt.param_groups]
        for g, lr in zip(opt.param_groups, base_lrs, strict=True):
            g["initial_lr"] = lr  # the stage's lr, which the schedule scales
        loss = EpochLoss()
        bar = tqdm(batches, total=total, desc=f"{name} {epoch + 1}", leave=False, disable=not self.progress)
        for i, batch in enumerate(bar):
            factor = lr_factor(tc, epoch, i, total, epochs)
            for g, lr in zip(opt.param_groups, base_lrs, strict=True):
                g["lr"] = lr * factor
            opt.zero_grad(set_to_none=True)
            self._backward(batch, streams, loss)
            if tc.grad_clip > 0:
                torch.nn.utils.clip_grad_norm_([p for g in opt.param_groups for p in g["params"]], tc.grad_clip)
            opt.step()
            if self.average is not None:
                self.average.update()
            loss.batches += 1
            bar.set_postfix(loss=f"{loss.total / loss.batches:.4f}")
            if budget_s < float("inf") and self.world.max(time.perf_counter() - start) >= budget_s:
                break  # the stage's time budget ends inside this epoch (by the slowest rank's clock)
        return loss.summed(self.world)

    def _backward(self, batch: Batch, streams: RandomStreams, loss: EpochLoss) -> None:
        """The gradient of ``batch``'s loss from this process's parts (all-reduced over the ranks by DDP
        on the last part's backward); their losses are added to ``loss``, weighted by their shares."""
        parts = self.plan.mine(batch)
        for k, part in enumerate(parts):
            last = k == len(parts) - 1
            no_sync = getattr(self.loss_step, "no_sync", None)  # DDP: reduce once, after the last part
            sync = contextlib.nullcontext() if last or no_sync is None else no_sync()
            with streams.use(part.stream), sync:
                weighted, value, named = self.loss_step(part.batch.to(self.model.device), self.world.size * part.share)
                weighted.backward()
            loss.add(float(value), named, part.share)
