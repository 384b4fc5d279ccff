"""Time one Adam step on each model's real parameters: torch's CPU default (a loop over the
tensors), its foreach variant, and the fused kernel the trainer uses. Writes
results/adam-step/adam-step.{json,md}.

Usage: .venv/bin/python scripts/adam_step.py [--items 12101] [--threads 2] [--repeats 20]
(12101 items = Beauty; ML-100k has 1682.) Run it on an idle machine: it measures wall time.
"""

import argparse
import platform
import statistics
import time

import torch

from fave.io_utils import atomic_write_json, atomic_write_text
from fave.models.registry import build_model

VARIANTS = {"loop (torch's CPU default)": {"foreach": False}, "foreach": {"foreach": True}, "fused": {"fused": True}}


def step_ms(params: list[torch.nn.Parameter], options: dict, repeats: int) -> float:
    opt = torch.optim.Adam(params, lr=1e-3, **options)
    opt.step()  # allocate the moments
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        opt.step()
        times.append(time.perf_counter() - t0)
    return 1000 * statistics.median(times)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--items", type=int, default=12101)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--repeats", type=int, default=20)
    ap.add_argument("--models", nargs="+", default=["sasrec", "diffurec", "fmrec", "fave"])
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    rows = {}
    for name in args.models:
        model = build_model(name, {}, args.items)
        params = [p for p in model.parameters() if p.requires_grad]
        for p in params:
            p.grad = torch.randn_like(p)
        ms = {label: step_ms(params, options, args.repeats) for label, options in VARIANTS.items()}
        rows[name] = {"parameters": sum(p.numel() for p in params), "step_ms": ms}
        print(name, {k: round(v, 1) for k, v in ms.items()})
    command = (
        f".venv/bin/python scripts/adam_step.py --items {args.items} --threads {args.threads} --repeats {args.repeats}"
    )
    atomic_write_json(
        "results/adam-step/adam-step.json",
        {
            "command": command,
            "torch": torch.__version__,
            "machine": platform.processor() or platform.machine(),
            "threads": args.threads,
            "items": args.items,
            "models": rows,
        },
    )
    labels = list(VARIANTS)
    lines = [
        f"# One Adam step on each model's parameters ({args.items} items, {args.threads} threads, median of "
        f"{args.repeats})",
        "",
        f"Produced by:\n\n```\n{command}\n```\n",
        f"torch {torch.__version__}. Milliseconds per `optimizer.step()` with random gradients;"
        " the trainer uses `fused`.",
        "",
        "| model | parameters | " + " | ".join(labels) + " | loop / fused |",
        "|---|---|" + "---|" * len(labels) + "---|",
    ]
    for name, r in rows.items():
        ms = r["step_ms"]
        lines.append(
            f"| {name} | {r['parameters']:,} | "
            + " | ".join(f"{ms[k]:.1f}" for k in labels)
            + f" | {ms[labels[0]] / ms['fused']:.1f}x |"
        )
    atomic_write_text("results/adam-step/adam-step.md", "\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
