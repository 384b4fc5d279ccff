"""The command line: the only place where strings become objects.

fave train --model fave --dataset ml-100k --out runs/fave [--set epochs=1] [--seed 0] [--overwrite] [--nproc 4]
torchrun --nproc-per-node 4 -m fave.cli train --model fave --dataset ml-100k --out runs/fave
fave evaluate runs/fave [--save-ranks]
fave recommend runs/fave --user 1 --k 10
fave data fetch|prepare|stats ml-100k [--json]
fave serve runs/fave [--data-dir D] [--max-batch 64] [--max-wait-ms 0] [--index hnsw]
fave export runs/fave --format onnx --out runs/fave/model.onnx [--verify]
fave loadtest runs/fave --out results/serving/NAME [--concurrency 1,4,16]
fave figure trajectories RUN_FAVE RUN_FMREC --out results/figures/trajectories
fave figure priors RUN_FAVE --out results/figures/prior-distribution
fave figure sensitivity [PARAM=]RUN... --out results/figures/sensitivity
fave experiment experiments/ml-100k.yaml [--seeds 0 1 2] [--dry-run]
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import sys
from pathlib import Path

from fave.benchmark.cli import COMMANDS as BENCH_COMMANDS
from fave.benchmark.cli import add_bench_parser
from fave.errors import FaveError


def _add_data_dir(p: argparse.ArgumentParser) -> None:
    p.add_argument("--data-dir", default=None, help="data directory (default: $FAVE_DATA_DIR or ~/.cache/fave)")


def _add_set(p: argparse.ArgumentParser, help: str) -> None:
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE", help=help)


def _add_index(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--index",
        default="exact",
        help="where the top-K comes from: exact (score every item, default), flat (faiss exhaustive) or "
        "hnsw (faiss approximate, for big catalogs; needs fave[ann]); see docs/serving.md",
    )
    p.add_argument(
        "--ef-search", type=int, default=128, help="hnsw: candidates kept per search (higher: better recall, slower)"
    )


def _hnsw(args: argparse.Namespace):
    from fave.serving.ann import HNSWParams

    return HNSWParams(ef_search=args.ef_search)


def _add_figure_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--out", required=True, help="path stem: writes OUT.png, OUT.json and OUT.md")
    p.add_argument("--seed", type=int, default=0, help="seed of the users drawn and of the priors' draws")
    p.add_argument("--eval-users", type=int, default=0, help="test users behind the distances (default 0: all)")
    p.add_argument("--batch-size", type=int, default=512)
    p.add_argument("--threads", type=int, default=0, help="torch CPU threads (default: torch's choice)")
    p.add_argument(
        "--note", default="", help="conditions worth knowing (machine load, budgets), kept in JSON and Markdown"
    )
    _add_data_dir(p)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="fave", description="Generative sequential recommendation: FAVE and baselines."
    )
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("train", help="train a model and evaluate it on validation and test")
    p.add_argument("--model", required=True, help="model name (see `fave models`), or `all` for the Table-1 set")
    p.add_argument("--dataset", required=True, help="ml-100k, beauty, steam, or a path to your own log")
    p.add_argument("--out", required=True, help="run directory (rerun with the same --out to resume)")
    p.add_argument("--config", default=None, help="YAML file with data/train/params sections")
    _add_set(p, "override a config key, e.g. --set epochs=1 --set params.alpha=0.2")
    p.add_argument("--seed", type=int, default=None)
    p.add_argument("--quiet", action="store_true", help="no progress bars or per-epoch lines")
    p.add_argument("--overwrite", action="store_true", help="replace a run of another model/config already in --out")
    p.add_argument(
        "--nproc",
        type=int,
        default=0,
        help="train with N processes on this machine, launched by torchrun (batch_size stays the global batch; "
        "docs/scale.md)",
    )
    _add_data_dir(p)

    p = sub.add_parser("evaluate", help="re-evaluate a trained run on its dataset")
    p.add_argument("run_dir")
    _add_set(p, "change an inference setting, e.g. --set params.delta=0 or --set eval_seed=7")
    p.add_argument("--json", action="store_true")
    p.add_argument(
        "--save-ranks",
        action="store_true",
        help="write the per-user ranks to RUN_DIR/ranks.npz (for runs trained before they were saved; no --set)",
    )
    _add_data_dir(p)

    p = sub.add_parser("recommend", help="top-K recommendations of a trained run for some users")
    p.add_argument("run_dir")
    p.add_argument("--user", action="append", default=[], help="raw user id (repeatable; default: first 3 users)")
    p.add_argument("--k", type=int, default=10, help="how many items per user (1-1000)")
    _add_index(p)
    _add_data_dir(p)

    p = sub.add_parser("data", help="fetch, prepare or describe a dataset")
    p.add_argument("action", choices=["fetch", "prepare", "stats"])
    p.add_argument("dataset")
    p.add_argument("--format", default="auto", help="for your own files: auto, csv, tsv, inter, lines")
    p.add_argument("--json", action="store_true")
    _add_data_dir(p)

    p = sub.add_parser("report", help="aggregate finished runs into results/NAME.json and .md")
    p.add_argument(
        "runs", nargs="+", help="run directories (seeds grouped by name without -seedN), or LABEL=DIR to name the group"
    )
    p.add_argument("--out", required=True, help="output path without extension, e.g. results/ml-100k")
    p.add_argument("--title", default="Results")
    p.add_argument(
        "--command",
        dest="record_command",
        default="",
        help="the command(s) that produced the runs, recorded in the report",
    )
    p.add_argument(
        "--reference",
        default="fave",
        help="label tested against every other model with paired tests, where runs saved ranks (default: fave)",
    )
    p.add_argument(
        "--diversity",
        action="store_true",
        help="write Table 4 instead: ILD@20, N@20 and coverage@20 per model, beside the paper's values",
    )

    p = sub.add_parser("serve", help="serve top-K recommendations of a run over HTTP (needs fave[serve])")
    p.add_argument("run_dir")
    p.add_argument("--host", default="127.0.0.1", help="address to bind (default: loopback only)")
    p.add_argument("--port", type=int, default=8000)
    p.add_argument("--max-batch", type=int, default=64, help="most requests answered by one forward pass")
    p.add_argument(
        "--max-wait-ms",
        type=float,
        default=0.0,
        help="how long a first request waits for others to join its batch (0: take what is queued)",
    )
    p.add_argument("--threads", type=int, default=0, help="torch CPU threads (default: torch's choice)")
    p.add_argument("--onnx", default=None, help="score with this `fave export --format onnx` file (ONNX Runtime)")
    _add_index(p)
    _add_data_dir(p)

    p = sub.add_parser("export", help="write a run's inference graph as ONNX or TorchScript (ONNX needs fave[export])")
    p.add_argument("run_dir")
    p.add_argument("--format", choices=["onnx", "torchscript"], default="onnx")
    p.add_argument("--out", required=True, help="file to write, e.g. runs/fave/model.onnx (+ a .json sidecar)")
    p.add_argument(
        "--verify",
        action="store_true",
        help="check the exported top-10 against the library on every test user (needs the dataset)",
    )
    p.add_argument("--verify-out", default=None, help="write the verification (JSON + Markdown) to this path stem")
    p.add_argument("--threads", type=int, default=0, help="torch/ONNX Runtime CPU threads (default: torch's)")
    p.add_argument("--compile", action="store_true", help="with --verify: time torch.compile of the graph too")
    _add_data_dir(p)

    p = sub.add_parser("loadtest", help="load-test `fave serve` on loopback: throughput and p50/p95/p99")
    p.add_argument("run_dir")
    p.add_argument("--out", required=True, help="path stem for the JSON + Markdown results, e.g. results/serving/x")
    p.add_argument("--concurrency", default="1,4,16", help="comma-separated numbers of concurrent clients")
    p.add_argument("--requests", type=int, default=2000, help="most requests per concurrency level")
    p.add_argument("--seconds", type=float, default=20.0, help="most seconds per concurrency level")
    p.add_argument("--max-batch", type=int, default=64)
    p.add_argument("--max-wait-ms", type=float, default=0.0)
    p.add_argument("--threads", type=int, default=0, help="the server's torch CPU threads (default: torch's)")
    p.add_argument("--k", type=int, default=10)
    p.add_argument("--onnx", default=None, help="the server scores with this ONNX export of the run")
    _add_data_dir(p)

    p = sub.add_parser("figure", help="draw a paper figure (PNG + JSON + Markdown; needs fave[plot])")
    figs = p.add_subparsers(dest="figure", required=True)
    f = figs.add_parser("trajectories", help="Figure 3: FAVE's one step and FMRec's Euler steps, t-SNE + distances")
    f.add_argument("fave_run")
    f.add_argument("fmrec_run")
    f.add_argument("--users", type=int, default=5, help="test users drawn in the panels (default 5)")
    f.add_argument("--background", type=int, default=300, help="other item embeddings shown in grey (default 300)")
    _add_figure_args(f)
    f = figs.add_parser("priors", help="Figure 4: Gaussian noise, the anchor prior and the targets, t-SNE + distances")
    f.add_argument("fave_run")
    f.add_argument("--points", type=int, default=300, help="test users drawn in the map (default 300)")
    _add_figure_args(f)
    f = figs.add_parser(
        "sensitivity", help="Figure 5: HR@20 and NDCG@20 against alpha, beta, gamma and p, from finished FAVE runs"
    )
    f.add_argument(
        "runs",
        nargs="+",
        metavar="[PARAM=]RUN",
        help="FAVE run directories; PARAM (alpha, beta, gamma or p) names the parameter a run varies (default: the "
        "one that differs from the paper's 0.5/0.2/0.1/0.75; a run at those values is every parameter's chosen point)",
    )
    f.add_argument("--out", required=True, help="path stem: writes OUT.png, OUT.json and OUT.md")
    f.add_argument(
        "--protocol", choices=["paper", "masked"], default="paper", help="protocol drawn (JSON and Markdown: both)"
    )
    f.add_argument(
        "--command", dest="record_command", default="", help="the command that trained the runs, recorded with them"
    )
    f.add_argument(
        "--note", default="", help="conditions worth knowing (machine load, budgets), kept in JSON and Markdown"
    )
    f.add_argument(
        "--keep",
        metavar="JSON",
        default="",
        help="an earlier OUT.json: keep its panels of the parameters the given runs do not vary (add a panel "
        "without retraining the others)",
    )
    p = sub.add_parser("experiment", help="run an experiment file (experiments/*.yaml): its trainings, then its report")
    p.add_argument("file", help="experiment YAML, e.g. experiments/ml-100k.yaml")
    p.add_argument("--seeds", type=int, nargs="+", default=None, help="replace the file's default seeds")
    p.add_argument("--dry-run", action="store_true", help="print the commands; run nothing")
    _add_data_dir(p)

    sub.add_parser("models", help="list the registered models")
    add_bench_parser(sub)
    return parser


def cmd_train(args: argparse.Namespace) -> int:
    from fave.distributed import world_from_env

    if args.nproc < 0:
        raise FaveError(f"--nproc {args.nproc}: give a number of processes >= 1")
    launched = world_from_env()  # this process's place when torchrun started it
    under_torchrun = launched.distributed
    if args.model == "all" and (args.nproc > 1 or under_torchrun):
        raise FaveError("--model all runs one training after another; train one --model at a time with torchrun")
    if args.nproc > 1:
        if under_torchrun:
            raise FaveError("--nproc under torchrun: torchrun already started the processes; drop --nproc")
        return _launch_torchrun(args)
    if args.model == "all":  # the whole Table-1 set, one run each, then one combined table
        from fave.experiment import run

        run(_all_models(args), record=" ".join(sys.argv))
        return 0
    from fave.training.run import fmt_metrics, train_run

    config = _train_config(args)
    metrics = train_run(config, args.out, args.data_dir, quiet=args.quiet, overwrite=args.overwrite, own_config=True)
    if not launched.main:
        return 0  # rank 0 reports
    processes = f", {metrics['world_size']} processes" if metrics["world_size"] > 1 else ""
    print(
        f"{args.model} on {args.dataset} (seed {config.seed}), {metrics['train_seconds']:.0f} s of training{processes}"
    )
    for protocol in ("paper", "masked"):
        print(f"  test [{protocol:6s}] {fmt_metrics(metrics['test'][protocol])}")
    print(f"run saved in {args.out}")
    return 0


def _train_config(args: argparse.Namespace):
    """The run config that ``fave train``'s arguments describe."""
    from fave.config import resolve_config
    from fave.data.load import dataset_key
    from fave.models.registry import model_class

    cls = model_class(args.model)
    return resolve_config(
        args.model,
        args.dataset,
        cls.Config,
        args.config,
        args.overrides,
        args.seed,
        dataset_key=dataset_key(args.dataset),
    )


def _launch_torchrun(args: argparse.Namespace) -> int:
    """``fave train --nproc N``: the same command in N processes on this machine, started by torchrun
    (``torch.distributed.run --standalone``, which picks a free local port). The config is checked here
    first, so a bad key is one error line, not one per process."""
    import subprocess

    from fave.distributed import World
    from fave.training.parallel import BatchPlan

    config = _train_config(args)
    BatchPlan(World(0, args.nproc), config.train.micro_batches).check(config.train.batch_size)
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc-per-node={args.nproc}"]
    command += ["-m", "fave.cli", "train", "--model", args.model, "--dataset", args.dataset, "--out", args.out]
    options = {"--config": args.config, "--seed": args.seed, "--data-dir": args.data_dir}
    command += [x for flag, value in options.items() if value is not None for x in (flag, str(value))]
    command += [x for o in args.overrides for x in ("--set", o)]
    command += [flag for flag, on in (("--quiet", args.quiet), ("--overwrite", args.overwrite)) if on]
    code = subprocess.run(command, check=False).returncode
    if code:
        raise FaveError(f"the {args.nproc} training processes stopped with exit status {code}; their errors are above")
    return 0


def _all_models(args: argparse.Namespace):
    """``fave train --model all`` as an experiment: every Table-1 model in OUT/MODEL, the table in OUT/table."""
    from fave.experiment import Experiment, ReportSpec, RunSpec
    from fave.models.registry import MODELS
    from fave.reporting import TABLE_ORDER

    runs = [
        RunSpec(m, m, args.dataset, [args.seed], list(args.overrides), config=args.config)
        for m in TABLE_ORDER
        if m in MODELS
    ]
    extra = ["--data-dir", args.data_dir] if args.data_dir else []
    extra += [flag for flag, on in (("--overwrite", args.overwrite),) if on]
    report = ReportSpec(str(Path(args.out) / "table"), f"All models on {args.dataset}")
    return Experiment("all", args.out, runs, report, run_dir="{root}/{name}", train_args=extra, quiet=args.quiet)


def cmd_experiment(args: argparse.Namespace) -> int:
    from fave.experiment import load_experiment, run

    exp = load_experiment(args.file, args.seeds)
    if args.data_dir:
        exp.train_args += ["--data-dir", args.data_dir]
    record = shlex.join(["fave", "experiment", args.file, *(["--seeds", *map(str, args.seeds)] if args.seeds else [])])
    run(exp, record=record, dry_run=args.dry_run)
    return 0


def cmd_evaluate(args: argparse.Namespace) -> int:
    from fave.data.load import load_split
    from fave.rundir import load_run
    from fave.training.run import evaluate_both, fmt_metrics

    if args.save_ranks and args.overrides:
        raise FaveError("--save-ranks writes the run's own ranks; it cannot be combined with --set")
    model, config, _ = load_run(args.run_dir, overrides=args.overrides)
    ranks: dict = {}
    metrics = evaluate_both(model, load_split(config, args.data_dir), config, ranks=ranks)
    if args.save_ranks:
        from fave.evaluation.significance import save_ranks

        print(f"ranks saved in {save_ranks(args.run_dir, ranks)}", file=sys.stderr)
    if args.json:
        print(json.dumps(metrics, indent=2))
    else:
        for phase in ("valid", "test"):
            for protocol in ("paper", "masked"):
                print(f"{phase:5s} [{protocol:6s}] {fmt_metrics(metrics[phase][protocol])}")
    return 0


def cmd_recommend(args: argparse.Namespace) -> int:
    from fave.serving.recommender import MAX_K, Recommender

    if not 1 <= args.k <= MAX_K:
        raise FaveError(f"--k {args.k}: the number of recommendations must be between 1 and {MAX_K}")
    rec = Recommender.from_run(args.run_dir, args.data_dir, index=args.index, hnsw=_hnsw(args))
    users = args.user or rec.id_map.users[:3]
    for user in users:
        print(rec.describe(str(user), args.k))
    return 0


def cmd_data(args: argparse.Namespace) -> int:
    from fave.data.load import fetch, load_dataset

    if args.action == "fetch":
        print(fetch(args.dataset, args.data_dir))
        return 0
    data = load_dataset(args.dataset, args.data_dir, fmt=args.format)
    stats = data.stats()
    if args.json:
        print(json.dumps(stats))
    else:
        print(" ".join(f"{k}={v}" for k, v in stats.items()))
    return 0


def cmd_report(args: argparse.Namespace) -> int:
    from fave.reporting import write_diversity_report, write_report

    if args.diversity:
        write_diversity_report(args.runs, args.out, args.title, args.record_command)
    else:
        write_report(args.runs, args.out, args.title, args.record_command, reference=args.reference)
    print(Path(args.out).with_suffix(".md").read_text())
    return 0


def cmd_serve(args: argparse.Namespace) -> int:
    from fave.serving.app import serve

    serve(
        args.run_dir,
        args.data_dir,
        args.host,
        args.port,
        args.max_batch,
        args.max_wait_ms,
        args.threads,
        args.onnx,
        args.index,
        _hnsw(args),
    )
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    from fave.config import use_threads
    from fave.serving.export import export_run, verify_export

    use_threads(args.threads)
    meta = export_run(args.run_dir, args.format, args.out)
    print(f"{args.format} graph written to {args.out} (inputs: {', '.join(meta['inputs'])}; sidecar {meta['sidecar']})")
    if args.verify:
        import shlex

        command = ["fave", "export", args.run_dir, "--format", args.format, "--out", args.out, "--verify"]
        options = {"--verify-out": args.verify_out, "--threads": args.threads, "--data-dir": args.data_dir}
        command += [x for flag, value in options.items() if value for x in (flag, str(value))]
        command += ["--compile"] if args.compile else []
        report = verify_export(
            args.run_dir,
            args.out,
            args.format,
            args.data_dir,
            args.verify_out,
            compare_compile=args.compile,
            command=shlex.join(command),
        )
        print(report["summary"])
        return 0 if report["identical_top10"] == report["users"] else 1
    return 0


def cmd_loadtest(args: argparse.Namespace) -> int:
    from fave.serving.loadtest import run_loadtest

    print(run_loadtest(args))
    return 0


def cmd_figure(args: argparse.Namespace) -> int:
    import shlex

    from fave.config import use_threads

    if args.figure == "sensitivity":
        return _figure_sensitivity(args)
    use_threads(args.threads)
    common = ["--out", args.out, "--seed", str(args.seed)]
    common += ["--eval-users", str(args.eval_users)] if args.eval_users else []
    common += ["--threads", str(args.threads)] if args.threads else []
    common += ["--note", args.note] if args.note else []
    if args.figure == "trajectories":
        from fave.figures.trajectories import run_trajectories, write_trajectories

        command = ["fave", "figure", "trajectories", args.fave_run, args.fmrec_run, *common]
        command += ["--users", str(args.users), "--background", str(args.background)]
        result = run_trajectories(
            args.fave_run,
            args.fmrec_run,
            users=args.users,
            seed=args.seed,
            eval_users=args.eval_users,
            background=args.background,
            batch_size=args.batch_size,
            data_dir=args.data_dir,
            command=shlex.join(command),
            note=args.note,
        )
        paths = write_trajectories(result, args.out)
    else:
        from fave.figures.priors import run_priors, write_priors

        command = ["fave", "figure", "priors", args.fave_run, *common, "--points", str(args.points)]
        result = run_priors(
            args.fave_run,
            points=args.points,
            seed=args.seed,
            eval_users=args.eval_users,
            batch_size=args.batch_size,
            data_dir=args.data_dir,
            command=shlex.join(command),
            note=args.note,
        )
        paths = write_priors(result, args.out)
    print(paths[2].read_text(encoding="utf-8"))
    print("written: " + ", ".join(str(p) for p in paths), file=sys.stderr)
    return 0


def _figure_sensitivity(args: argparse.Namespace) -> int:
    """``fave figure sensitivity``: reads finished runs only (no data, no model), so no threads or data dir."""
    from fave.figures.sensitivity import keep_panels, run_sensitivity, write_sensitivity

    command = ["fave", "figure", "sensitivity", *args.runs, "--out", args.out]
    command += ["--protocol", args.protocol] if args.protocol != "paper" else []
    command += ["--note", args.note] if args.note else []
    command += ["--keep", args.keep] if args.keep else []
    result = run_sensitivity(args.runs, shlex.join(command), args.record_command, args.note)
    if args.keep:
        result = keep_panels(result, args.keep)
    paths = write_sensitivity(result, args.out, args.protocol)
    print(paths[2].read_text(encoding="utf-8"))
    print("written: " + ", ".join(str(p) for p in paths), file=sys.stderr)
    return 0


def cmd_models(args: argparse.Namespace) -> int:
    from fave.models.registry import MODELS

    for name, target in MODELS.items():
        print(f"{name:12s} {target}")
    return 0


COMMANDS = {
    "train": cmd_train,
    "evaluate": cmd_evaluate,
    "recommend": cmd_recommend,
    "data": cmd_data,
    "models": cmd_models,
    "report": cmd_report,
    "serve": cmd_serve,
    "export": cmd_export,
    "loadtest": cmd_loadtest,
    "figure": cmd_figure,
    "experiment": cmd_experiment,
    **BENCH_COMMANDS,
}


def _silence_stdout() -> None:
    """Point stdout at /dev/null, so the interpreter's final flush into the closed pipe is not reported."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError):  # stdout is not a file (tests, embedding); io.UnsupportedOperation is both
        pass


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return COMMANDS[args.command](args)
    except FaveError as e:
        print(f"fave: error: {e}", file=sys.stderr)
        return 2
    except BrokenPipeError:  # `fave ... | head`: the reader left, which is not an error of ours
        _silence_stdout()
        return 0
    except KeyboardInterrupt:
        print("fave: interrupted; rerun the same command to resume from the last checkpoint", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
