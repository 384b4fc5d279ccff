"""``fave bench`` and ``fave bench-steps``, to be plugged into :mod:`fave.cli`:

    fave bench --runs runs/fave runs/fmrec runs/diffurec --out results/bench-ml-100k
    fave bench --dataset ml-100k --models fave fmrec diffurec sasrec --out results/bench-ml-100k
    fave bench-steps runs/fmrec --fave runs/fave --out results/steps-ml-100k
    fave bench-scale --users 50000 --items 1000 10000 100000 400000 --out results/bench-scale
    fave bench-ann --items 100000 --queries 1000 --out results/ann

``add_bench_parser(subparsers)`` registers them (and ``bench-eval``, ``bench-ann``); ``COMMANDS`` maps them to handlers.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from fave.errors import FaveError


def add_bench_parser(sub: argparse._SubParsersAction) -> None:
    from fave.benchmark.ann import add_parser as add_ann_parser
    from fave.benchmark.eval_time import add_parser
    from fave.benchmark.scale import add_parser as add_scale_parser

    add_parser(sub)
    add_scale_parser(sub)
    add_ann_parser(sub)
    p = sub.add_parser("bench", help="efficiency of models on a dataset's test users (paper Table 3)")
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--runs", nargs="+", metavar="RUN_DIR", help="trained run directories")
    src.add_argument("--models", nargs="+", metavar="NAME", help="fresh models with their default params")
    p.add_argument("--dataset", default=None, help="dataset for --models (default with --runs: the runs' own)")
    p.add_argument("--out", required=True, help="directory for bench.json and bench.md")
    p.add_argument("--device", default="cpu", help="cpu, cuda, cuda:N or auto (as train.device)")
    p.add_argument("--threads", type=int, default=0, help="torch threads (0 = torch default)")
    p.add_argument("--batch-sizes", type=int, nargs="+", default=[64, 512], help="throughput batch sizes")
    p.add_argument("--latency-users", type=int, default=200, help="requests timed at batch size 1")
    p.add_argument("--warmup", type=int, default=5, help="warm-up requests per model")
    p.add_argument("--repeats", type=int, default=3, help="timed rounds per batch size")
    p.add_argument("--test-repeats", type=int, default=None, help="whole-test-set passes (default --repeats)")
    p.add_argument("--eval-batch-size", type=int, default=512, help="batch size of the whole-test-set pass")
    p.add_argument("--flop-users", type=int, default=256, help="users FLOPs are averaged over (0 = all)")
    p.add_argument("--reference", default="fave", help="model the ratios divide by")
    p.add_argument("--no-floor", action="store_true", help="skip the bare-network floor row")
    p.add_argument(
        "--fave-path",
        choices=["auto", "onnx", "eager"],
        default="auto",
        help="FAVE's row: auto = its one-step graph in ONNX Runtime when installed (else eager, noted), "
        "onnx = fail without it, eager = torch",
    )
    p.add_argument("--max-len", type=int, default=None, help="history length (default: the config's)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--data-dir", default=None, help="data directory (default: $FAVE_DATA_DIR or ~/.cache/fave)")

    p = sub.add_parser("bench-steps", help="test accuracy of a multi-step run vs its sampling steps")
    p.add_argument("run_dir", help="an FMRec (or DiffuRec) run directory")
    p.add_argument("--fave", default=None, metavar="RUN_DIR", help="a FAVE run for the one-step reference")
    p.add_argument("--steps", type=int, nargs="+", default=[1, 2, 5, 10, 30])
    p.add_argument("--seeds", type=int, nargs="+", default=[12345], help="evaluation seeds (noise)")
    p.add_argument(
        "--protocol",
        choices=["paper", "masked"],
        default="paper",
        help="protocol of the table/plot",
    )
    p.add_argument("--batch-size", type=int, default=512)
    p.add_argument("--threads", type=int, default=0)
    p.add_argument("--out", required=True, help="directory for steps.json, steps.md, steps.png")
    p.add_argument("--data-dir", default=None, help="data directory (default: $FAVE_DATA_DIR or ~/.cache/fave)")


def _unique_names(runs: list[tuple[str, Path]]) -> list[str]:
    models = [m for m, _ in runs]
    return [m if models.count(m) == 1 else f"{m}@{d.name}" for m, d in runs]


def _command(name: str, args: argparse.Namespace) -> str:
    """The command line that reproduces ``args`` (every option spelled out, defaults included)."""
    import shlex

    words = ["fave", name]
    for key, value in vars(args).items():
        flag = "--" + key.replace("_", "-")
        if key == "command" or value is None or value is False:
            continue
        words += [flag] if value is True else [flag, *map(str, value if isinstance(value, list) else [value])]
    return shlex.join(words)


def cmd_bench(args: argparse.Namespace) -> int:
    import torch

    from fave.benchmark.bench import BenchSettings, run_bench
    from fave.benchmark.report import render_markdown, write_bench
    from fave.config import resolve_device
    from fave.data.load import load_split

    device = resolve_device(args.device)  # a bad or missing device fails before anything is loaded
    if args.threads:
        torch.set_num_threads(args.threads)
    models = {}
    if args.runs:
        from fave.rundir import load_run

        loaded = [(Path(d), *load_run(d)[:2]) for d in args.runs]
        datasets = {c.dataset for _, _, c in loaded}
        if len(datasets) > 1 or (args.dataset and {args.dataset} != datasets):
            raise FaveError(
                f"the runs were trained on different datasets ({', '.join(sorted(datasets))}); "
                "benchmark one dataset at a time"
            )
        names = _unique_names([(c.model, d) for d, _, c in loaded])
        models = {n: m for n, (_, m, _) in zip(names, loaded, strict=True)}
        config = loaded[0][2]
    else:
        if not args.dataset:
            raise FaveError("--models needs --dataset (e.g. --dataset ml-100k)")
        from fave.config import resolve_config
        from fave.data.load import dataset_key
        from fave.models.registry import build_model, model_class

        configs = {
            n: resolve_config(n, args.dataset, model_class(n).Config, dataset_key=dataset_key(args.dataset))
            for n in args.models
        }
        config = configs[args.models[0]]
    split = load_split(config, args.data_dir)
    if not args.runs:
        models = {n: build_model(n, c.params, split.num_items) for n, c in configs.items()}
    settings = BenchSettings(
        device=device,
        batch_sizes=args.batch_sizes,
        latency_users=args.latency_users,
        warmup=args.warmup,
        repeats=args.repeats,
        test_set_repeats=args.test_repeats,
        eval_batch_size=args.eval_batch_size,
        flop_users=args.flop_users or None,
        floor=not args.no_floor,
        fave_path=args.fave_path,
        reference=args.reference,
        seed=args.seed,
        dataset=config.dataset,
    )
    result = run_bench(
        models,
        split.eval_set("test"),
        args.max_len or config.data.max_len,
        settings,
        log=lambda line: print(f"[bench] {line}", flush=True),
    )
    result["meta"]["command"] = _command("bench", args)
    paths = write_bench(result, args.out)
    print(render_markdown(result))
    print("written: " + ", ".join(str(p) for p in paths))
    return 0


def cmd_bench_steps(args: argparse.Namespace) -> int:
    import torch

    from fave.benchmark.steps import render_steps_markdown, run_steps, write_steps
    from fave.data.load import load_split
    from fave.rundir import load_run

    if args.threads:
        torch.set_num_threads(args.threads)
    model, config, _ = load_run(args.run_dir)
    reference = None
    if args.fave:
        reference, ref_config, _ = load_run(args.fave)
        if ref_config.dataset != config.dataset:
            raise FaveError(f"{args.fave} was trained on {ref_config.dataset}, {args.run_dir} on {config.dataset}")
    split = load_split(config, args.data_dir)
    result = run_steps(
        model,
        split.eval_set("test"),
        config.data.max_len,
        args.steps,
        name=config.model,
        reference=reference,
        seeds=args.seeds,
        batch_size=args.batch_size,
        dataset=config.dataset,
        log=lambda line: print(f"[steps] {line}", flush=True),
    )
    paths = write_steps(result, args.out, args.protocol)
    print(render_steps_markdown(result, args.protocol))
    print("written: " + ", ".join(str(p) for p in paths))
    return 0


def cmd_bench_eval(args: argparse.Namespace) -> int:
    from fave.benchmark.eval_time import cmd

    return cmd(args)


def cmd_bench_scale(args: argparse.Namespace) -> int:
    from fave.benchmark.scale import cmd

    return cmd(args)


def cmd_bench_ann(args: argparse.Namespace) -> int:
    from fave.benchmark.ann import cmd

    return cmd(args)


COMMANDS = {
    "bench": cmd_bench,
    "bench-steps": cmd_bench_steps,
    "bench-eval": cmd_bench_eval,
    "bench-scale": cmd_bench_scale,
    "bench-ann": cmd_bench_ann,
}
