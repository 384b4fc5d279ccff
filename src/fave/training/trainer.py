"""The model-agnostic trainer: stages, early stopping, best checkpoint, resume.

For each stage the model declares (``model.stages()``), the trainer builds a (fused) Adam optimizer
over the parameters that require grad, trains epoch by epoch, validates every
``eval_every`` epochs, keeps the best weights by the validation metric and stops after
``patience`` validations without improvement. After every validation it writes
``state.pt`` atomically, so an interrupted run resumes from its last validated epoch.
"""

from __future__ import annotations

import io
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from fave.config import RunConfig, TrainConfig
from fave.data.batching import count_batches, train_batches
from fave.data.dataset import EvalSet, Split
from fave.errors import FaveError
from fave.evaluation.evaluator import evaluate
from fave.evaluation.metrics import KS
from fave.models.base import SeqRecModel
from fave.rundir import BEST, STATE, load_state, save_state, save_weights
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


def _state_bytes(model: SeqRecModel) -> bytes:
    buf = io.BytesIO()
    torch.save(model.state_dict(), buf)
    return buf.getvalue()


def _restore(model: SeqRecModel, blob: bytes) -> None:
    model.load_state_dict(torch.load(io.BytesIO(blob), weights_only=True, map_location="cpu"))


def adam(params: list[torch.nn.Parameter], lr: float, weight_decay: float) -> torch.optim.Adam:
    """Adam with torch's fused kernel: the same update as torch's default loop over the tensors, in
    one pass. The optimizer step alone is several times faster on CPU for the flow models, whose
    history decoder has 25M weights (``results/adam-step/``, made by ``scripts/adam_step.py``); a
    whole training step much less, since the forward and backward passes dominate it."""
    return torch.optim.Adam(params, lr=lr, weight_decay=weight_decay, fused=True)


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
    ) -> None:
        self.model, self.split, self.config = model, split, config
        self.run_dir, self.log, self.progress = run_dir, log, progress
        self.layout = config.train.layout if config.train.layout != "auto" else model.default_layout
        if self.layout == "parallel" and model.default_layout == "prefix":
            raise FaveError(
                "train.layout=parallel needs a causal model, but this one is built for the prefix recipe "
                "(its attention would see the targets); set params.recipe=parallel instead"
            )

    def validate(self) -> dict[str, dict[str, float]]:
        tc = self.config.train
        users = validation_users(self.split, tc)
        res = evaluate(self.model, users, self.config.data.max_len, tc.eval_batch_size, seed=tc.eval_seed)
        self.model.observe(self.split.train)
        return res.metrics

    def fit(self) -> TrainResult:
        tc = self.config.train
        if tc.threads > 0:
            torch.set_num_threads(tc.threads)
        state_path = self.run_dir / STATE if self.run_dir else None
        state = load_state(state_path) if state_path else None
        result = TrainResult([StageResult(**s) for s in state["done"]] if state else [])
        if state:
            self.log(f"resuming from {state_path}: stage {state['stage']} epoch {state['epoch']}")
        if not self.model.trainable:  # nothing to fit, but the saved run must hold what it observed (pop's counts)
            self.model.observe(self.split.train)
            return result
        for si, plan in enumerate(self.model.stages()):
            if state and si < state["stage"]:
                self.model.begin_stage(plan.name)
                continue
            self.model.begin_stage(plan.name)
            self.model.observe(self.split.train)
            params = [p for p in self.model.parameters() if p.requires_grad]
            wd = tc.weight_decay if plan.weight_decay is None else plan.weight_decay
            opt = adam(params, lr=tc.lr * plan.lr_scale, weight_decay=wd)
            epochs = plan.epochs if plan.epochs is not None else tc.epochs
            start, best, best_epoch, bad, seconds, best_blob = 0, -math.inf, -1, 0, 0.0, None
            best_values: dict[str, float] = {}  # each selection metric's best so far
            keys, shown = selection_keys(tc), "NDCG@20" if tc.select_metric == "any" else tc.select_metric
            if state and si == state["stage"] and "optimizer" not in state:
                self.model.load_state_dict(state["model"])  # previous stage finished
                state = None
            if state and si == state["stage"]:
                self.model.load_state_dict(state["model"])
                opt.load_state_dict(state["optimizer"])
                start, best, best_epoch, bad, seconds = (
                    state["epoch"],
                    state["best"],
                    state["best_epoch"],
                    state["bad"],
                    state["seconds"],
                )
                best_blob = state["best_blob"]
                best_values = dict(state.get("best_values") or {shown: best})
                state = None
            stopped, reason = False, "epochs"
            epoch = start - 1
            if bad >= tc.patience:  # interrupted after early stopping, before the stage was closed
                start = epochs
            bar = tqdm(total=epochs, initial=start, desc=plan.name, unit="epoch", disable=not self.progress)
            for epoch in range(start, epochs):
                bar.update(1)
                t0 = time.perf_counter()
                left = tc.time_budget_s - seconds if tc.time_budget_s else float("inf")
                loss_sum, parts_sum, n = self._train_epoch(opt, si, epoch, plan.name, left, epochs)
                seconds += time.perf_counter() - t0
                last = epoch + 1 == epochs or (tc.time_budget_s and seconds >= tc.time_budget_s)
                if (epoch + 1) % tc.eval_every and not last:
                    continue
                metrics = self.validate()
                value = metrics[tc.select_protocol][shown]
                bar.set_postfix_str(f"valid {shown}={value:.4f} best={max(best, value):.4f}")
                if update_best(metrics[tc.select_protocol], best_values, keys):
                    best, best_epoch, bad, best_blob = value, epoch, 0, _state_bytes(self.model)
                    if self.run_dir:
                        save_weights(self.model, self.run_dir / BEST)
                else:
                    bad += 1
                parts = " ".join(f"{k}={v / max(1, n):.4f}" for k, v in parts_sum.items())
                self.log(
                    f"stage={plan.name} epoch={epoch + 1} loss={loss_sum / max(1, n):.4f} {parts} "
                    f"valid_{tc.select_protocol}_{shown}={value:.4f} best={best:.4f}@{best_epoch + 1} "
                    f"time={seconds:.1f}s"
                )
                stopped = bad >= tc.patience or bool(last)
                if stopped:
                    reason = "patience" if bad >= tc.patience else "epochs" if epoch + 1 == epochs else "budget"
                    if reason == "budget" and bad == 0:
                        self.log(
                            f"warning: stage {plan.name} ended by train.time_budget_s={tc.time_budget_s:g} at epoch "
                            f"{epoch + 1} while validation was still improving; raise the budget or set it to 0"
                        )
                if state_path:
                    save_state(
                        state_path,
                        {
                            "stage": si,
                            "epoch": epoch + 1,
                            "best": best,
                            "best_values": best_values,
                            "best_epoch": best_epoch,
                            "bad": bad,
                            "seconds": seconds,
                            "best_blob": best_blob,
                            "model": self.model.state_dict(),
                            "optimizer": opt.state_dict(),
                            "done": [s.__dict__ for s in result.stages],
                        },
                    )
                if stopped:
                    break
            bar.close()
            if best_blob is not None:
                _restore(self.model, best_blob)
            if start >= epochs and bad >= tc.patience:
                reason = "patience"
            result.stages.append(
                StageResult(plan.name, epoch + 1 if epochs else 0, seconds, best_epoch + 1, best, reason)
            )
            if state_path:
                save_state(
                    state_path,
                    {
                        "stage": si + 1,
                        "epoch": 0,
                        "done": [s.__dict__ for s in result.stages],
                        "model": self.model.state_dict(),
                    },
                )
        if state is not None:  # every stage had finished before the interruption
            self.model.load_state_dict(state["model"])
        return result

    def _train_epoch(
        self,
        opt: torch.optim.Optimizer,
        stage: int,
        epoch: int,
        name: str,
        budget_s: float = float("inf"),
        epochs: int = 1,
    ) -> tuple[float, dict[str, float], int]:
        """One pass over the training batches; stops early once ``budget_s`` seconds are spent."""
        start = time.perf_counter()
        cfg, tc = self.config, self.config.train
        seed = (cfg.seed * 1_000_003 + stage * 10_007 + epoch) % (2**31)
        torch.manual_seed(seed)  # a resumed epoch draws exactly what it would have drawn
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
        loss_sum, parts_sum, n = 0.0, {}, 0
        bar = tqdm(batches, total=total, desc=f"{name} {epoch + 1}", leave=False, disable=not self.progress)
        for i, batch in enumerate(bar):
            factor = lr_factor(tc, epoch, i, total, epochs)
            for g, lr in zip(opt.param_groups, base_lrs, strict=True):
                g["lr"] = lr * factor
            out = self.model.loss(batch.to(self.model.device))
            opt.zero_grad(set_to_none=True)
            out.loss.backward()
            if tc.grad_clip > 0:
                torch.nn.utils.clip_grad_norm_([p for g in opt.param_groups for p in g["params"]], tc.grad_clip)
            opt.step()
            loss_sum += float(out.loss.detach())
            for k, v in out.parts.items():
                parts_sum[k] = parts_sum.get(k, 0.0) + v
            n += 1
            bar.set_postfix(loss=f"{loss_sum / n:.4f}")
            if time.perf_counter() - start >= budget_s:  # the stage's time budget ends inside this epoch
                break
        return loss_sum, parts_sum, n
