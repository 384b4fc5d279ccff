"""The vectors the figures show, drawn with the models' own inference functions.

FAVE (Stage 2, eq. 25): ``x_0`` from :meth:`FAVE.prior` (the semantic anchor ``m * e_k``,
eq. 14) and ``x_1_hat`` from :meth:`FAVE.generate`, both under the same random state, so the
pair is exactly what evaluation scores. FMRec: ``x_0 ~ N(0, I)`` and every state of its
Euler sampler (:func:`euler_x1_states`), the last of which is checked against
:meth:`FMRec.generate` under the same random state.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import numpy as np
import torch
from torch import Tensor

from fave.data.batching import eval_batches
from fave.data.dataset import EvalSet
from fave.errors import FaveError
from fave.flow.samplers import euler_x1_states, one_step
from fave.models.fave import FAVE
from fave.models.fmrec import FMRec

StatesFn = Callable[[Tensor], Tensor]  # history [B, L] -> states [S, B, D]


def inference_p_keep(model: FAVE) -> float:
    """The anchor retention FAVE uses at inference (``p_keep_infer``, else ``p_keep``)."""
    c = model.config
    return c.p_keep if c.p_keep_infer < 0 else c.p_keep_infer


def _rng_state(device: torch.device) -> list[Any]:
    state = [torch.get_rng_state()]
    if device.type == "cuda":
        state.append(torch.cuda.get_rng_state(device))
    return state


def _set_rng_state(state: list[Any], device: torch.device) -> None:
    torch.set_rng_state(state[0])
    if device.type == "cuda":
        torch.cuda.set_rng_state(state[1], device)


def replay(device: torch.device, first: Callable[[], Tensor], second: Callable[[], Tensor]) -> tuple[Tensor, Tensor]:
    """``first()`` and ``second()`` from the same random state (the state ``first`` leaves behind)."""
    before = _rng_state(device)
    a = first()
    after = _rng_state(device)
    _set_rng_state(before, device)
    b = second()
    _set_rng_state(after, device)
    return a, b


@contextmanager
def one_step_inference(model: FAVE) -> Iterator[bool]:
    """FAVE in its Stage-2 inference mode (anchor prior, one step), also for a Stage-1-only run:
    yields True when the run was Stage-1-only (its network never trained on anchor paths)."""
    stage1_only = model.stage == "stage1"
    if stage1_only:
        model.begin_stage("stage2")
    try:
        yield stage1_only
    finally:
        if stage1_only:
            model.begin_stage("stage1")


def fave_states(model: FAVE, history: Tensor) -> Tensor:
    """``[x_0, x_1_hat]``: FAVE's anchor prior and its one-step output. [B, L] -> [2, B, D]."""
    p = inference_p_keep(model)
    x_1_hat, x_0 = replay(
        history.device,
        lambda: model.generate(history),
        lambda: model.prior(history, per_position=False, p_keep=p),
    )
    if model.config.objective != "authors":  # generate is f(x_0, 0, 1): check that it drew this x_0
        if not torch.allclose(one_step(model.x1_fn(history), x_0), x_1_hat, atol=1e-5):
            raise FaveError("FAVE.generate did not start from FAVE.prior's draw; the figure would mislead")
    return torch.stack([x_0, x_1_hat])


def fmrec_states(model: FMRec, history: Tensor, check: bool = True) -> Tensor:
    """Every Euler state of FMRec's sampler from its Gaussian start. [B, L] -> [steps + 1, B, D]."""
    B, D, steps = history.shape[0], model.config.hidden, model.config.sample_steps
    states, final = replay(
        history.device,
        lambda: euler_x1_states(model.x1_fn(history), torch.randn(B, D, device=history.device), steps),
        lambda: model.generate(history) if check else torch.empty(0),
    )
    if check and not torch.allclose(states[-1], final, atol=1e-5):
        raise FaveError("FMRec.generate did not reach the last Euler state; the figure would mislead")
    return states


def states_fn(model: Any) -> StatesFn:
    """The trajectory function of a FAVE or FMRec model."""
    if isinstance(model, FAVE):
        return lambda h: fave_states(model, h)
    if isinstance(model, FMRec):
        return lambda h: fmrec_states(model, h)
    raise FaveError(f"trajectories are drawn for fave and fmrec runs, not {type(model).__name__.lower()}")


def subset(eval_set: EvalSet, rows: np.ndarray) -> EvalSet:
    return EvalSet(
        users=eval_set.users[rows], inputs=[eval_set.inputs[j] for j in rows], targets=eval_set.targets[rows]
    )


@torch.no_grad()
def collect(
    fn: Callable[[Tensor], Tensor], eval_set: EvalSet, max_len: int, batch_size: int, device: torch.device
) -> Tensor:
    """``fn(history)`` [S, B, D] over every user of ``eval_set``, in its row order: [S, n, D] (on the CPU).

    The caller seeds the random state; batches come in the evaluator's length order."""
    rows: list[np.ndarray] = []
    parts: list[Tensor] = []
    for idx, batch in eval_batches(
        np.arange(len(eval_set.targets)), eval_set.inputs, eval_set.targets, max_len, batch_size
    ):
        parts.append(fn(batch.history.to(device)).cpu())
        rows.append(idx)
    out = torch.cat(parts, dim=1)
    order = torch.from_numpy(np.argsort(np.concatenate(rows), kind="stable"))
    return out[:, order]


def target_embeddings(model: Any, targets: np.ndarray) -> Tensor:
    """Each target item's embedding in the model's own table. [n] -> [n, D] (CPU)."""
    ids = torch.as_tensor(targets, dtype=torch.long, device=model.device)
    return model.net.item_emb(ids).detach().cpu()
