"""``fave loadtest``: start ``fave serve`` on loopback, drive it at several concurrency levels,
write throughput and latency percentiles to ``OUT.json`` and ``OUT.md`` with the command.

Bounded: each level stops at ``--requests`` requests or ``--seconds`` seconds, whichever comes
first; the server is started here on 127.0.0.1 (a free port) and stopped with SIGTERM after.
Requests are ``POST /recommend`` with the test users' histories (the last ``max_len`` items)
when the dataset is at hand, else random histories of the run's items (said in the file).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import re
import shlex
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

from fave.errors import FaveError
from fave.io_utils import atomic_write_json, atomic_write_text
from fave.rundir import read_config, read_id_map
from fave.serving.recommender import MAX_K

HOST = "127.0.0.1"  # loopback only
WARMUP = 30  # requests before the first level, not counted
START_SECONDS = 120.0  # most time for the server to load and answer /health


def parse_levels(text: str) -> list[int]:
    try:
        levels = [int(x) for x in text.split(",") if x.strip()]
    except ValueError:
        levels = []
    if not levels or not all(1 <= c <= 256 for c in levels):
        raise FaveError(f"--concurrency {text!r}: give comma-separated client counts 1..256, e.g. 1,4,16")
    return levels


def check_args(args: argparse.Namespace) -> list[int]:
    if not 1 <= args.requests <= 100_000:
        raise FaveError(f"--requests {args.requests}: give 1..100000 requests per level")
    if not 0 < args.seconds <= 600:
        raise FaveError(f"--seconds {args.seconds}: give more than 0 and at most 600 seconds per level")
    if not 1 <= args.k <= MAX_K:
        raise FaveError(f"--k {args.k}: the number of recommendations must be between 1 and {MAX_K}")
    return parse_levels(args.concurrency)


def workload(run_dir: str, data_dir: str | None, n: int = 2000) -> tuple[list[list[str]], str]:
    """Request histories (raw ids) and where they come from."""
    config = read_config(run_dir)
    id_map, _ = read_id_map(Path(run_dir))
    max_len = config.data.max_len
    try:
        from fave.data.load import load_split

        test = load_split(config, data_dir).eval_set("test")
        histories = [[id_map.raw_item(int(i)) for i in h[-max_len:]] for h in test.inputs]
        return histories, f"the {len(histories)} test users' histories of {config.dataset} (last {max_len} items)"
    except FaveError:
        rng = np.random.default_rng(0)
        histories = [list(rng.choice(id_map.items, size=min(max_len, len(id_map.items)))) for _ in range(n)]
        return histories, f"{n} random histories of {max_len} items (the dataset was not at hand)"


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((HOST, 0))
        return int(s.getsockname()[1])


def start_server(args: argparse.Namespace, port: int) -> subprocess.Popen:
    cmd = [sys.executable, "-m", "fave.cli", "serve", args.run_dir, "--host", HOST, "--port", str(port)]
    cmd += ["--max-batch", str(args.max_batch), "--max-wait-ms", str(args.max_wait_ms), "--threads", str(args.threads)]
    if args.data_dir:
        cmd += ["--data-dir", args.data_dir]
    if args.onnx:
        cmd += ["--onnx", args.onnx]
    return subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def stop_server(proc: subprocess.Popen) -> str:
    """SIGTERM (graceful shutdown), then the server's output."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)
    return proc.stdout.read() if proc.stdout else ""


def batch_stats(page: str) -> tuple[float, float, float, float]:
    """(sum, count) of the fave_batch_size histogram and of /recommend's latency in a /metrics page."""

    def get(name: str, labels: str = "") -> float:
        m = re.search(rf"^{re.escape(name + labels)} (\S+)$", page, flags=re.M)
        return float(m.group(1)) if m else 0.0

    where = '{endpoint="/recommend"}'
    return (
        get("fave_batch_size_sum"),
        get("fave_batch_size_count"),
        get("fave_request_latency_seconds_sum", where),
        get("fave_request_latency_seconds_count", where),
    )


class Connection:
    """One keep-alive HTTP/1.1 connection on loopback: a minimal client, so the load generator takes
    little of the CPU it shares with the server (responses carry a content-length)."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, port: int) -> None:
        self.reader, self.writer, self.host = reader, writer, f"{HOST}:{port}"

    @classmethod
    async def open(cls, port: int) -> Connection:
        reader, writer = await asyncio.open_connection(HOST, port)
        return cls(reader, writer, port)

    async def request(self, method: str, path: str, body: bytes = b"") -> tuple[int, bytes]:
        head = f"{method} {path} HTTP/1.1\r\nHost: {self.host}\r\n"
        if body:
            head += f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n"
        self.writer.write(head.encode() + b"\r\n" + body)
        await self.writer.drain()
        header = await self.reader.readuntil(b"\r\n\r\n")
        lines = header.decode("latin-1").split("\r\n")
        status = int(lines[0].split(" ", 2)[1])
        length = next(int(x.split(":", 1)[1]) for x in lines[1:] if x.lower().startswith("content-length:"))
        return status, await self.reader.readexactly(length)

    def close(self) -> None:
        self.writer.close()


async def run_level(port: int, bodies: list[bytes], clients: int, args: argparse.Namespace) -> dict:
    latencies: list[float] = []
    statuses: dict[str, int] = {}
    issued = 0
    conns = [await Connection.open(port) for _ in range(clients)]

    async def worker(conn: Connection) -> None:
        nonlocal issued
        while issued < args.requests and time.perf_counter() < deadline:
            body = bodies[issued % len(bodies)]
            issued += 1
            t0 = time.perf_counter()
            try:
                status = str((await conn.request("POST", "/recommend", body))[0])
            except (OSError, asyncio.IncompleteReadError, ValueError, StopIteration) as e:  # counted, not raised
                status = type(e).__name__
                conn = await Connection.open(port)
            latencies.append(time.perf_counter() - t0)
            statuses[status] = statuses.get(status, 0) + 1

    before = batch_stats((await conns[0].request("GET", "/metrics"))[1].decode())
    start = time.perf_counter()
    deadline = start + args.seconds
    await asyncio.gather(*(worker(c) for c in conns))
    wall = time.perf_counter() - start
    after = batch_stats(await _get(port, "/metrics"))
    for c in conns:
        c.close()
    ms = np.array(latencies) * 1000
    batches = after[1] - before[1]
    return {
        "clients": clients,
        "requests": len(latencies),
        "errors": sum(n for s, n in statuses.items() if s != "200"),
        "statuses": statuses,
        "seconds": round(wall, 3),
        "throughput_rps": round(len(latencies) / wall, 1),
        "p50_ms": round(float(np.percentile(ms, 50)), 2),
        "p95_ms": round(float(np.percentile(ms, 95)), 2),
        "p99_ms": round(float(np.percentile(ms, 99)), 2),
        "max_ms": round(float(ms.max()), 2),
        "mean_batch": round((after[0] - before[0]) / batches, 2) if batches else None,
        "server_mean_ms": round(1000 * (after[2] - before[2]) / served, 2)
        if (served := after[3] - before[3])
        else None,
    }


async def _get(port: int, path: str) -> str:
    conn = await Connection.open(port)
    try:
        return (await conn.request("GET", path))[1].decode()
    finally:
        conn.close()


async def wait_healthy(port: int, proc: subprocess.Popen) -> None:
    deadline = time.monotonic() + START_SECONDS
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            out = proc.stdout.read() if proc.stdout else ""
            raise FaveError(f"the server exited (status {proc.returncode}): {out.strip()[-300:]}")
        try:
            await _get(port, "/health")
            return
        except (OSError, asyncio.IncompleteReadError):  # not listening yet
            await asyncio.sleep(0.2)
    raise FaveError(f"the server did not answer /health within {START_SECONDS:.0f} s")


async def drive(args: argparse.Namespace, levels: list[int], histories: list[list[str]], port: int, proc) -> list:
    await wait_healthy(port, proc)
    bodies = [json.dumps({"items": h, "k": args.k}).encode() for h in histories]
    warm = await Connection.open(port)
    for i in range(WARMUP):
        await warm.request("POST", "/recommend", bodies[i % len(bodies)])
    warm.close()
    return [await run_level(port, bodies, c, args) for c in levels]


def command_line(args: argparse.Namespace) -> str:
    parts = ["fave", "loadtest", args.run_dir, "--out", args.out, "--concurrency", args.concurrency]
    parts += ["--requests", str(args.requests), "--seconds", str(args.seconds), "--max-batch", str(args.max_batch)]
    parts += ["--max-wait-ms", str(args.max_wait_ms), "--threads", str(args.threads), "--k", str(args.k)]
    if args.data_dir:
        parts += ["--data-dir", args.data_dir]
    if args.onnx:
        parts += ["--onnx", args.onnx]
    return shlex.join(parts)


def _git_commit() -> str:
    try:
        out = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, timeout=10)
        return out.stdout.strip() or "unknown"
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def markdown(r: dict[str, Any]) -> str:
    head = "| clients | requests | errors | req/s | p50 ms | p95 ms | p99 ms | max ms | mean batch | server mean ms |"
    rows = [
        f"| {x['clients']} | {x['requests']} | {x['errors']} | {x['throughput_rps']} | {x['p50_ms']} | "
        f"{x['p95_ms']} | {x['p99_ms']} | {x['max_ms']} | {x['mean_batch']} | {x['server_mean_ms']} |"
        for x in r["levels"]
    ]
    s = r["server"]
    return "\n".join(
        [
            f"# Load test: {r['model']} ({r['run_dir']}) over HTTP on loopback",
            "",
            f"Command: `{r['command']}` (commit {r['commit']})",
            "",
            f"Server: `fave serve`, {s['scoring']}, max batch {s['max_batch']}, max wait {s['max_wait_ms']} ms, "
            f"torch threads {s['threads'] or 'default'}, {s.get('http', 'unknown')}. Client: "
            f"{r.get('client', 'unknown')}. Requests: `POST /recommend` k={r['k']}, {r['workload']}; "
            f"each level stops at {r['bounds']['requests']} requests or {r['bounds']['seconds']} s. Latencies are "
            "the client's (connect excluded); `server mean ms` is the app's own time per request (from /metrics).",
            "",
            head,
            "|---|---|---|---|---|---|---|---|---|---|",
            *rows,
            "",
            f"Machine: {r['machine']['cpus']} CPU cores ({r['machine']['platform']}), load average "
            f"{r['machine']['load_before']} before and {r['machine']['load_after']} after; the client runs on the "
            "same cores as the server. " + r["note"],
            "",
        ]
    )


def run_loadtest(args: argparse.Namespace) -> str:
    levels = check_args(args)
    histories, source = workload(args.run_dir, args.data_dir)
    config = read_config(args.run_dir)
    load_before = [round(x, 2) for x in os.getloadavg()]
    port = free_port()
    proc = start_server(args, port)
    try:  # the client's own loop: uvloop, when installed, takes less of the CPU it shares with the server
        import uvloop

        run, client_loop = uvloop.run, "uvloop"
    except ImportError:
        run, client_loop = asyncio.run, "asyncio"
    try:
        results = run(drive(args, levels, histories, port, proc))
    finally:
        log = stop_server(proc)
    first = log.strip().splitlines()[0] if log.strip() else ""
    scoring = re.search(r"\(([^)]*scoring[^)]*)\)", first)
    http = re.search(r"(HTTP parser [^,]+, event loop [^,]+),", first)
    report = {
        "command": command_line(args),
        "commit": _git_commit(),
        "run_dir": args.run_dir,
        "model": config.model,
        "dataset": config.dataset,
        "k": args.k,
        "workload": source,
        "bounds": {"requests": args.requests, "seconds": args.seconds},
        "server": {
            "max_batch": args.max_batch,
            "max_wait_ms": args.max_wait_ms,
            "threads": args.threads,
            "scoring": scoring.group(1) if scoring else "unknown",
            "banner": first,
            "http": http.group(1) if http else "unknown",
            "exit_status": proc.returncode,  # uvicorn re-raises SIGTERM after its shutdown: -15
            "graceful_shutdown": "Application shutdown complete" in log,
        },
        "levels": results,
        "client": f"{HOST}, one keep-alive connection per client, {client_loop} event loop, in one process",
        "machine": {
            "cpus": os.cpu_count(),
            "platform": platform.platform(),
            "python": platform.python_version(),
            "load_before": load_before,
            "load_after": [round(x, 2) for x in os.getloadavg()],
        },
        "note": "Latency does not depend on accuracy; timings on shared cores vary with the background load.",
    }
    atomic_write_json(Path(args.out + ".json"), report)
    atomic_write_text(Path(args.out + ".md"), markdown(report))
    return markdown(report)
