"""Service metrics in the Prometheus text exposition format (version 0.0.4), without a dependency.

fave_requests_total{endpoint, status}          counter
fave_request_latency_seconds{endpoint}         histogram (time in the app, body included)
fave_batch_size                                histogram (requests per forward pass)
fave_batch_seconds                             histogram (seconds per forward pass + top-K)
fave_fallback_total{reason}                    counter (popularity answers)
fave_unknown_items_total                       counter (history ids dropped as unknown)
"""

from __future__ import annotations

import bisect
import threading
from collections import defaultdict

LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512)
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


class Histogram:
    """Cumulative-bucket histogram with a sum and a count."""

    def __init__(self, buckets: tuple[float, ...]) -> None:
        self.buckets = buckets
        self.counts = [0] * (len(buckets) + 1)  # the last is +Inf
        self.sum, self.count = 0.0, 0

    def observe(self, value: float) -> None:
        self.counts[bisect.bisect_left(self.buckets, value)] += 1
        self.sum += value
        self.count += 1

    def lines(self, name: str, labels: str = "") -> list[str]:
        sep = "," if labels else ""
        out, running = [], 0
        for le, n in zip([*map(_num, self.buckets), "+Inf"], self.counts, strict=True):
            running += n
            out.append(f'{name}_bucket{{{labels}{sep}le="{le}"}} {running}')
        tail = f"{{{labels}}}" if labels else ""
        return [*out, f"{name}_sum{tail} {self.sum!r}", f"{name}_count{tail} {self.count}"]


def _num(x: float) -> str:
    return str(int(x)) if float(x).is_integer() else repr(float(x))


def _label(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


class Metrics:
    """Thread-safe counters and histograms of one server process."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.requests: dict[tuple[str, int], int] = defaultdict(int)
        self.latency: dict[str, Histogram] = {}
        self.batch_size = Histogram(BATCH_BUCKETS)
        self.batch_seconds = Histogram(LATENCY_BUCKETS)
        self.fallbacks: dict[str, int] = defaultdict(int)
        self.unknown_items = 0

    def request(self, endpoint: str, status: int, seconds: float) -> None:
        with self._lock:
            self.requests[(endpoint, status)] += 1
            self.latency.setdefault(endpoint, Histogram(LATENCY_BUCKETS)).observe(seconds)

    def batch(self, size: int, seconds: float) -> None:
        with self._lock:
            self.batch_size.observe(size)
            self.batch_seconds.observe(seconds)

    def fallback(self, reason: str) -> None:
        with self._lock:
            self.fallbacks[reason] += 1

    def dropped(self, n: int) -> None:
        with self._lock:
            self.unknown_items += n

    def render(self) -> str:
        with self._lock:
            out = _head("fave_requests_total", "counter", "HTTP requests by endpoint and status.")
            for (endpoint, status), n in sorted(self.requests.items()):
                out.append(f'fave_requests_total{{endpoint="{_label(endpoint)}",status="{status}"}} {n}')
            out += _head("fave_request_latency_seconds", "histogram", "Time from request to response.")
            for endpoint, h in sorted(self.latency.items()):
                out += h.lines("fave_request_latency_seconds", f'endpoint="{_label(endpoint)}"')
            out += _head("fave_batch_size", "histogram", "Requests answered by one forward pass.")
            out += self.batch_size.lines("fave_batch_size")
            out += _head("fave_batch_seconds", "histogram", "Seconds per forward pass and top-K.")
            out += self.batch_seconds.lines("fave_batch_seconds")
            out += _head("fave_fallback_total", "counter", "Popularity answers by reason.")
            out += [f'fave_fallback_total{{reason="{r}"}} {n}' for r, n in sorted(self.fallbacks.items())]
            out += _head("fave_unknown_items_total", "counter", "History ids dropped as unknown.")
            out.append(f"fave_unknown_items_total {self.unknown_items}")
        return "\n".join(out) + "\n"


def _head(name: str, kind: str, text: str) -> list[str]:
    return [f"# HELP {name} {text}", f"# TYPE {name} {kind}"]
