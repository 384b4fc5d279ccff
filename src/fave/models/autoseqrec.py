"""AutoSeqRec (Liu et al., CIKM 2023): autoencoders over interaction and transition matrices.

Three matrices are built from the visible sequences in ``observe(inputs)``:
``R`` [U, N] user-item counts, ``T`` [N, N] item transitions (``T[i, j]`` = how often j
directly follows i) and its transpose. One shared encoder ``enc: R^N -> R^D`` (Linear,
Dropout, ReLU) reads any of their rows; three decoders reconstruct them:
- ``dec_user(enc(R[u]))``: the user's row, long-term collaborative interest (sigmoid);
- ``dec_out(enc(T[i]))``: item i's out-transitions, what follows i (short-term interest);
- ``dec_in(enc(T^T[i]))``: item i's in-transitions, what precedes i (trains the shared
  encoder; not itself in the score, as in the public code).
Each is trained by MSE reconstruction of its rows, as in the public code (no ranking loss).

Scores for user u whose last item is l (the public code's combination, sliu675/AutoSeqRec)::

    s = w_basic  (enc(T[l]) * enc(R[u])) . enc(T^T[j])   for every item j   # short x long
      + w_item   dec_out(enc(T[l]))                                          # l's successors
      + (1 - w_basic - w_item) dec_user(enc(R[u]))                           # u's row

and, as in the public code, items the user has interacted with go to the bottom
(``exclude_seen``). So this model's ``paper`` protocol score equals its ``masked`` one;
without it the reconstruction term would rank the user's own history first.

Deviations, to fit the shared contract and one optimiser:
- ``loss(batch)`` reconstructs the rows of the batch's users (``batch.user``) plus the
  out/in-transition rows of every item in the batch; the public code shuffles mini-batches
  of user rows and item rows and steps four Adam optimisers (encoder 1e-5, out-decoder 1e-2,
  user decoder 1e-3, in-decoder 1e-5). Here one optimiser steps the summed loss.
- Because the encoder now learns as fast as the decoders, its codes grow: the first score
  term uses L2-normalised codes (so it lies in [0, 1]); with raw codes it swamped the other
  two. The transition decoders have no output ReLU: it zeroes the gradient of every entry it
  clips, and reconstruction stalled (MSE 0.4 on a toy chain, where linear outputs reach 1e-7).
- The public code updates the matrices online after every test interaction; here they are
  fixed per phase (training parts for validation, + the validation items for test).
- The matrices are data, not weights, but a run directory must recommend without the
  training data, so the transition matrix ``T`` is saved with the weights (as ``T_indices``
  and ``T_values``, its non-zero entries) and ``T^T`` rebuilt from it on loading. ``R`` is
  not saved: a loaded model that has observed no users (``fave recommend``, ``fave serve``)
  takes a user's row from the history it is given, its item counts.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from fave.data.batching import Batch
from fave.errors import FaveError
from fave.models.base import LossOutput, SeqRecModel

SEEN_SCORE = -1e9  # interacted items (the public code uses -(1 << 10))


@dataclass
class AutoSeqRecConfig:
    # values from the public code (sliu675/AutoSeqRec, data.py / model.py)
    hidden: int = 256  # --dim 256
    enc_dropout: float = 0.3  # Encoder(dropout=0.3)
    dec_dropout: float = 0.2  # Decoder_s / Decoder_t(dropout=0.2); Decoder_u has none
    w_basic: float = 0.2  # --weight_basic 0.2
    w_item: float = 0.2  # --weight_item 0.2 (user weight = 1 - 0.2 - 0.2)
    exclude_seen: bool = True  # public code: interacted items go to the bottom


class NotObserved(FaveError, RuntimeError):
    """Scoring before the matrices exist: a programming error in code, a user's one in a run directory."""


def sparse_counts(rows: np.ndarray, cols: np.ndarray, shape: tuple[int, int]) -> Tensor:
    """COO count matrix: entry (r, c) = how many times (r, c) occurs. Duplicates summed."""
    index = torch.from_numpy(np.stack([rows, cols]).astype(np.int64))
    values = torch.ones(len(rows), dtype=torch.float32)
    return torch.sparse_coo_tensor(index, values, shape, check_invariants=True).coalesce()


class AutoSeqRec(SeqRecModel):
    Config = AutoSeqRecConfig
    default_layout = "parallel"  # one sample per user: each user row once per epoch

    def __init__(self, config: AutoSeqRecConfig, num_items: int) -> None:
        super().__init__(config, num_items)
        c, N = config, num_items
        self.enc = nn.Linear(N, c.hidden)
        self.enc_drop = nn.Dropout(c.enc_dropout)
        self.dec_out = nn.Sequential(nn.Linear(c.hidden, N), nn.Dropout(c.dec_dropout))
        self.dec_in = nn.Sequential(nn.Linear(c.hidden, N), nn.Dropout(c.dec_dropout))
        self.dec_user = nn.Sequential(nn.Linear(c.hidden, N), nn.Sigmoid())
        for name in ("R", "T", "T_in"):  # set by observe(); data, not weights
            self.register_buffer(name, None, persistent=False)

    # -- data ------------------------------------------------------------------------
    def observe(self, inputs: list[np.ndarray]) -> None:
        """Build R [U, N], T [N, N] and T^T from every user's visible sequence (user = index)."""
        seqs = [np.asarray(s, dtype=np.int64) for s in inputs]
        N, empty = self.num_items, np.zeros(0, dtype=np.int64)
        users = np.concatenate([np.full(len(s), u) for u, s in enumerate(seqs)] + [empty])
        items = np.concatenate(seqs + [empty]) - 1
        src = np.concatenate([s[:-1] for s in seqs] + [empty]) - 1
        dst = np.concatenate([s[1:] for s in seqs] + [empty]) - 1
        device = self.enc.weight.device
        self.R = sparse_counts(users, items, (len(seqs), N)).to(device)
        self.T = sparse_counts(src, dst, (N, N)).to(device)
        self.T_in = sparse_counts(dst, src, (N, N)).to(device)

    def _rows(self, matrix: Tensor | None, index: Tensor) -> Tensor:
        """Dense rows ``matrix[index]`` -> [len(index), N]."""
        if matrix is None:
            raise NotObserved(
                "AutoSeqRec needs observe(inputs) before loss() or score_all(); a run directory saved "
                "before fave kept its transition matrix cannot recommend: retrain it"
            )
        if len(index) and int(index.max()) >= matrix.shape[0]:
            raise IndexError(f"row {int(index.max())} asked for; observe() saw {matrix.shape[0]} rows")
        return matrix.index_select(0, index).to_dense()

    # -- network ---------------------------------------------------------------------
    def encode(self, x: Tensor) -> Tensor:
        """Rows [M, N] (dense or sparse) -> codes [M, D] >= 0 (Linear, Dropout, ReLU)."""
        z = torch.sparse.mm(x, self.enc.weight.T) + self.enc.bias if x.is_sparse else self.enc(x)
        return F.relu(self.enc_drop(z))

    def loss(self, batch: Batch) -> LossOutput:
        r_u = self._rows(self.R, batch.user)  # [B, N]
        targets = [t.flatten() for t in (batch.target, batch.targets) if t is not None]
        ids = torch.cat([batch.history.flatten(), *targets])
        items = torch.unique(ids[ids > 0]) - 1  # [M] rows of T / T^T
        t_out, t_in = self._rows(self.T, items), self._rows(self.T_in, items)
        user = F.mse_loss(self.dec_user(self.encode(r_u)), r_u)
        out = F.mse_loss(self.dec_out(self.encode(t_out)), t_out)
        into = F.mse_loss(self.dec_in(self.encode(t_in)), t_in)
        parts = {"user": float(user.detach()), "out": float(out.detach()), "in": float(into.detach())}
        return LossOutput(user + out + into, parts)

    def _user_rows(self, batch: Batch) -> Tensor:
        """[B, N]: the observed users' rows, or (loaded, no user observed) the history's item counts."""
        if self.R is None and self.T is not None:
            h = batch.history
            rows = torch.zeros(len(h), self.num_items + 1, device=h.device)
            rows.scatter_add_(1, h, torch.ones_like(h, dtype=rows.dtype))
            return rows[:, 1:]  # column 0 counted the padding
        return self._rows(self.R, batch.user)

    def score_all(self, batch: Batch) -> Tensor:
        c = self.config
        r_u = self._user_rows(batch)  # [B, N]
        z_u = self.encode(r_u)  # [B, D]
        last = batch.history[:, -1]  # left-padded: the most recent item, 0 if none
        z_last = self.encode(self._rows(self.T, (last - 1).clamp_min(0)) * (last > 0).unsqueeze(-1))
        z_in = self.encode(self.T_in)  # [N, D]: every item's in-transition code
        unit = lambda z: F.normalize(z, dim=-1)  # noqa: E731
        basic = (unit(z_last) * unit(z_u)) @ unit(z_in).T  # in [0, 1]: codes are >= 0
        w_user = 1.0 - c.w_basic - c.w_item
        scores = c.w_basic * basic + c.w_item * self.dec_out(z_last) + w_user * self.dec_user(z_u)
        if c.exclude_seen:
            scores = scores.masked_fill(r_u > 0, SEEN_SCORE)
        return scores

    def item_representation(self) -> Tensor:
        """[N, D]: the user decoder's output weights, one vector per item."""
        return self.dec_user[0].weight.detach()

    # -- the transition matrix travels with the weights ------------------------------
    def _save_to_state_dict(self, destination: dict[str, Any], prefix: str, keep_vars: bool) -> None:
        super()._save_to_state_dict(destination, prefix, keep_vars)
        if self.T is not None:
            destination[prefix + "T_indices"] = self.T.indices()
            destination[prefix + "T_values"] = self.T.values()

    def _load_from_state_dict(self, state_dict: dict[str, Any], prefix: str, *args: Any) -> None:
        indices, values = state_dict.pop(prefix + "T_indices", None), state_dict.pop(prefix + "T_values", None)
        super()._load_from_state_dict(state_dict, prefix, *args)
        if indices is None or values is None:
            return  # weights saved without it: observe() builds it
        N, device = self.num_items, self.enc.weight.device
        if indices.ndim != 2 or indices.shape[0] != 2 or len(values) != indices.shape[1]:
            raise ValueError(f"{prefix}T_indices/T_values do not describe a sparse [N, N] matrix")
        self.T = torch.sparse_coo_tensor(indices.long(), values.float(), (N, N), check_invariants=True)
        self.T = self.T.coalesce().to(device)
        self.T_in = self.T.t().coalesce()
