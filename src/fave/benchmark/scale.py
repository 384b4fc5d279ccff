"""``fave bench-scale``: cost against catalog size and against users on generated Zipf logs.

    fave bench-scale --users 50000 --items 1000 10000 100000 400000 --models fave sasrec \
        --losses auto full --out results/bench-scale
    fave bench-scale --users 5000 50000 500000 --items 100000 ...     # the users axis too

For each number of users and each number of item ids (the grid of both lists) it generates a log
(:func:`zipf_log`: every user gets ``per_user`` distinct items drawn with probability proportional
to ``rank^-exponent``; 50,000 users x 20 over 10^6 ids leaves ~391k distinct items), writes it as a CSV into a scratch
directory (removed afterwards unless ``--keep-data``), reads it through the library's own
pipeline, and measures every (model, loss) cell in a fresh process, so that its peak memory
(``ru_maxrss``) is its own:

- seconds per training step (median of ``--steps`` steps after one warm-up step, per stage,
  with the default config and ``--set epochs=1 --set threads=1``, plus the loss keys of the cell);
- one-epoch time: measured steps x batches per epoch (an estimate, marked as such), summed over stages;
- whole-test evaluation time (both protocols): timed on ``--eval-users`` test users and scaled to
  all of them (an estimate unless ``--eval-users 0``);
- peak resident memory of the cell's process (data, model, Adam state, activations).

Loss settings: ``auto`` (the defaults: :mod:`fave.models.catalog` picks), ``full`` (exact softmax,
and for FAVE/FMRec the linear d2 x N decoder with its full reconstruction), ``sampled``, ``chunked``.
``full`` is skipped above ``--full-max-items`` ids, where it would not fit this machine's memory.
Writes ``scale.json``, ``scale.md`` and (with matplotlib) ``scale.png`` under ``--out``: s/step and
peak memory against items, and, with several ``--users``, the estimated epoch and evaluation
time against users.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from fave.errors import FaveError
from fave.io_utils import atomic_write, atomic_write_json, atomic_write_text

LOSSES = ("auto", "full", "sampled", "chunked")
FLOW_MODELS = ("fave", "fmrec")


def zipf_log(
    users: int, ids: int, exponent: float = 0.8, per_user: int = 20, seed: int = 0
) -> tuple[np.ndarray, np.ndarray]:
    """A generated log: (user [rows], item id [rows]) with ``per_user`` distinct item ids per user,
    drawn with P(id = k) proportional to k^-exponent over 1..``ids``; rows user by user, in draw order."""
    if per_user > ids:
        raise FaveError(f"--per-user {per_user} exceeds --items {ids}; each user needs that many distinct items")
    rng = np.random.default_rng(seed)
    cdf = np.cumsum(np.arange(1, ids + 1, dtype=np.float64) ** -exponent)
    cdf /= cdf[-1]
    rows_u, rows_i = [], []
    todo = np.arange(users)
    have = [np.zeros(0, np.int64) for _ in range(users)]
    while len(todo):  # draw twice what is missing; rare users with repeats draw again
        draws = np.searchsorted(cdf, rng.random((len(todo), 2 * per_user)), side="right") + 1  # [U', 2k]
        still = []
        for r, u in enumerate(todo.tolist()):
            seq = np.concatenate([have[u], draws[r]])
            _, first = np.unique(seq, return_index=True)
            have[u] = seq[np.sort(first)][:per_user]
            if len(have[u]) < per_user:
                still.append(u)
        todo = np.array(still, dtype=np.int64)
    for u in range(users):
        rows_u.append(np.full(per_user, u))
        rows_i.append(have[u])
    return np.concatenate(rows_u), np.concatenate(rows_i)


def write_log(path: str | Path, user: np.ndarray, item: np.ndarray) -> Path:
    """A ``user,item,timestamp`` CSV (timestamp = the row's position in its user's draw order)."""
    starts = np.r_[0, np.flatnonzero(np.diff(user)) + 1]
    position = np.arange(len(user)) - np.repeat(starts, np.diff(np.r_[starts, len(user)]))
    body = "\n".join(f"u{u},{i},{t}" for u, i, t in zip(user.tolist(), item.tolist(), position.tolist(), strict=True))

    def _write(tmp: str) -> None:
        with open(tmp, "w", encoding="utf-8") as f:
            f.write("user,item,timestamp\n" + body + "\n")

    atomic_write(path, _write)
    return Path(path)


def loss_overrides(model: str, loss: str) -> list[str]:
    """``--set`` values of a loss setting for ``model`` (``auto``: none, the defaults decide)."""
    if loss == "auto":
        return []
    if model in FLOW_MODELS:
        exact = loss == "full"
        return [
            f"params.ce_loss={loss}",
            f"params.recon={'full' if exact else 'gathered'}",
            f"params.decoder_output={'linear' if exact else 'tied'}",
        ]
    return [f"params.loss={loss}"]


def peak_rss_mb() -> float:
    """This process's peak resident memory (Linux reports ru_maxrss in KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


# -- one cell, in its own process --------------------------------------------------------------
def measure_cell(data: str, data_dir: str, model_name: str, sets: list[str], steps: int, eval_users: int) -> dict:
    """Train ``steps`` (+1 warm-up) steps per stage and time an evaluation of ``eval_users`` test users."""
    import torch

    from fave.config import resolve_config
    from fave.data.batching import count_batches, train_batches
    from fave.data.dataset import Split
    from fave.data.load import dataset_key, load_dataset
    from fave.evaluation.evaluator import evaluate
    from fave.models.catalog import AUTO_CHOICES, resolve_run_config
    from fave.models.registry import build_model, model_class

    torch.set_num_threads(1)
    start = time.perf_counter()
    split = Split(load_dataset(data, data_dir))
    load_s = time.perf_counter() - start
    overrides = ["epochs=1", "threads=1", *sets]
    config = resolve_config(model_name, data, model_class(model_name).Config, None, overrides, None, dataset_key(data))
    config, notes = resolve_run_config(config, split.num_items)
    torch.manual_seed(config.seed)
    model = build_model(config.model, config.params, split.num_items)
    model.observe(split.train)
    n_params = sum(p.numel() for p in model.parameters())
    rss_built = peak_rss_mb()
    tc, max_len = config.train, config.data.max_len
    layout = tc.layout if tc.layout != "auto" else model.default_layout
    per_epoch = count_batches(split.train, layout, tc.batch_size, max_len, tc.windows)
    stages = []
    for s, plan in enumerate(model.stages()):
        model.begin_stage(plan.name)
        model.train()
        params = [p for p in model.parameters() if p.requires_grad]
        opt = torch.optim.Adam(params, lr=tc.lr * plan.lr_scale, fused=True)
        rng = np.random.default_rng(s)
        batches = (  # epochs one after another, so that a small log still gives steps + 1 batches
            b
            for _ in range(steps + 1)
            for b in train_batches(split.train, layout, max_len, tc.batch_size, rng, tc.windows)
        )
        seconds = []
        for i, batch in zip(range(steps + 1), batches, strict=False):
            t0 = time.perf_counter()
            out = model.loss(batch)
            opt.zero_grad(set_to_none=True)
            out.loss.backward()
            if tc.grad_clip > 0:
                torch.nn.utils.clip_grad_norm_(params, tc.grad_clip)
            opt.step()
            if i > 0:  # the first step warms up (allocations, Adam state)
                seconds.append(time.perf_counter() - t0)
        step_s = float(np.median(seconds)) if seconds else float("nan")
        stages.append(
            {"stage": plan.name, "step_s": step_s, "steps_timed": len(seconds), "epoch_s_est": step_s * per_epoch}
        )
        del opt
    test = split.eval_set("test")
    sample = test.sample(eval_users, seed=0)
    t0 = time.perf_counter()
    evaluate(model, sample, max_len, tc.eval_batch_size, seed=tc.eval_seed)
    eval_s = time.perf_counter() - t0
    users_all = len(test.users)
    return {
        "model": model_name,
        "set": sets,
        "resolved": {k: getattr(config.params, k) for k in AUTO_CHOICES if hasattr(config.params, k)},
        "notes": notes,
        "users": split.data.num_users,
        "items": split.num_items,
        "interactions": split.data.num_interactions,
        "parameters": n_params,
        "batch_size": tc.batch_size,
        "batches_per_epoch": per_epoch,
        "stages": stages,
        "epoch_s_est": sum(s["epoch_s_est"] for s in stages),
        "eval_users_timed": len(sample.users),
        "eval_s": eval_s,
        "eval_all_s_est": eval_s * users_all / max(1, len(sample.users)),
        "eval_estimated": len(sample.users) < users_all,
        "load_s": load_s,
        "rss_after_build_mb": rss_built,
        "peak_rss_mb": peak_rss_mb(),
    }


def _cell_main(argv: Sequence[str]) -> int:
    p = argparse.ArgumentParser(prog="python -m fave.benchmark.scale")
    p.add_argument("--data", required=True)
    p.add_argument("--data-dir", required=True)
    p.add_argument("--model", required=True)
    p.add_argument("--set", dest="sets", action="append", default=[])
    p.add_argument("--steps", type=int, default=3)
    p.add_argument("--eval-users", type=int, default=1000)
    p.add_argument("--json", required=True)
    a = p.parse_args(argv)
    atomic_write_json(a.json, measure_cell(a.data, a.data_dir, a.model, a.sets, a.steps, a.eval_users))
    return 0


def run_cell(data: Path, data_dir: Path, model: str, loss: str, args: argparse.Namespace) -> dict:
    """:func:`measure_cell` in a child process (its own peak memory), bounded by ``--cell-timeout``."""
    out = data_dir / f"cell-{model}-{loss}.json"
    out.unlink(missing_ok=True)
    cmd = [sys.executable, "-m", "fave.benchmark.scale", "--data", str(data), "--data-dir", str(data_dir)]
    cmd += ["--model", model, "--steps", str(args.steps), "--eval-users", str(args.eval_users), "--json", str(out)]
    for s in loss_overrides(model, loss):
        cmd += ["--set", s]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    start = time.perf_counter()
    try:
        proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=args.cell_timeout)
    except subprocess.TimeoutExpired:
        return {"model": model, "loss": loss, "status": f"timeout after {args.cell_timeout} s"}
    if proc.returncode != 0 or not out.is_file():
        tail = (proc.stderr or proc.stdout).strip().splitlines()[-1:] or [""]
        status = "killed (out of memory?)" if proc.returncode in (-9, 137) else f"failed (rc {proc.returncode})"
        return {"model": model, "loss": loss, "status": f"{status}: {tail[0][:200]}"}
    cell = json.loads(out.read_text(encoding="utf-8"))
    cell.update({"loss": loss, "status": "ok", "wall_s": time.perf_counter() - start})
    return cell


# -- the sweep ---------------------------------------------------------------------------------
def run_scale(args: argparse.Namespace, log: Callable[[str], None]) -> dict:
    from fave.data.load import load_dataset

    scratch = Path(args.keep_data or tempfile.mkdtemp(prefix="fave-bench-scale-"))
    scratch.mkdir(parents=True, exist_ok=True)
    sizes = []
    try:
        for users, ids in ((u, i) for u in args.users for i in args.items):
            t0 = time.perf_counter()
            user, item = zipf_log(users, ids, args.exponent, args.per_user, args.seed)
            path = write_log(scratch / f"zipf-{users}x{ids}-s{args.seed}.csv", user, item)
            gen_s = time.perf_counter() - t0
            t0 = time.perf_counter()
            data = load_dataset(str(path), scratch)  # parse + preprocess once; the cells read the cache
            parse_s = time.perf_counter() - t0
            size = {
                "ids": ids,
                "items": data.num_items,
                "users": data.num_users,
                "interactions": data.num_interactions,
                "generate_s": gen_s,
                "parse_s": parse_s,
                "cells": [],
            }
            log(
                f"{users:,} users, {ids:,} ids -> {data.num_items:,} items, {data.num_interactions:,} interactions "
                f"(parsed in {parse_s:.1f} s)"
            )
            for model in args.models:
                for loss in args.losses:
                    if loss == "full" and ids > args.full_max_items:
                        size["cells"].append(
                            {
                                "model": model,
                                "loss": loss,
                                "status": f"skipped: > --full-max-items {args.full_max_items}",
                            }
                        )
                        continue
                    cell = run_cell(path, scratch, model, loss, args)
                    size["cells"].append(cell)
                    log(f"  {model} {loss}: {_cell_line(cell)}")
            sizes.append(size)
    finally:
        if not args.keep_data:
            shutil.rmtree(scratch, ignore_errors=True)
    return {
        "command": command_line(args),
        "generator": {"users": args.users, "exponent": args.exponent, "per_user": args.per_user, "seed": args.seed},
        "machine": {
            "platform": platform.platform(),
            "processor": platform.processor() or platform.machine(),
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "torch": _torch_version(),
            "threads": 1,
            "load_average_at_start": list(os.getloadavg()),
        },
        "steps": args.steps,
        "eval_users": args.eval_users,
        "sizes": sizes,
    }


def command_line(args: argparse.Namespace) -> str:
    """The ``fave bench-scale`` command that reproduces this sweep (every option spelled out)."""
    parts = [
        f"--users {' '.join(map(str, args.users))}",
        f"--items {' '.join(map(str, args.items))}",
        f"--per-user {args.per_user}",
        f"--exponent {args.exponent}",
        f"--seed {args.seed}",
        f"--models {' '.join(args.models)}",
        f"--losses {' '.join(args.losses)}",
        f"--full-max-items {args.full_max_items}",
        f"--steps {args.steps}",
        f"--eval-users {args.eval_users}",
        f"--out {args.out}",
    ]
    return "fave bench-scale " + " ".join(parts)


def _torch_version() -> str:
    import torch

    return torch.__version__


def _cell_line(cell: dict) -> str:
    if cell.get("status") != "ok":
        return cell.get("status", "?")
    steps = " / ".join(f"{s['step_s']:.2f}" for s in cell["stages"])
    return f"{steps} s/step, peak {cell['peak_rss_mb']:.0f} MB, eval {cell['eval_all_s_est']:.0f} s (est.)"


def _users(generator: dict) -> str:
    """The generated user counts, as the Markdown says them (a list since the users axis; an int before)."""
    users = generator["users"] if isinstance(generator["users"], list) else [generator["users"]]
    return " / ".join(f"{u:,}" for u in users)


def render_markdown(result: dict) -> str:
    g, m = result["generator"], result["machine"]
    lines = [
        "# Cost against catalog size and users (fave bench-scale)",
        "",
        f"Command: `{result['command']}`",
        "",
        f"Data: generated Zipf logs, {_users(g)} users x {g['per_user']} distinct items, exponent {g['exponent']}, "
        f"seed {g['seed']} (never committed). Machine: {m['cpus']} CPUs ({m['processor']}), torch {m['torch']}, "
        f"one torch thread per cell, load average at start {', '.join(f'{x:.1f}' for x in m['load_average_at_start'])} "
        "(other jobs shared the CPUs: timings are distorted by them; compare ratios within this table).",
        "",
        f"s/step: median of {result['steps']} training steps after a warm-up, per stage (FAVE: Stage 1 / Stage 2), "
        "default config with `--set epochs=1 --set threads=1`. Epoch: s/step x batches per epoch, summed over "
        f"stages (estimated). Eval: whole-test evaluation, both protocols, timed on {result['eval_users']:,} "
        "test users and scaled to all (estimated). Peak: the cell process's peak resident memory.",
        "",
        "Resolved: SASRec `loss`; FAVE `ce_loss/recon/decoder_output` (what the cell trained with).",
        "",
        "| users | ids | items | model | loss | resolved | params (M) | s/step | epoch (est.) | eval all (est.) "
        "| peak MB |",
        "|---:|---:|---:|---|---|---|---:|---:|---:|---:|---:|",
    ]
    for size in result["sizes"]:
        for c in size["cells"]:
            head = f"| {size['users']:,} | {size['ids']:,} | {size['items']:,} | {c['model']} | {c['loss']} |"
            if c.get("status") != "ok":
                lines.append(f"{head} {c['status']} | | | | | |")
                continue
            resolved = "/".join(f"{v}" for v in c["resolved"].values())
            steps = " / ".join(f"{s['step_s']:.2f}" for s in c["stages"])
            lines.append(
                f"{head} {resolved} | {c['parameters'] / 1e6:.1f} | {steps} | {_duration(c['epoch_s_est'])} | "
                f"{_duration(c['eval_all_s_est'])} | {c['peak_rss_mb']:,.0f} |"
            )
    lines += ["", "Parsing (library pipeline, CSV -> sequences, first read):", ""]
    lines += [
        f"- {s['users']:,} users, {s['ids']:,} ids: {s['interactions']:,} interactions, {s['items']:,} items, "
        f"{s['parse_s']:.1f} s"
        for s in result["sizes"]
    ]
    return "\n".join(lines) + "\n"


def _duration(seconds: float) -> str:
    if seconds >= 3600:
        return f"{seconds / 3600:.1f} h"
    if seconds >= 60:
        return f"{seconds / 60:.1f} min"
    return f"{seconds:.0f} s"


def write_scale(result: dict, out: str | Path) -> list[Path]:
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    paths = [out / "scale.json", out / "scale.md"]
    atomic_write_json(paths[0], result)
    atomic_write_text(paths[1], render_markdown(result))
    png = _plot(result, out / "scale.png")
    return paths + ([png] if png else [])


def _plot(result: dict, path: Path) -> Path | None:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return None
    ok = [(size, c) for size in result["sizes"] for c in size["cells"] if c.get("status") == "ok"]
    user_counts = sorted({size["users"] for size, _ in ok})
    fig, axes = plt.subplots(1, 3 if len(user_counts) > 1 else 2, figsize=(15 if len(user_counts) > 1 else 10, 4))
    ax1, ax2 = axes[0], axes[1]
    series: dict[str, list[tuple[int, float, float]]] = {}
    for size, c in ok:  # against items: at the largest user count (the catalog axis of one log family)
        if size["users"] == user_counts[-1]:
            key = f"{c['model']} ({c['loss']})"
            series.setdefault(key, []).append((c["items"], c["stages"][0]["step_s"], c["peak_rss_mb"] / 1024))
    for key, pts in series.items():
        x, step, mem = zip(*pts, strict=True)
        ax1.plot(x, step, marker="o", label=key)
        ax2.plot(x, mem, marker="o", label=key)
    for ax, title in ((ax1, "s per training step (first stage)"), (ax2, "peak memory (GB)")):
        ax.set_xscale("log")
        ax.set_xlabel(f"items in the catalog ({user_counts[-1]:,} users)" if user_counts else "items in the catalog")
        ax.set_title(title)
        ax.grid(alpha=0.3)
    ax1.set_yscale("log")
    ax1.legend(fontsize=8)
    if len(user_counts) > 1:  # against users: one epoch and the whole evaluation, per (model, loss, ids)
        ax3 = axes[2]
        by_users: dict[str, list[tuple[int, float, float]]] = {}
        for size, c in ok:
            key = f"{c['model']} ({c['loss']}), {size['ids']:,} ids"
            by_users.setdefault(key, []).append((size["users"], c["epoch_s_est"], c["eval_all_s_est"]))
        for key, pts in by_users.items():
            if len(pts) < 2:
                continue
            x, epoch, evals = zip(*sorted(pts), strict=True)
            (line,) = ax3.plot(x, epoch, marker="o", label=f"{key}: epoch")
            ax3.plot(x, evals, marker="s", linestyle="--", color=line.get_color(), label=f"{key}: eval")
        ax3.set_xscale("log")
        ax3.set_yscale("log")
        ax3.set_xlabel("users")
        ax3.set_title("one epoch and whole evaluation (s, est.)")
        ax3.grid(alpha=0.3)
        ax3.legend(fontsize=6)
    fig.suptitle(result["command"], fontsize=7)
    fig.tight_layout()

    def _save(tmp: str) -> None:
        fig.savefig(tmp, format="png", dpi=110)

    atomic_write(path, _save)
    plt.close(fig)
    return path


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("bench-scale", help="cost against catalog size and users on generated Zipf logs")
    p.add_argument("--users", type=int, nargs="+", default=[50_000], help="users per log (several: the users axis)")
    p.add_argument(
        "--items", type=int, nargs="+", default=[1_000, 10_000, 100_000, 400_000], help="item ids drawn from"
    )
    p.add_argument("--per-user", type=int, default=20, help="distinct items per user")
    p.add_argument("--exponent", type=float, default=0.8, help="Zipf exponent")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--models", nargs="+", default=["fave", "sasrec"])
    p.add_argument("--losses", nargs="+", choices=LOSSES, default=["auto", "full"])
    p.add_argument("--full-max-items", type=int, default=10_000, help="skip loss=full above this many ids")
    p.add_argument("--steps", type=int, default=3, help="timed training steps per stage (after one warm-up)")
    p.add_argument("--eval-users", type=int, default=2000, help="test users timed (0 = all)")
    p.add_argument("--cell-timeout", type=int, default=900, help="seconds before a cell is stopped")
    p.add_argument("--keep-data", default=None, metavar="DIR", help="write the logs and caches here and keep them")
    p.add_argument("--out", required=True, help="directory for scale.json, scale.md, scale.png")


def cmd(args: argparse.Namespace) -> int:
    if min(args.users) < 3 or min(args.items) < args.per_user or args.per_user < 3:
        raise FaveError("--users and --per-user must be >= 3 and every --items >= --per-user (leave-one-out needs 3)")
    result = run_scale(args, lambda line: print(f"[scale] {line}", flush=True))
    paths = write_scale(result, args.out)
    print(render_markdown(result))
    print("written: " + ", ".join(str(p) for p in paths))
    return 0


if __name__ == "__main__":
    sys.exit(_cell_main(sys.argv[1:]))
