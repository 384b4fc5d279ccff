"""Efficiency of a set of models on a dataset's test users (the paper's Table 3, extended).

For every model: parameters (all, and those read at inference), network calls per request,
FLOPs per user for the whole recommendation (encoder, every sampling step, scoring against
all items), latency per request at batch size 1 (p50, p95), throughput at larger batch
sizes, wall time for the whole test set, and peak tensor memory of the largest batch.
Timings are interleaved round-robin across models, after a warm-up. FAVE's row is timed on its
optimised path by default (its one-step graph exported on the fly and run by ONNX Runtime, checked
to give eager's top-10 on every test user; eager torch, with a note, when that cannot run), and a
``floor`` row times one bare pass of FAVE's network plus scoring in eager torch (see
:mod:`fave.benchmark.floor`); FLOPs, network calls and memory are counted on the eager graphs.

:func:`run_bench` takes its knobs as one :class:`BenchSettings` and runs one function per
measurement phase (size, FLOPs, memory, latency, throughput, whole test set), each returning
its columns of the table per model.
"""

from __future__ import annotations

import datetime
import os
import platform
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np
import torch

from fave.benchmark.floor import TOP_K, FloorScorer, RowPath, flow_net, row_path, same_top_k
from fave.benchmark.flops import Scorer, count_flops
from fave.benchmark.latency import round_robin, round_robin_passes, summary_ms, user_batch
from fave.benchmark.memory import measure_memory
from fave.data.batching import eval_batches
from fave.data.dataset import EvalSet
from fave.models.base import SeqRecModel

FLOOR = "floor"
Rows = dict[str, dict]  # model name -> its columns (JSON-ready)


@dataclass
class BenchSettings:
    """How :func:`run_bench` measures.

    ``latency_users`` users are timed one by one (batch size 1); each of ``batch_sizes`` is timed
    ``repeats`` times on one batch of random test users (drawn with replacement when the test set
    is smaller); the whole test set is scored ``test_set_repeats`` (None: ``repeats``) times in
    batches of ``eval_batch_size``; FLOPs are averaged over ``flop_users`` random users (None:
    all). ``reference`` names the model the ratios divide by (skipped when absent); ``floor`` adds
    the bare-network row; ``fave_path`` is how FAVE's row runs: "auto" (ONNX Runtime when
    installed, else eager with a note), "onnx" (an error when it cannot) or "eager".
    """

    device: str | torch.device = "cpu"
    batch_sizes: Sequence[int] = (64, 512)
    latency_users: int = 200
    warmup: int = 5
    repeats: int = 3
    test_set_repeats: int | None = None
    eval_batch_size: int = 512
    flop_users: int | None = 256
    flop_batch_size: int = 64
    floor: bool = True
    fave_path: str = "auto"
    reference: str | None = "fave"
    seed: int = 0
    dataset: str | None = None

    @property
    def test_set_passes(self) -> int:
        return self.repeats if self.test_set_repeats is None else self.test_set_repeats


@dataclass
class Bench:
    """What every phase measures on: the scorers (models and the floor), the users, one random stream.

    ``scorers`` are timed; ``counted`` (the eager graphs) are what FLOPs, calls and memory see.
    """

    scorers: dict[str, Scorer]
    owners: dict[str, SeqRecModel | None]  # the model behind each scorer (None: the floor)
    paths: dict[str, RowPath]
    counted: dict[str, Scorer]
    eval_set: EvalSet
    max_len: int
    device: torch.device
    rng: np.random.Generator
    say: Callable[[str], None] = field(default=lambda _: None)

    @property
    def n_users(self) -> int:
        return len(self.eval_set.targets)

    def batch(self, rows: Sequence[int] | np.ndarray):
        return user_batch(self.eval_set, rows, self.max_len, self.device)

    def sample(self, n: int) -> np.ndarray:
        """``n`` random users, with replacement when there are fewer."""
        return self.rng.choice(self.n_users, n, replace=self.n_users < n)


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
    settings: BenchSettings | None = None,
    log: Callable[[str], None] | None = None,
) -> dict:
    """Benchmark ``models`` (name -> model) on ``eval_set``; returns a JSON-ready dict (``meta``, ``models``)."""
    s = settings or BenchSettings()
    bench = _prepare(models, eval_set, max_len, s, log or (lambda _: None))
    rows: Rows = {name: {} for name in bench.scorers}
    one = bench.batch([int(bench.rng.integers(bench.n_users))])
    _merge(rows, _sizes(bench, one))
    n_flop = bench.n_users if s.flop_users is None else min(s.flop_users, bench.n_users)
    _merge(rows, _flops(bench, n_flop, s.flop_batch_size))
    size_batches = {bs: bench.batch(bench.sample(bs)) for bs in s.batch_sizes}
    _merge(rows, _memory(bench, size_batches[max(s.batch_sizes)] if s.batch_sizes else one))
    _merge(rows, _paths(bench, s.eval_batch_size))
    lat_batches = [bench.batch([j]) for j in bench.sample(s.latency_users)]
    _merge(rows, _latency(bench, lat_batches, lat_batches[: s.warmup] + list(size_batches.values())))
    _merge(rows, _throughput(bench, size_batches, s.repeats))
    _merge(rows, _test_set(bench, s.eval_batch_size, s.test_set_passes))
    ref = s.reference if s.reference in rows else None
    if ref is not None:
        _merge(rows, _vs_reference(rows, ref))
    meta = _meta(bench, models, s, ref, len(lat_batches), n_flop, FLOOR in rows)
    meta["vs_floor"] = _vs_floor(bench, rows)
    return {"meta": meta, "models": rows}


def _merge(rows: Rows, columns: Rows) -> None:
    for name, values in columns.items():
        rows[name].update(values)


def _prepare(
    models: dict[str, SeqRecModel], eval_set: EvalSet, max_len: int, s: BenchSettings, say: Callable[[str], None]
) -> Bench:
    """Check the inputs, move the models to the device, choose each row's path and add the floor scorer."""
    device = torch.device(s.device)
    rng = np.random.default_rng(s.seed)
    torch.manual_seed(s.seed)
    if len(eval_set.targets) == 0:
        raise ValueError("the evaluation set has no users")
    num_items = {m.num_items for m in models.values()}
    if len(num_items) != 1:
        raise ValueError(f"models disagree on the number of items: {sorted(num_items)}")
    for model in models.values():
        model.to(device).eval()
    paths: dict[str, RowPath] = {}
    for name, model in models.items():
        paths[name] = row_path(model, max_len, s.seed, device, s.fave_path)
        say(f"{name}: {paths[name].path}" + (f" ({paths[name].note})" if paths[name].note else ""))
    scorers: dict[str, Scorer] = {name: p.scorer for name, p in paths.items()}
    counted: dict[str, Scorer] = {name: m.score_all for name, m in models.items()}
    owners: dict[str, SeqRecModel | None] = dict(models)
    if s.floor and FLOOR not in models:
        candidates = ([s.reference] if s.reference in models else []) + list(models)
        base = next((n for n in candidates if flow_net(models[n]) is not None), None)
        if base is not None:
            scorers[FLOOR] = counted[FLOOR] = FloorScorer(flow_net(models[base]))
            owners[FLOOR] = None
            paths[FLOOR] = RowPath(scorers[FLOOR])
            say(f"floor: one pass of {base}'s network + scoring, eager")
    return Bench(scorers, owners, paths, counted, eval_set, max_len, device, rng, say)


def _sizes(bench: Bench, one) -> Rows:
    """Parameters and flow-network calls for one request."""
    rows: Rows = {}
    for name, scorer in bench.counted.items():
        model = bench.owners[name]
        rows[name] = {
            "params": sum(p.numel() for p in model.parameters()) if model is not None else None,
            "network_calls": _network_calls(model, scorer, one) if model is not None else 1,
        }
    return rows


def _flops(bench: Bench, n_flop: int, batch_size: int) -> Rows:
    """FLOPs (and MACs) per user, averaged over ``n_flop`` random users."""
    bench.say("counting FLOPs")
    es = bench.eval_set
    pick = np.sort(bench.rng.choice(bench.n_users, n_flop, replace=False))
    inputs = [es.inputs[j] for j in pick]
    batches = [
        b.to(bench.device) for _, b in eval_batches(es.users[pick], inputs, es.targets[pick], bench.max_len, batch_size)
    ]
    rows: Rows = {}
    for name, scorer in bench.counted.items():
        flops = count_flops(scorer, batches) / n_flop
        rows[name] = {"flops_per_user": flops, "macs_per_user": flops / 2}  # multiply-accumulates
    return rows


def _memory(bench: Bench, largest) -> Rows:
    """Peak tensor memory of the largest batch, and the parameters the call reads."""
    bench.say("measuring memory")
    rows: Rows = {}
    for name, scorer in bench.counted.items():
        mem = measure_memory(scorer, largest, bench.owners[name])
        rows[name] = {"peak_memory_mb": mem.peak_mb, "memory_batch_size": len(largest)}
        if bench.owners[name] is not None:
            rows[name]["inference_params"] = mem.inference_params
    return rows


def _paths(bench: Bench, batch_size: int) -> Rows:
    """Each row's path (onnx or eager, and why eager), and for an onnx row its top-10 against
    eager's on every test user."""
    rows: Rows = {}
    for name, p in bench.paths.items():
        rows[name] = {"path": p.path, "path_note": p.note}
        if p.runtime is not None:
            bench.say(f"{name}: top-{TOP_K} of {p.path} against eager on all {bench.n_users} test users")
            check = same_top_k(p.runtime, bench.eval_set, bench.max_len, batch_size)
            rows[name]["top10_vs_eager"] = check
            if check["identical"] != check["users"]:
                bench.say(f"WARNING {name}: {check['identical']}/{check['users']} users with eager's top-10")
    return rows


def _latency(bench: Bench, requests: list, warmup: list) -> Rows:
    """Latency of one-user requests (after a warm-up round over ``warmup``)."""
    bench.say("warming up")
    round_robin(bench.scorers, warmup)
    bench.say(f"latency: {len(requests)} requests at batch size 1")
    return {name: {"latency_ms": summary_ms(seconds)} for name, seconds in round_robin(bench.scorers, requests).items()}


def _throughput(bench: Bench, size_batches: dict, repeats: int) -> Rows:
    """Users per second and batch time at each batch size."""
    rows: Rows = {name: {"throughput": {}} for name in bench.scorers}
    for bs, batch in size_batches.items():
        bench.say(f"throughput at batch size {bs}")
        for name, seconds in round_robin(bench.scorers, [batch], repeats).items():
            rows[name]["throughput"][str(bs)] = {
                "users_per_s": bs / float(np.median(seconds)),
                "batch_ms": summary_ms(seconds),
            }
    return {name: row for name, row in rows.items() if row["throughput"]}


def _test_set(bench: Bench, batch_size: int, passes: int) -> Rows:
    """Wall time of scoring the whole test set, ``passes`` times per model."""
    es = bench.eval_set
    batches = [b.to(bench.device) for _, b in eval_batches(es.users, es.inputs, es.targets, bench.max_len, batch_size)]
    bench.say(f"whole test set: {bench.n_users} users, {passes} pass(es) per model")
    return {
        name: {"test_set_s": float(np.median(seconds)), "test_set_runs_s": seconds}
        for name, seconds in round_robin_passes(bench.scorers, batches, passes).items()
    }


def _vs_reference(rows: Rows, ref: str) -> Rows:
    """FLOPs, median latency and test-set time as ratios to the reference model's."""
    r = rows[ref]
    return {
        name: {
            "vs_reference": {
                "flops": row["flops_per_user"] / max(r["flops_per_user"], 1),
                "latency_p50": row["latency_ms"]["p50"] / r["latency_ms"]["p50"],
                "test_set_s": row["test_set_s"] / r["test_set_s"],
            }
        }
        for name, row in rows.items()
    }


def _vs_floor(bench: Bench, rows: Rows) -> list[dict]:
    """Each FAVE row's batch-1 p50 over the floor's, measured in the same run (the issue's goal: <= 0.5)."""
    if FLOOR not in rows:
        return []
    floor = rows[FLOOR]["latency_ms"]["p50"]
    return [
        {"model": name, "path": rows[name]["path"], "latency_p50": rows[name]["latency_ms"]["p50"] / floor}
        for name, model in bench.owners.items()
        if type(model).__name__ == "FAVE"
    ]


def _meta(
    bench: Bench,
    models: dict[str, SeqRecModel],
    s: BenchSettings,
    ref: str | None,
    latency_users: int,
    flop_users: int,
    floor: bool,
) -> dict:
    return {
        "dataset": s.dataset,
        "users": bench.n_users,
        "num_items": next(iter(models.values())).num_items,
        "max_len": bench.max_len,
        "device": str(bench.device),
        "device_name": _device_name(bench.device),
        "threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "batch_sizes": list(s.batch_sizes),
        "latency_users": latency_users,
        "repeats": s.repeats,
        "test_set_repeats": s.test_set_passes,
        "eval_batch_size": s.eval_batch_size,
        "flop_users": flop_users,
        "seed": s.seed,
        "reference": ref,
        "floor": floor,
        "fave_path": s.fave_path,
        "date": datetime.datetime.now().isoformat(timespec="seconds"),
        "load_average": [round(x, 2) for x in os.getloadavg()],  # at the end: a shared machine's other work
        "notes": (
            "FLOPs: matrix products counted by torch FlopCounterMode on score_all (every sampling "
            "step and the scoring against all items), per user; latency: one user per request; "
            "peak memory: live tensors of one batch (CPU) or the CUDA allocator peak; timings "
            "interleaved round-robin across models. FLOPs, network calls and peak memory of a row "
            "timed through ONNX Runtime are those of its eager graph (the same maths; the runtime's "
            "own buffers are not seen)."
        ),
    }
