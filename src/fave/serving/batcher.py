"""Micro-batching: concurrent requests share one forward pass.

One worker thread owns the model. It waits for a first request, then gathers more for at
most ``max_wait_ms`` (or until ``max_batch`` are queued) and answers them all with one call
of ``handle(items) -> results``. Requests that arrive while a batch runs form the next one, so
under load batches grow by themselves even with ``max_wait_ms = 0``.

The queue is thread-safe and results are ``concurrent.futures.Future`` objects, so callers may
be threads or coroutines on any event loop (``await batcher.submit(x)``).
"""

from __future__ import annotations

import asyncio
import queue
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from typing import Any, Generic, TypeVar

from fave.errors import FaveError

T = TypeVar("T")
R = TypeVar("R")

_STOP = object()


class MicroBatcher(Generic[T, R]):
    """Group submitted items into batches of at most ``max_batch``, waiting at most ``max_wait_ms``."""

    def __init__(
        self,
        handle: Callable[[Sequence[T]], Sequence[R]],
        max_batch: int = 64,
        max_wait_ms: float = 0.0,
        on_batch: Callable[[int, float], None] | None = None,
    ) -> None:
        if max_batch < 1:
            raise FaveError(f"--max-batch {max_batch}: the batch size must be at least 1")
        if not 0 <= max_wait_ms <= 1000:
            raise FaveError(f"--max-wait-ms {max_wait_ms}: the wait must be between 0 and 1000 ms")
        self.handle, self.max_batch, self.max_wait = handle, max_batch, max_wait_ms / 1000
        self.on_batch = on_batch  # (batch size, seconds of the forward) -> None, for metrics
        self._queue: queue.Queue[Any] = queue.Queue()
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._closed = False

    def _start(self) -> None:
        with self._lock:
            if self._closed:
                raise FaveError("the server is shutting down; retry on another instance")
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="fave-batcher", daemon=True)
                self._thread.start()

    def submit_future(self, item: T) -> Future[R]:
        self._start()
        fut: Future[R] = Future()
        self._queue.put((item, fut))
        return fut

    async def submit(self, item: T) -> R:
        return await asyncio.wrap_future(self.submit_future(item))

    def close(self, timeout: float = 10.0) -> None:
        """Stop taking requests; answer the queued ones, then stop the worker (graceful shutdown)."""
        with self._lock:
            self._closed = True
            thread = self._thread
        if thread is not None:
            self._queue.put(_STOP)
            thread.join(timeout)

    def _gather(self, first: Any) -> tuple[list[Any], bool]:
        batch, stop = [first], False
        deadline = time.monotonic() + self.max_wait
        while len(batch) < self.max_batch:
            remaining = deadline - time.monotonic()
            try:
                nxt = self._queue.get(timeout=remaining) if remaining > 0 else self._queue.get_nowait()
            except queue.Empty:
                break
            if nxt is _STOP:
                stop = True
                break
            batch.append(nxt)
        return batch, stop

    def _run(self) -> None:
        stop = False
        while not stop:
            first = self._queue.get()
            if first is _STOP:
                break
            batch, stop = self._gather(first)
            pending = [(item, fut) for item, fut in batch if fut.set_running_or_notify_cancel()]
            if not pending:
                continue
            start = time.perf_counter()
            try:
                results = self.handle([item for item, _ in pending])
            except BaseException as e:  # the whole batch fails; each caller sees the error
                for _, fut in pending:
                    fut.set_exception(e)
                continue
            if self.on_batch is not None:
                self.on_batch(len(pending), time.perf_counter() - start)
            for (_, fut), result in zip(pending, results, strict=True):
                fut.set_result(result)
        while True:  # answer what is still queued (nothing new arrives once closed)
            try:
                item = self._queue.get_nowait()
            except queue.Empty:
                return
            if item is not _STOP and item[1].set_running_or_notify_cancel():
                try:
                    item[1].set_result(self.handle([item[0]])[0])
                except BaseException as e:
                    item[1].set_exception(e)
