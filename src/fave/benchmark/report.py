"""The benchmark as JSON and as Markdown tables in the layout of the paper's Table 3."""

from __future__ import annotations

from pathlib import Path

from fave.io_utils import atomic_write_json, atomic_write_text

#: Paper Table 3 (per sample, NVIDIA L40), FAVE-NOTES sec. 7: GFLOPs, latency ms, test set s.
PAPER_TABLE3: dict[str, dict[str, tuple[float, float, float]]] = {
    "ml-100k": {
        "DiffuRec": (1.26, 105.97, 2.57),
        "FMRec": (1.32, 98.04, 2.34),
        "FAVE": (0.04, 4.44, 0.10),
    },
    "beauty": {
        "DiffuRec": (1.26, 103.19, 42.21),
        "FMRec": (1.96, 93.74, 40.44),
        "FAVE": (0.07, 4.49, 2.25),
    },
}


def si(x: float | None, unit: str = "") -> str:
    """1.32e9 -> '1.32 G' (three significant digits)."""
    if x is None:
        return "-"
    for scale, prefix in ((1e12, "T"), (1e9, "G"), (1e6, "M"), (1e3, "K")):
        if abs(x) >= scale:
            return f"{x / scale:.3g} {prefix}{unit}"
    return f"{x:.3g} {unit}".rstrip()


def _ratio(x: float | None) -> str:
    return "-" if x is None else f"{x:.2f}x"


def label(name: str, row: dict) -> str:
    """A row's name in the tables: with its path when it has a choice of one (``fave (onnx)``,
    ``fave (eager*)`` for a fallback explained under the table)."""
    if row.get("path") == "onnx":
        return f"{name} (onnx)"
    return f"{name} (eager*)" if row.get("path_note") else name


def _path_lines(meta: dict, rows: dict) -> list[str]:
    """What FAVE's row ran on, its top-10 check against eager, and its latency over the floor's."""
    lines = []
    for name, r in rows.items():
        check = r.get("top10_vs_eager")
        if r.get("path") == "onnx" and check:
            lines.append(
                f"`{label(name, r)}`: its one-step graph exported to ONNX on the fly from the weights benched "
                f"and run by ONNX Runtime with the library's draws; identical top-{check['k']} to eager torch for "
                f"{check['identical']}/{check['users']} test users "
                f"(max |score diff| {check['max_abs_score_diff']:.1e})."
            )
        elif r.get("path_note"):
            lines.append(f"`{label(name, r)}`: timed in {r['path_note']}.")
    for v in meta.get("vs_floor") or []:
        lines.append(
            f"Batch-1 latency p50 of {v['model']} ({v['path']}) / floor, same run: **{v['latency_p50']:.2f}x** "
            "(goal <= 0.5x)."
        )
    return ["", *lines] if lines else []


def render_markdown(result: dict) -> str:
    """Main table (paper's Table 3 columns and ratios to the reference), then details."""
    meta, rows = result["meta"], result["models"]
    ref = meta.get("reference")
    name_ref = ref or "ref"
    lines = [
        f"# Efficiency on {meta.get('dataset') or 'the test set'}",
        "",
        f"{meta['users']} test users, {meta['num_items']} items, max_len {meta['max_len']}; "
        f"device {meta['device']} ({meta['device_name']}), {meta['threads']} threads, "
        f"torch {meta['torch']}; "
        f"{meta['date']}"
        + (f"; load average {meta['load_average']} (1, 5, 15 min) at the end" if meta.get("load_average") else "")
        + ".",
        "",
        *([f"Command: `{meta['command']}`", ""] if meta.get("command") else []),
        f"| Model | FLOPs/user | MACs/user | Latency p50 (ms) | Whole test set (s) "
        f"| FLOPs / {name_ref} | Latency / {name_ref} | Test set / {name_ref} |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for name, r in rows.items():
        vs = r.get("vs_reference", {})
        ratios = " | ".join(_ratio(vs.get(k)) for k in ("flops", "latency_p50", "test_set_s"))
        lines.append(
            f"| {label(name, r)} | {si(r['flops_per_user'])} | {si(r['macs_per_user'])} "
            f"| {r['latency_ms']['p50']:.2f} "
            f"| {r['test_set_s']:.2f} | {ratios} |"
        )
    sizes = [str(b) for b in meta["batch_sizes"]]
    lines += [
        "",
        "| Model | Params | Params used at inference | Network calls | Latency p95 (ms) | "
        + " | ".join(f"Users/s @ {b}" for b in sizes)
        + f" | Peak memory (MB, batch {max((int(b) for b in sizes), default=1)}) |",
        "|---|---:|---:|---:|---:|" + "---:|" * len(sizes) + "---:|",
    ]
    for name, r in rows.items():
        thr = " | ".join(f"{r['throughput'][b]['users_per_s']:.1f}" for b in sizes)
        calls = "-" if r["network_calls"] is None else str(r["network_calls"])
        lines.append(
            f"| {label(name, r)} | {si(r['params'])} | {si(r.get('inference_params'))} | {calls} "
            f"| {r['latency_ms']['p95']:.2f} | {thr}{' |' if sizes else ''} "
            f"{r['peak_memory_mb']:.3g} |"
        )
    lines += _path_lines(meta, rows)
    lines += ["", meta["notes"]]
    if meta.get("floor"):
        lines += [
            "",
            "`floor`: one bare forward pass of FAVE's network plus scoring against all items "
            "(no prior construction) in eager torch, the lower bound of a one-step model's eager latency.",
        ]
    paper = PAPER_TABLE3.get(str(meta.get("dataset")))
    if paper:
        lines += [
            "",
            "Paper Table 3 (per sample, NVIDIA L40), for comparison. Its 'FLOPs' are in line "
            "with the MACs column (multiply-accumulates, the thop convention), half of the "
            "FLOPs counted here.",
            "",
            "| Model | FLOPs | Latency (ms) | Whole test set (s) |",
            "|---|---:|---:|---:|",
        ]
        lines += [f"| {m} | {g:.2f} G | {ms:.2f} | {s:.2f} |" for m, (g, ms, s) in paper.items()]
    return "\n".join(lines) + "\n"


def write_bench(result: dict, out_dir: str | Path) -> tuple[Path, Path]:
    """Write ``bench.json`` and ``bench.md`` into ``out_dir``; returns their paths."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_json(out / "bench.json", result)
    atomic_write_text(out / "bench.md", render_markdown(result))
    return out / "bench.json", out / "bench.md"
