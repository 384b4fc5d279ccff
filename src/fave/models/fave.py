"""FAVE: Flow-based Average Velocity Establishment (SIGIR 2026), two stages, one-step inference.

Stage 1 (basic manifold, Sec. 4.2): Gaussian prior, linear path, heavy-tailed times,
``L = L_rec + alpha L_tgt + beta L_src`` with ``L_rec = ||f(x_t, t, 1) - x_1||^2`` (eq. 11),
target-side CE (eq. 12) and source-side history reconstruction (eq. 13). Validated by
multi-step Euler sampling from noise.

Stage 2 (single-step consolidation, Sec. 4.3): item embeddings frozen; semantic anchor
prior ``x_0 = m * e_k`` (eq. 14); ``t ~ U(0, 1)``, r from eq. 20; average-velocity training
with a JVP along ``(v, 1, 0)``. Objectives (FAVE-NOTES sec. 4):
  - ``paper``: ``L_match + gamma L_cons + alpha L_tgt + beta L_src`` (eqs. 21-24);
  - ``consistent``: ``||f - sg(f_tgt)||^2`` with the MeanFlow target for an x_1 predictor;
  - ``authors``: the authors' code: output read as a velocity u, ``||u - v||^2 +
    gamma ||du/dt||^2``, CE/decoder on ``x_t + (1 - t) u``.
Inference (eq. 25): ``x_1 = f(x_0, 0, 1)``, one network call, scored against all items.

Stage 1 is FMRec's loss with dual time (:meth:`FlowSeqModel.matching_loss`); the Stage-2
objectives are functions of :mod:`fave.flow.meanflow`. Recipes (``prefix``, the paper's, and
``parallel``) as in :mod:`fave.models.flow_base`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from fave.data.batching import Batch
from fave.flow.meanflow import (
    FlowObjective,
    MeanFlowSample,
    consistent_objective,
    paper_objective,
    time_derivative,
    velocity_objective,
)
from fave.flow.paths import linear_path
from fave.flow.samplers import euler_x1, one_step
from fave.flow.time_samplers import end_times, uniform_times
from fave.models.base import LossOutput, StagePlan
from fave.models.flow_backbone import BackboneConfig
from fave.models.flow_base import RECIPES, FlowSeqModel, Targets


@dataclass
class FAVEConfig(BackboneConfig):
    max_len: int = 50  # paper
    recipe: str = "parallel"  # parallel (fast, causal) | prefix (paper: one sample per prefix)
    stage: str = "both"  # 1 | 2 | both
    alpha: float = 0.5  # paper: weight of L_tgt (CE)
    beta: float = 0.2  # paper: weight of L_src (history reconstruction)
    gamma: float = 0.1  # paper: weight of L_cons
    p_keep: float = 0.75  # paper: anchor retention rate p (Bernoulli mask)
    p_keep_infer: float = -1.0  # retention at inference (-1: same as p_keep; authors: differs)
    p_end: float = 0.75  # eq. 20: probability that r = 1 (authors' ML-100k config)
    mode_scale: float = 1.0  # heavy-tailed "mode" time sampler, s = 1 (authors' code)
    objective: str = "paper"  # paper | consistent | authors
    use_match: bool = True  # ablation "w/o L_match"
    use_cons: bool = True  # ablation "w/o L_cons"
    prior: str = "anchor"  # anchor | gaussian (ablation "w/o anchor prior")
    anchor_positions: str = "history"  # history (paper) | padded (authors' code: padding too)
    inference_output: str = "x1"  # x1 (x_0 + u) | raw (authors' code scores the raw output)
    stage1_epochs: int = -1  # -1: train.epochs
    stage2_epochs: int = -1
    stage2_lr_scale: float = 0.1  # authors' code: Stage-2 lr x 0.1
    stage2_weight_decay: float = -1.0  # -1: train.weight_decay (authors: 0.01 on Beauty)
    stage1_eval_steps: int = 30  # Euler steps when validating Stage 1 (paper/authors: 30)


class FAVE(FlowSeqModel):
    Config = FAVEConfig
    CHOICES = {
        "recipe": RECIPES,
        "stage": ("1", "2", "both"),
        "objective": ("paper", "consistent", "authors"),
        "prior": ("anchor", "gaussian"),
        "anchor_positions": ("history", "padded"),
        "inference_output": ("x1", "raw"),
    }

    def __init__(self, config: FAVEConfig, num_items: int) -> None:
        super().__init__(config, num_items)
        config.stage = str(config.stage)
        self.stage = "stage1" if config.stage == "1" else "stage2"  # the training stage now (config.stage: which run)

    # -- stages ----------------------------------------------------------------------
    def stages(self) -> list[StagePlan]:
        c = self.config
        s1 = StagePlan("stage1", epochs=None if c.stage1_epochs < 0 else c.stage1_epochs)
        s2 = StagePlan(
            "stage2",
            epochs=None if c.stage2_epochs < 0 else c.stage2_epochs,
            lr_scale=c.stage2_lr_scale,
            weight_decay=None if c.stage2_weight_decay < 0 else c.stage2_weight_decay,
        )
        return {"1": [s1], "2": [s2], "both": [s1, s2]}[c.stage]

    def begin_stage(self, name: str) -> None:
        self.stage = name
        self.net.item_emb.weight.requires_grad_(name != "stage2")  # Stage 2 freezes E (Sec. 4.3.1)

    # -- priors ----------------------------------------------------------------------
    def anchor(self, history: Tensor, p_keep: float) -> Tensor:
        """Semantic anchor prior (eq. 14) for every position: ``m * e_k``, k uniform over the
        real items at positions <= that position. history [B, L] -> x_0 [B, L, D]."""
        B, L = history.shape
        pos = torch.arange(L, device=history.device)
        n_real = (history > 0).sum(1, keepdim=True)  # [B, 1]
        first = L - n_real  # left padding: real items occupy first..L-1
        if self.config.anchor_positions == "history":
            count = (pos[None, :] - first + 1).clamp_min(1)  # real items up to each position
            k = first + (torch.rand(B, L, device=history.device) * count).long().clamp_max(count - 1)
        else:  # authors' code: uniform over positions 0..n-1 of a max_len-wide left-padded row
            n = (pos[None, :] - first + 1).clamp_min(1)
            q = (torch.rand(B, L, device=history.device) * n).long()  # in the max_len frame
            k = q - (self.config.max_len - n) + first  # back to this batch's frame
            k = torch.where(q >= self.config.max_len - n, k, torch.full_like(k, -1))
        items = torch.where(k >= 0, history.gather(1, k.clamp(0, L - 1)), torch.zeros_like(k))
        e_k = self.net.item_emb(items)  # padding id 0 -> its (zero) embedding
        mask = (torch.rand_like(e_k) < p_keep).to(e_k.dtype)
        return mask * e_k

    def prior(self, history: Tensor, per_position: bool, p_keep: float) -> Tensor:
        """x_0 for Stage 2: [B, L, D] (per position) or [B, D] (last position)."""
        B, L = history.shape
        D = self.config.hidden
        if self.config.prior == "gaussian" or self.stage == "stage1":
            shape = (B, L, D) if per_position else (B, D)
            return torch.randn(shape, device=history.device)
        x_0 = self.anchor(history, p_keep)
        return x_0 if per_position else x_0[:, -1]

    # -- losses ----------------------------------------------------------------------
    def loss(self, batch: Batch) -> LossOutput:
        return self._stage1_loss(batch) if self.stage == "stage1" else self._stage2_loss(batch)

    def _stage1_loss(self, batch: Batch) -> LossOutput:
        """Eqs. 11-13: FMRec's loss, with dual time."""
        c = self.config
        return self.matching_loss(batch, c.alpha, c.beta, c.mode_scale).named(rec="rec", ce="tgt")

    def _stage2_loss(self, batch: Batch) -> LossOutput:
        """Eqs. 14-24: anchor prior, t ~ U(0, 1), r from eq. 20, ``objective`` + alpha L_tgt + beta L_src."""
        c = self.config
        target = Targets.of(batch)
        x_1 = self.net.item_emb(target.ids).detach()  # E is frozen in Stage 2
        x_0 = self.prior(batch.history, target.per_position, c.p_keep)
        t = uniform_times(tuple(target.ids.shape))
        r = end_times(t, c.p_end)
        t, r = t.to(x_1.device), r.to(x_1.device)  # drawn on the CPU generator
        x_t, v = linear_path(x_0, x_1, t)
        cache: dict[str, Any] = {}

        def fn(x: Tensor, tt: Tensor, rr: Tensor) -> Tensor:
            out, cache["h_mid"] = self.net(batch.history, x, tt, rr)
            return target.pick(out)

        out, d_out = time_derivative(fn, x_t, t, r, v)  # primal output and its d/dt along (v, 1, 0)
        flow = self._objective(out, d_out, MeanFlowSample(x_1, x_t, v, t, r), target.valid)
        l_tgt = self.item_ce(flow.f, target)
        l_src = self.history_loss(cache["h_mid"], batch.history, target)
        loss = flow.loss + c.alpha * l_tgt + c.beta * l_src
        return LossOutput(
            loss,
            {
                "match": float(flow.match.detach()),
                "cons": float(flow.cons.detach()),
                "tgt": float(l_tgt.detach()),
                "src": float(l_src.detach()),
            },
        )

    def _objective(self, out: Tensor, d_out: Tensor, s: MeanFlowSample, valid: Tensor) -> FlowObjective:
        c = self.config
        if c.objective == "authors":  # output is a velocity u; f = x_t + (1 - t) u
            return velocity_objective(out, d_out, s, valid, c.gamma, c.use_match, c.use_cons)
        if c.objective == "paper":  # eqs. 21, 23
            return paper_objective(out, d_out, s, valid, c.gamma, c.use_match, c.use_cons)
        return consistent_objective(out, d_out, s, valid, c.use_match, c.use_cons)

    # -- inference -------------------------------------------------------------------
    def generate(self, history: Tensor) -> Tensor:
        """The recommendation vector x_1_hat [B, D]."""
        c = self.config
        if self.stage == "stage1":  # multi-step Euler from Gaussian noise
            x_0 = torch.randn(history.shape[0], c.hidden, device=history.device)
            return euler_x1(self.x1_fn(history), x_0, c.stage1_eval_steps)
        p = c.p_keep if c.p_keep_infer < 0 else c.p_keep_infer
        x_0 = self.prior(history, per_position=False, p_keep=p)
        out = one_step(self.x1_fn(history), x_0)
        if c.objective == "authors":
            return out if c.inference_output == "raw" else x_0 + out  # f(x_0, 0, 1) = x_0 + u
        return out
