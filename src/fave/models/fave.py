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

Recipes: ``prefix`` is the paper's (one sample per prefix, bidirectional encoder, flow
state broadcast over the history); ``parallel`` encodes each training sequence once with
causal attention and gives every position its own flow state and target.
"""

from __future__ import annotations

from dataclasses import dataclass, fields

import torch
from torch import Tensor

from fave.data.batching import Batch
from fave.errors import FaveError
from fave.flow.meanflow import consistent_target, time_derivative
from fave.flow.paths import expand_time, linear_path
from fave.flow.samplers import euler_x1, one_step
from fave.flow.time_samplers import end_times, mode_times, uniform_times
from fave.models.base import LossOutput, SeqRecModel, StagePlan
from fave.models.flow_backbone import BackboneConfig, FlowBackbone


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


CHOICES = {
    "recipe": ("parallel", "prefix"),
    "stage": ("1", "2", "both"),
    "objective": ("paper", "consistent", "authors"),
    "prior": ("anchor", "gaussian"),
    "anchor_positions": ("history", "padded"),
    "inference_output": ("x1", "raw"),
}


class FAVE(SeqRecModel):
    Config = FAVEConfig

    def __init__(self, config: FAVEConfig, num_items: int) -> None:
        super().__init__(config, num_items)
        for name, allowed in CHOICES.items():
            if str(getattr(config, name)) not in allowed:
                raise FaveError(f"params.{name}={getattr(config, name)!r}; allowed: {', '.join(allowed)}")
        config.stage = str(config.stage)
        backbone = {f.name: getattr(config, f.name) for f in fields(BackboneConfig)}
        self.net = FlowBackbone(BackboneConfig(**backbone), num_items, causal=config.recipe == "parallel")
        self.default_layout = config.recipe
        self.phase = "stage1" if config.stage == "1" else "stage2"

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
        self.phase = name
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
        if self.config.prior == "gaussian" or self.phase == "stage1":
            shape = (B, L, D) if per_position else (B, D)
            return torch.randn(shape, device=history.device)
        x_0 = self.anchor(history, p_keep)
        return x_0 if per_position else x_0[:, -1]

    # -- losses ----------------------------------------------------------------------
    def _targets(self, batch: Batch) -> tuple[Tensor, Tensor, bool]:
        """-> (target ids [B, L] or [B], valid mask, per_position)."""
        if batch.targets is not None:
            return batch.targets, batch.targets > 0, True
        return batch.target, torch.ones_like(batch.target, dtype=torch.bool), False

    def _pick(self, x: Tensor, per_position: bool) -> Tensor:
        return x if per_position else x[:, -1]

    def _aux(
        self, f: Tensor, h_mid: Tensor, batch: Batch, target: Tensor, valid: Tensor, per_position: bool
    ) -> tuple[Tensor, Tensor]:
        """alpha * L_tgt (CE of f . E^T) and beta * L_src (history reconstruction)."""
        l_tgt = self.net.target_ce(f[valid], target[valid])  # over all N items (or sampled / chunked)
        history = batch.history
        if per_position:  # one random real position per sequence reconstructs its prefix
            B, L = history.shape
            first = L - (history > 0).sum(1)
            pos = first + (torch.rand(B, device=history.device) * (L - first)).long().clamp_max(L - 1 - first)
        else:
            pos = None
        l_src = self.net.reconstruction_loss(h_mid, history, pos)
        return l_tgt, l_src

    def loss(self, batch: Batch) -> LossOutput:
        return self._stage1_loss(batch) if self.phase == "stage1" else self._stage2_loss(batch)

    def _stage1_loss(self, batch: Batch) -> LossOutput:
        c = self.config
        target, valid, per_pos = self._targets(batch)
        x_1 = self.net.item_emb(target)  # [B, L, D] or [B, D]
        x_0 = torch.randn_like(x_1)
        t = mode_times(tuple(target.shape), c.mode_scale).to(x_1.device)  # drawn on the CPU generator
        x_t, _ = linear_path(x_0, x_1, t)
        f_all, h_mid = self.net(batch.history, x_t, t, torch.ones_like(t))
        f = self._pick(f_all, per_pos)
        l_rec = ((f - x_1) ** 2).mean(-1)[valid].mean()
        l_tgt, l_src = self._aux(f, h_mid, batch, target, valid, per_pos)
        loss = l_rec + c.alpha * l_tgt + c.beta * l_src
        return LossOutput(
            loss, {"rec": float(l_rec.detach()), "tgt": float(l_tgt.detach()), "src": float(l_src.detach())}
        )

    def _stage2_loss(self, batch: Batch) -> LossOutput:
        c = self.config
        target, valid, per_pos = self._targets(batch)
        x_1 = self.net.item_emb(target).detach()  # E is frozen in Stage 2
        x_0 = self.prior(batch.history, per_pos, c.p_keep)
        t = uniform_times(tuple(target.shape))
        r = end_times(t, c.p_end)
        t, r = t.to(x_1.device), r.to(x_1.device)  # drawn on the CPU generator
        x_t, v = linear_path(x_0, x_1, t)
        cache: dict[str, Tensor] = {}

        def fn(x: Tensor, tt: Tensor, rr: Tensor) -> Tensor:
            out, h_mid = self.net(batch.history, x, tt, rr)
            cache["h_mid"] = h_mid
            return self._pick(out, per_pos)

        out, d_out = time_derivative(fn, x_t, t, r, v)  # primal output and its d/dt along (v, 1, 0)
        h_mid = cache["h_mid"]
        sq = lambda a, b: ((a - b) ** 2).mean(-1)[valid].mean()  # noqa: E731
        zero = out.new_zeros(())
        if c.objective == "authors":  # output is a velocity u; f = x_t + (1 - t) u
            f = x_t + (1 - expand_time(t, out)) * out
            l_match = sq(out, v) if c.use_match else zero
            l_cons = (d_out**2).mean(-1)[valid].mean() if c.use_cons else zero
            flow = l_match + c.gamma * l_cons
        elif c.objective == "paper":  # eqs. 21, 23
            f = out
            l_match = sq(f, x_1) if c.use_match else zero
            l_cons = (d_out**2).mean(-1)[valid].mean() if c.use_cons else zero
            flow = l_match + c.gamma * l_cons
        else:  # consistent MeanFlow target for an x_1 predictor
            f = out
            if not c.use_cons:
                f_tgt = x_1
            elif not c.use_match:  # only the r = 1 consistency part: df/dt = 0
                f_tgt = (f + (1 - expand_time(t, f)) * d_out).detach()
            else:
                f_tgt = consistent_target(x_1, f, d_out.detach(), t, r)
            l_match = sq(f, f_tgt)
            l_cons = (d_out.detach() ** 2).mean(-1)[valid].mean()
            flow = l_match
        l_tgt, l_src = self._aux(f, h_mid, batch, target, valid, per_pos)
        loss = flow + c.alpha * l_tgt + c.beta * l_src
        return LossOutput(
            loss,
            {
                "match": float(l_match.detach()),
                "cons": float(l_cons.detach()),
                "tgt": float(l_tgt.detach()),
                "src": float(l_src.detach()),
            },
        )

    # -- inference -------------------------------------------------------------------
    def x1_fn(self, history: Tensor):
        """(x_t [B, D], t [B]) -> f(x_t, t, 1) at the last position: the network, once."""
        return lambda x, t: self.net(history, x, t, torch.ones_like(t))[0][:, -1]

    def generate(self, history: Tensor) -> Tensor:
        """The recommendation vector x_1_hat [B, D]."""
        c = self.config
        if self.phase == "stage1":  # multi-step Euler from Gaussian noise
            x_0 = torch.randn(history.shape[0], c.hidden, device=history.device)
            return euler_x1(self.x1_fn(history), x_0, c.stage1_eval_steps)
        p = c.p_keep if c.p_keep_infer < 0 else c.p_keep_infer
        x_0 = self.prior(history, per_position=False, p_keep=p)
        out = one_step(self.x1_fn(history), x_0)
        if c.objective == "authors":
            return out if c.inference_output == "raw" else x_0 + out  # f(x_0, 0, 1) = x_0 + u
        return out

    def score_all(self, batch: Batch) -> Tensor:
        return self.generate(batch.history) @ self.net.items.T

    def item_representation(self) -> Tensor:
        return self.net.items.detach()
