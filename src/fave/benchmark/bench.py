"""Efficiency of a set of models on a dataset's test users (the paper's Table 3, extended).

For every model: parameters (all, and those read at inference), network calls per request,
FLOPs per user for the whole recommendation (encoder, every sampling step, scoring against
all items), latency per request at batch size 1 (p50, p95), throughput at larger batch
sizes, wall time for the whole test set, and peak tensor memory of the largest batch.
Timings are interleaved round-robin across models, after a warm-up. A ``floor`` row times
one bare pass of FAVE's network plus scoring (see :mod:`fave.benchmark.floor`).
"""

from __future__ import annotations

import datetime
import platform
from collections.abc import Callable, Sequence

import numpy as np
import torch

from fave.benchmark.floor import FloorScorer, flow_net
from fave.benchmark.flops import Scorer, count_flops
from fave.benchmark.latency import round_robin, round_robin_passes, summary_ms, user_batch
from fave.benchmark.memory import measure_memory
from fave.data.batching import eval_batches
from fave.data.dataset import EvalSet
from fave.models.base import SeqRecModel

FLOOR = "floor"


def _network_calls(model: SeqRecModel, scorer: Scorer, batch) -> int | None:
    """Calls of the model's flow network during one request (None: no such network)."""
    net = flow_net(model)
    if net is None:
        return None
    calls = []
    handle = net.register_forward_hook(lambda *_: calls.append(1))
    try:
        with torch.inference_mode():
            scorer(batch)
    finally:
        handle.remove()
    return len(calls)


def _device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return platform.processor() or platform.machine()


def run_bench(
    models: dict[str, SeqRecModel],
    eval_set: EvalSet,
    max_len: int,
    *,
    device: str | torch.device = "cpu",
    batch_sizes: Sequence[int] = (64, 512),
    latency_users: int = 200,
    warmup: int = 5,
    repeats: int = 3,
    test_set_repeats: int | None = None,
    eval_batch_size: int = 512,
    flop_users: int | None = 256,
    flop_batch_size: int = 64,
    floor: bool = True,
    reference: str | None = "fave",
    seed: int = 0,
    dataset: str | None = None,
    log: Callable[[str], None] | None = None,
) -> dict:
    """Benchmark ``models`` (name -> model) on ``eval_set``; returns a JSON-ready dict.

    ``latency_users`` users are timed one by one (batch size 1); each of ``batch_sizes``
    is timed ``repeats`` times on one batch of random test users (drawn with replacement
    when the test set is smaller); the whole test set is scored ``test_set_repeats``
    (default ``repeats``) times in batches of ``eval_batch_size``; FLOPs are averaged over
    ``flop_users`` random users (None: all). ``reference`` names the model the ratios
    divide by (skipped when absent).
    """
    say = log or (lambda _: None)
    device = torch.device(device)
    rng = np.random.default_rng(seed)
    torch.manual_seed(seed)
    n_users = len(eval_set.targets)
    if n_users == 0:
        raise ValueError("the evaluation set has no users")
    num_items = {m.num_items for m in models.values()}
    if len(num_items) != 1:
        raise ValueError(f"models disagree on the number of items: {sorted(num_items)}")
    for model in models.values():
        model.to(device).eval()
    scorers: dict[str, Scorer] = {name: m.score_all for name, m in models.items()}
    owners: dict[str, SeqRecModel | None] = dict(models)
    if floor and FLOOR not in models:
        candidates = ([reference] if reference in models else []) + list(models)
        base = next((n for n in candidates if flow_net(models[n]) is not None), None)
        if base is not None:
            scorers[FLOOR] = FloorScorer(flow_net(models[base]))
            owners[FLOOR] = None
            say(f"floor: one pass of {base}'s network + scoring")

    rows: dict[str, dict] = {name: {} for name in scorers}
    one = user_batch(eval_set, [int(rng.integers(n_users))], max_len, device)
    for name, scorer in scorers.items():
        model = owners[name]
        rows[name]["params"] = sum(p.numel() for p in model.parameters()) if model is not None else None
        rows[name]["network_calls"] = _network_calls(model, scorer, one) if model is not None else 1

    say("counting FLOPs")
    n_flop = n_users if flop_users is None else min(flop_users, n_users)
    pick = np.sort(rng.choice(n_users, n_flop, replace=False))
    flop_batches = [
        b.to(device)
        for _, b in eval_batches(
            eval_set.users[pick],
            [eval_set.inputs[j] for j in pick],
            eval_set.targets[pick],
            max_len,
            flop_batch_size,
        )
    ]
    for name, scorer in scorers.items():
        rows[name]["flops_per_user"] = count_flops(scorer, flop_batches) / n_flop
        rows[name]["macs_per_user"] = rows[name]["flops_per_user"] / 2  # multiply-accumulates

    size_batches = {
        bs: user_batch(eval_set, rng.choice(n_users, bs, replace=n_users < bs), max_len, device) for bs in batch_sizes
    }
    say("measuring memory")
    largest = size_batches[max(batch_sizes)] if batch_sizes else one
    for name, scorer in scorers.items():
        mem = measure_memory(scorer, largest, owners[name])
        rows[name]["peak_memory_mb"] = mem.peak_mb
        rows[name]["memory_batch_size"] = len(largest)
        if owners[name] is not None:
            rows[name]["inference_params"] = mem.inference_params

    say("warming up")
    lat_rows = rng.choice(n_users, latency_users, replace=n_users < latency_users)
    lat_batches = [user_batch(eval_set, [j], max_len, device) for j in lat_rows]
    round_robin(scorers, lat_batches[:warmup] + list(size_batches.values()))

    say(f"latency: {len(lat_batches)} requests at batch size 1")
    for name, seconds in round_robin(scorers, lat_batches).items():
        rows[name]["latency_ms"] = summary_ms(seconds)

    for bs, batch in size_batches.items():
        say(f"throughput at batch size {bs}")
        for name, seconds in round_robin(scorers, [batch], repeats).items():
            rows[name].setdefault("throughput", {})[str(bs)] = {
                "users_per_s": bs / float(np.median(seconds)),
                "batch_ms": summary_ms(seconds),
            }

    test_batches = [
        b.to(device)
        for _, b in eval_batches(eval_set.users, eval_set.inputs, eval_set.targets, max_len, eval_batch_size)
    ]
    passes = repeats if test_set_repeats is None else test_set_repeats
    say(f"whole test set: {n_users} users, {passes} pass(es) per model")
    for name, seconds in round_robin_passes(scorers, test_batches, passes).items():
        rows[name]["test_set_s"] = float(np.median(seconds))
        rows[name]["test_set_runs_s"] = seconds

    ref = reference if reference in rows else None
    if ref is not None:
        for row in rows.values():
            row["vs_reference"] = {
                "flops": row["flops_per_user"] / max(rows[ref]["flops_per_user"], 1),
                "latency_p50": row["latency_ms"]["p50"] / rows[ref]["latency_ms"]["p50"],
                "test_set_s": row["test_set_s"] / rows[ref]["test_set_s"],
            }
    meta = {
        "dataset": dataset,
        "users": n_users,
        "num_items": num_items.pop(),
        "max_len": max_len,
        "device": str(device),
        "device_name": _device_name(device),
        "threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "batch_sizes": list(batch_sizes),
        "latency_users": len(lat_batches),
        "repeats": repeats,
        "test_set_repeats": passes,
        "eval_batch_size": eval_batch_size,
        "flop_users": n_flop,
        "seed": seed,
        "reference": ref,
        "floor": FLOOR in rows,
        "date": datetime.datetime.now().isoformat(timespec="seconds"),
        "notes": (
            "FLOPs: matrix products counted by torch FlopCounterMode on score_all (every sampling "
            "step and the scoring against all items), per user; latency: one user per request; "
            "peak memory: live tensors of one batch (CPU) or the CUDA allocator peak; timings "
            "interleaved round-robin across models."
        ),
    }
    return {"meta": meta, "models": rows}
