"""What ``auto`` means for the keys whose cost grows with the catalog size N.

Four config keys choose between an exact computation over all N items and one whose cost does
not grow with N (:mod:`fave.models.losses`, :mod:`fave.models.flow_backbone`):

- ``loss`` (SASRec, GRU4Rec): full softmax | sampled softmax;
- ``ce_loss`` (FAVE, FMRec, DiffuRec): full target-side CE | sampled;
- ``recon`` (FAVE, FMRec): the decoder's [B, N] output | only the selected entries (gathered);
- ``decoder_output`` (FAVE, FMRec): a 2048 x N last layer (linear) | 2048 -> D scored against
  the item embeddings (tied).

Their default ``auto`` takes the exact choice up to a threshold (:data:`THRESHOLDS`; for most
keys :data:`LARGE_CATALOG` items, so ML-100k's 1,682 and Beauty's 12,101 items train exactly) and
the bounded one above. ``recon`` switches earlier, at :data:`GATHER_ABOVE` items: both forms are the
same balanced MSE over the same kind of entries (the positives and as many uniform zeros), and the
gathered one measured 0.36x the full one's Stage-1 step time on Beauty (12,101 items) but 1.06x on
ML-100k (1,682 items), one thread (results/recon-step, ``scripts/recon_step.py``). It is
resolved when a model is built from ``num_items``, and a run saves the resolved values in its
``config.yaml``. An explicit value always wins; one whose cost grows with N above the
threshold gets a warning line.
"""

from __future__ import annotations

from dataclasses import fields, is_dataclass, replace
from typing import Any

LARGE_CATALOG = 50_000  # items above which `auto` picks the choices whose cost does not grow with N
GATHER_ABOVE = 10_000  # items above which `recon: auto` gathers (measured: faster at 12,101, not at 1,682)
AUTO = "auto"

#: key -> (choice up to its threshold, choice above)
AUTO_CHOICES: dict[str, tuple[str, str]] = {
    "loss": ("full", "sampled"),
    "ce_loss": ("full", "sampled"),
    "recon": ("full", "gathered"),
    "decoder_output": ("linear", "tied"),
}
#: key -> the catalog size above which `auto` takes the bounded choice
THRESHOLDS: dict[str, int] = {key: LARGE_CATALOG for key in AUTO_CHOICES} | {"recon": GATHER_ABOVE}
#: what the cost of each full choice grows as, for the warning
_COST = {
    "loss": "[positions, N] logits per batch",
    "ce_loss": "[positions, N] logits per batch",
    "recon": "a [batch, N] decoder output per batch",
    "decoder_output": "a 2048 x N last layer (and its Adam state)",
}


def resolve_auto(values: dict[str, Any], num_items: int) -> tuple[dict[str, Any], list[str]]:
    """``values`` (a model's params) with every ``auto`` among :data:`AUTO_CHOICES` replaced by its
    choice for ``num_items``, and the log lines that say what was chosen (none for a small catalog)."""
    out = dict(values)
    chosen, warned = [], []
    for key, (small, big) in AUTO_CHOICES.items():
        if key not in out:
            continue
        large = num_items > THRESHOLDS[key]
        if out[key] == AUTO:
            out[key] = big if large else small
            if large:
                chosen.append(f"params.{key}={big}")
        elif large and out[key] == small:
            warned.append(key)
    notes = []
    if chosen:
        notes.append(
            f"catalog of {num_items:,} items: {', '.join(chosen)} "
            "(auto: cost that does not grow with the catalog; set the key to override)"
        )
    for key in warned:
        notes.append(
            f"warning: params.{key}={out[key]} over {num_items:,} items costs {_COST[key]}; "
            f"params.{key}=auto (here {AUTO_CHOICES[key][1]}) keeps it independent of the catalog"
        )
    return out, notes


def resolve_config(config: Any, num_items: int) -> list[str]:
    """:func:`resolve_auto` on a config dataclass, in place; returns the notes."""
    if not is_dataclass(config):
        return []
    names = [f.name for f in fields(config) if f.name in AUTO_CHOICES]
    resolved, notes = resolve_auto({n: getattr(config, n) for n in names}, num_items)
    for name in names:
        setattr(config, name, resolved[name])
    return notes


def resolve_run_config(config: Any, num_items: int) -> tuple[Any, list[str]]:
    """A copy of a run config (e.g. :class:`fave.config.RunConfig`, whose ``params`` is the model's
    config dataclass) whose params have their ``auto`` keys resolved for ``num_items``, and the notes."""
    if not is_dataclass(config.params):  # a mapping of params (scripts)
        params, notes = resolve_auto(config.params or {}, num_items)
        return replace(config, params=params), notes
    params = replace(config.params)
    notes = resolve_config(params, num_items)
    return replace(config, params=params), notes
