"""Issue 14's check: one real epoch of SASRec and FAVE on a big generated log, with evaluation.

    .venv/bin/python scripts/scale_epoch.py --out results/scale-epoch [--users 50000 --ids 1000000]

Generates the Zipf log of `fave bench-scale` (50,000 users x 20 distinct items over 1,000,000 ids,
exponent 0.8, seed 0: about 391k distinct items) under runs/scale/ (never committed), then for each
model runs, as a user would, with the library's defaults and only `--set epochs=1`:

    fave train --model M --dataset runs/scale/zipf-....csv --set epochs=1 --out runs/scale/M
    fave bench-eval runs/scale/M --repeats 1 --no-warmup     # the whole test evaluation, timed alone

Each command is a child process: its wall time and peak resident memory (wait4's ru_maxrss) are
recorded, with the loss the library chose (from the run's config.yaml) and the run's metrics.
Writes OUT.json and OUT.md. Finished runs are reused (delete runs/scale/M to retrain).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

import yaml  # noqa: E402

from fave.benchmark.scale import write_log, zipf_log  # noqa: E402
from fave.io_utils import atomic_write_json, atomic_write_text  # noqa: E402

FAVE = [sys.executable, "-m", "fave.cli"]


def child(cmd: list[str], log: Path) -> dict:
    """Run ``cmd`` (stdout/stderr to ``log``); its exit code, wall seconds and peak RSS in MB."""
    t0 = time.perf_counter()
    with open(log, "w", encoding="utf-8") as f:
        proc = subprocess.Popen(cmd, stdout=f, stderr=subprocess.STDOUT, cwd=ROOT)
        _, status, usage = os.wait4(proc.pid, 0)
    return {
        "command": " ".join(["fave", *cmd[len(FAVE) :]] if cmd[: len(FAVE)] == FAVE else cmd),
        "rc": os.waitstatus_to_exitcode(status),
        "wall_s": round(time.perf_counter() - t0, 1),
        "peak_rss_mb": round(usage.ru_maxrss / 1024, 1),  # Linux: kilobytes
    }


def resolved_loss(run: Path) -> dict:
    config = yaml.safe_load((run / "config.yaml").read_text(encoding="utf-8"))
    params = config.get("params") or {}
    keys = ("loss", "negatives", "sampler", "ce_loss", "recon", "decoder_output", "stage1_epochs", "stage2_epochs")
    chosen = {k: params[k] for k in keys if k in params}
    if "sampled" not in (chosen.get("loss"), chosen.get("ce_loss")):  # negatives only matter when sampling
        chosen.pop("negatives", None), chosen.pop("sampler", None)
    return chosen


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default="results/scale-epoch/epoch")
    ap.add_argument("--users", type=int, default=50_000)
    ap.add_argument("--ids", type=int, default=1_000_000)
    ap.add_argument("--per-user", type=int, default=20)
    ap.add_argument("--models", nargs="+", default=["sasrec", "fave"])
    ap.add_argument("--root", default="runs/scale")
    args = ap.parse_args()
    root = Path(args.root)  # relative to the repository root (the children's working directory)
    os.chdir(ROOT)
    root.mkdir(parents=True, exist_ok=True)
    data = root / f"zipf-{args.users}u-{args.ids}ids-{args.per_user}.csv"
    if not data.exists():
        user, item = zipf_log(args.users, args.ids, 0.8, args.per_user, seed=0)
        write_log(data, user, item)
    rows = []
    for m in args.models:
        run = root / m
        train = [*FAVE, "train", "--model", m, "--dataset", str(data), "--set", "epochs=1", "--out", str(run)]
        row: dict = {"model": m, "run": str(run)}
        saved = run / "scale-train.json"  # this script's record of the training command, reused
        if not (run / "metrics.json").exists():
            row["train"] = child(train, root / f"{m}-train.log")
            print(f"{m}: train {row['train']}", flush=True)
            if row["train"]["rc"] != 0:
                rows.append(row)
                write(rows, data, args)
                continue
            atomic_write_json(saved, row["train"])
        else:
            row["train"] = json.loads(saved.read_text()) if saved.exists() else None
        evalout = root / f"{m}-eval"
        bench = [*FAVE, "bench-eval", str(run), "--out", str(evalout), "--repeats", "1", "--no-warmup"]
        saved_eval = run / "scale-eval.json"  # this script's record of the timing command, reused
        if saved_eval.exists() and evalout.with_suffix(".json").exists():
            row["eval"] = json.loads(saved_eval.read_text())
        else:
            row["eval"] = child(bench, root / f"{m}-eval.log")
            atomic_write_json(saved_eval, row["eval"])
        if row["eval"]["rc"] == 0:
            timed = json.loads(evalout.with_suffix(".json").read_text())["results"][0]
            row["eval"].update(users=timed["users"], items=timed["items"], eval_s=round(timed["median_s"], 1))
        print(f"{m}: eval {row['eval']}", flush=True)
        metrics = json.loads((run / "metrics.json").read_text())
        row["train_seconds"] = metrics.get("train_seconds")
        row["stages"] = [
            {k: st.get(k) for k in ("name", "epochs", "seconds", "stop_reason")} for st in metrics["stages"]
        ]
        row["test"] = metrics.get("test")
        row["resolved"] = resolved_loss(run)
        rows.append(row)
        write(rows, data, args)  # after every model: a stopped script keeps what it measured
    print((ROOT / args.out).with_suffix(".md").read_text())
    return 0 if all(r.get("eval", {}).get("rc") == 0 for r in rows) else 1


def write(rows: list[dict], data: Path, args: argparse.Namespace) -> None:
    env = {"machine": platform.machine(), "cpus": os.cpu_count(), "load_avg_end": list(os.getloadavg())}
    result = {"data": str(data), "users": args.users, "ids": args.ids, "environment": env, "rows": rows}
    out = ROOT / args.out
    out.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_json(out.with_suffix(".json"), result)
    atomic_write_text(out.with_suffix(".md"), render(result, " ".join(sys.argv[1:])))


def render(result: dict, argv: str) -> str:
    lines = [
        "# One epoch on a big generated catalog, with evaluation (issue 14)",
        "",
        f"Command: `.venv/bin/python scripts/scale_epoch.py {argv}`",
        "",
        f"Data: `{result['data']}`: {result['users']:,} users x 20 distinct items, Zipf 0.8 over "
        f"{result['ids']:,} ids, seed 0 (generated, never committed). Each model: the library's defaults "
        "for a user's own log with only `--set epochs=1` (FAVE: one epoch per stage), then the whole test "
        "evaluation (both protocols) timed alone by `fave bench-eval --repeats 1 --no-warmup`. "
        f"Machine: {result['environment']['cpus']} CPUs; load average at the end "
        f"{', '.join(f'{x:.1f}' for x in result['environment']['load_avg_end'])}.",
        "",
        "| model | items | loss chosen | train command wall (s) | of which training (s) | train peak MB "
        "| eval users | eval (s) | eval peak MB | test paper H@20 | test masked H@20 |",
        "|---|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in result["rows"]:
        t, e = r.get("train") or {}, r.get("eval") or {}
        test = r.get("test") or {}
        h = {p: f"{100 * test[p]['HR@20']:.2f}" if p in test else "-" for p in ("paper", "masked")}
        loss = ", ".join(f"{k}={v}" for k, v in (r.get("resolved") or {}).items()) or "-"
        lines.append(
            f"| {r['model']} | {e.get('items', '-')} | {loss} | {t.get('wall_s', '-')} | {r.get('train_seconds', '-')} "
            f"| {t.get('peak_rss_mb', '-')} | {e.get('users', '-')} | {e.get('eval_s', '-')} "
            f"| {e.get('peak_rss_mb', '-')} | {h['paper']} | {h['masked']} |"
        )
    lines += [
        "",
        "The train command's wall time includes data preparation, validation after each epoch and the "
        "test evaluation; `of which training` is the run's `train_seconds`.",
    ]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    raise SystemExit(main())
