"""HTTP service over a trained run (FastAPI): ``fave serve RUN_DIR --port 8000 [--data-dir D]``.

    GET  /health                      -> {"status": "ok", "model": ..., "items": N, "index": "exact"}
    POST /recommend {"items": [...], "k": 10, "exclude_history": true, "exclude": [], "strict": false}
                                      -> {"items": [{"item": id, "score": s}, ...],
                                          "fallback": null | "popularity", "warnings": [...]}
    GET  /users/{id}/recommend?k=10&exclude_history=true
                                      -> the same, after that user's whole sequence (needs --data-dir)
    GET  /metrics                     -> Prometheus text: requests by endpoint and status, latency
                                         histogram, batch sizes (see :mod:`fave.serving.metrics`)

Concurrent requests are micro-batched into one forward pass (``--max-batch``, ``--max-wait-ms``;
:mod:`fave.serving.batcher`); a history's answer is the same alone or in a batch. ``--index hnsw``
takes the top-K from an approximate faiss index over the items (:mod:`fave.serving.ann`).

Policies. Item ids are the raw ids of the training data.
- Unknown history ids are dropped and named in ``warnings`` (cut to their first characters);
  with ``"strict": true`` any unknown id is HTTP 422 instead.
- An empty history (or one whose ids were all unknown) is answered with the most popular items,
  marked ``"fallback": "popularity"``, when the popularity counts are known (the server was
  started with the data at hand, or the run is a popularity model); otherwise it is HTTP 422
  naming the problem.
- ``k`` must be an integer 1..1000 (``true`` is not 1); a body over :data:`MAX_BODY_BYTES` gives
  HTTP 413 before it is parsed; an unknown user is HTTP 404.
- Shutdown (SIGINT/SIGTERM under uvicorn) stops taking requests, answers the queued ones, then exits.
"""

import time
from collections.abc import Awaitable, Callable, MutableMapping
from contextlib import asynccontextmanager
from typing import Any

from fave.config import use_threads
from fave.errors import FaveError
from fave.serving.ann import HNSWParams, import_faiss
from fave.serving.batcher import MicroBatcher
from fave.serving.metrics import CONTENT_TYPE, Metrics
from fave.serving.recommender import MAX_K, Query, Ranked, Recommender, shown

MAX_BODY_BYTES = 1 << 20  # 1 MiB: a history of tens of thousands of ids
MAX_WARNED_IDS = 5  # unknown ids named in one warning

Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]


class BodyLimit:
    """ASGI middleware: reject a request body over ``limit`` bytes with 413, reading at most that much."""

    def __init__(self, app: Any, limit: int = MAX_BODY_BYTES) -> None:
        self.app, self.limit = app, limit

    async def __call__(self, scope: MutableMapping[str, Any], receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = dict(scope.get("headers") or []).get(b"content-length")
        if declared is not None and (not declared.isdigit() or int(declared) > self.limit):
            await self._too_large(send)
            return
        body, more = b"", True
        while more:  # a chunked body has no content-length: count what arrives
            message = await receive()
            if message["type"] != "http.request":
                return  # the client went away
            body += message.get("body", b"")
            more = message.get("more_body", False)
            if len(body) > self.limit:
                await self._too_large(send)
                return
        replayed = False

        async def replay() -> Message:
            nonlocal replayed
            if replayed:
                return await receive()
            replayed = True
            return {"type": "http.request", "body": body, "more_body": False}

        await self.app(scope, replay, send)

    async def _too_large(self, send: Send) -> None:
        detail = f'{{"detail":"request body over {self.limit} bytes; send a shorter history"}}'.encode()
        headers = [(b"content-type", b"application/json"), (b"content-length", str(len(detail)).encode())]
        await send({"type": "http.response.start", "status": 413, "headers": headers})
        await send({"type": "http.response.body", "body": detail})


def endpoint_label(path: str) -> str:
    """The route a path belongs to, for metric labels (a bounded set, never the raw path)."""
    if path in ("/recommend", "/health", "/metrics"):
        return path
    if path.startswith("/users/") and path.endswith("/recommend"):
        return "/users/{id}/recommend"
    return "other"


class RequestMetrics:
    """ASGI middleware: count every response by endpoint and status and time it (413s included)."""

    def __init__(self, app: Any, metrics: Metrics) -> None:
        self.app, self.metrics = app, metrics

    async def __call__(self, scope: MutableMapping[str, Any], receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start, status = time.perf_counter(), 500

        async def timed_send(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            await send(message)

        try:
            await self.app(scope, receive, timed_send)
        finally:
            self.metrics.request(endpoint_label(scope.get("path", "")), status, time.perf_counter() - start)


def unknown_warning(unknown: list[str]) -> str:
    named = ", ".join(shown(u) for u in unknown[:MAX_WARNED_IDS])
    more = f" and {len(unknown) - MAX_WARNED_IDS} more" if len(unknown) > MAX_WARNED_IDS else ""
    return f"dropped {len(unknown)} unknown item id(s): {named}{more}; ids must come from the training data"


def create_app(
    recommender: Recommender,
    model_name: str = "",
    max_body: int = MAX_BODY_BYTES,
    max_batch: int = 64,
    max_wait_ms: float = 0.0,
) -> Any:
    try:
        from fastapi import FastAPI, HTTPException, Request
        from fastapi import Query as QueryParam
        from fastapi.exceptions import RequestValidationError
        from fastapi.responses import JSONResponse, PlainTextResponse
        from pydantic import BaseModel, Field
    except ImportError:  # pragma: no cover - depends on the environment
        raise FaveError("serving needs FastAPI: pip install 'fave[serve]'") from None

    class RecommendRequest(BaseModel):
        items: list[str] = Field(..., description="the user's history, oldest first (raw item ids)")
        k: int = Field(10, ge=1, le=MAX_K, strict=True)  # strict: true/1.0/"5" are not integers
        exclude_history: bool = Field(True, strict=True)
        exclude: list[str] = Field([], description="more raw ids never to recommend")
        strict: bool = Field(False, strict=True, description="unknown history ids are a 422, not dropped")

    metrics = Metrics()
    batcher: MicroBatcher[Query, Ranked] = MicroBatcher(recommender.answer, max_batch, max_wait_ms, metrics.batch)

    @asynccontextmanager
    async def lifespan(_: Any) -> Any:
        yield
        batcher.close()  # graceful: the queued requests are answered first

    app = FastAPI(title="fave", description="Top-K next-item recommendations", lifespan=lifespan)
    app.state.batcher, app.state.metrics = batcher, metrics
    app.add_middleware(BodyLimit, limit=max_body)
    app.add_middleware(RequestMetrics, metrics=metrics)  # outermost: counts the 413s too

    @app.exception_handler(RequestValidationError)
    async def invalid(_: Request, exc: RequestValidationError) -> JSONResponse:
        # the reasons without the offending input, which may be huge
        errors = [{k: e.get(k) for k in ("loc", "msg", "type")} for e in exc.errors()]
        return JSONResponse(status_code=422, content={"detail": errors})

    def listed(top: Ranked) -> list[dict[str, Any]]:
        return [{"item": i, "score": s} for i, s in top]

    async def answer(ids: Any, unknown: list[str], k: int, exclude_history: bool, exclude: list[str]) -> dict[str, Any]:
        warnings = [unknown_warning(unknown)] if unknown else []
        if unknown:
            metrics.dropped(len(unknown))
        if not len(ids):  # nothing known to condition on: popularity, when the counts are known
            if recommender.popularity is None:
                problem = f"unknown item id {shown(unknown[0])}" if unknown else "empty history"
                raise HTTPException(
                    status_code=422,
                    detail=f"{problem}; give at least one item id of the training data "
                    "(a popularity fallback needs the server started with --data-dir)",
                )
            metrics.fallback("unknown_items" if unknown else "empty_history")
            top = recommender.popular(k, exclude)
            return {"items": listed(top), "fallback": "popularity", "warnings": warnings}
        query = recommender.make_query(ids, k, exclude_history, exclude)
        return {"items": listed(await batcher.submit(query)), "fallback": None, "warnings": warnings}

    @app.get("/health")
    async def health() -> dict[str, Any]:
        return {
            "status": "ok",
            "model": model_name,
            "items": recommender.model.num_items,
            "index": recommender.index_name,
        }

    @app.get("/metrics")
    async def prometheus() -> PlainTextResponse:
        return PlainTextResponse(metrics.render(), media_type=CONTENT_TYPE)

    @app.post("/recommend")
    async def recommend(req: RecommendRequest) -> JSONResponse:
        ids, unknown = recommender.split_known(req.items)
        if unknown and req.strict:
            raise HTTPException(
                status_code=422, detail=f"unknown item id {shown(unknown[0])}; ids must come from the training data"
            )
        return JSONResponse(await answer(ids, unknown, req.k, req.exclude_history, req.exclude))  # plain JSON types

    @app.get("/users/{user_id}/recommend")
    async def recommend_user(
        user_id: str, k: int = QueryParam(10, ge=1, le=MAX_K), exclude_history: bool = True
    ) -> JSONResponse:
        try:
            history = recommender.user_history(user_id)
        except FaveError as e:
            raise HTTPException(status_code=404, detail=str(e)) from None
        ids, _ = recommender.split_known(history)
        return JSONResponse({"user": user_id, **await answer(ids, [], k, exclude_history, [])})

    return app


def http_stack() -> tuple[str, str]:
    """The HTTP parser and event loop uvicorn is told to run on: its C ones when installed (``fave[serve]``),
    else its pure-Python fallbacks."""
    import importlib.util

    parser = "httptools" if importlib.util.find_spec("httptools") else "h11"
    loop = "uvloop" if importlib.util.find_spec("uvloop") else "asyncio"
    return parser, loop


def stack_line(parser: str, loop: str) -> str:
    """The banner's words for :func:`http_stack` (``fave loadtest`` reads them back)."""
    parser += " (pip install httptools: faster)" if parser == "h11" else ""
    loop += " (pip install uvloop: faster)" if loop == "asyncio" else ""
    return f"HTTP parser {parser}, event loop {loop}"


def serve(
    run_dir: str,
    data_dir: str | None = None,
    host: str = "127.0.0.1",
    port: int = 8000,
    max_batch: int = 64,
    max_wait_ms: float = 0.0,
    threads: int = 0,
    onnx: str | None = None,
    index: str = "exact",
    hnsw: HNSWParams | None = None,
) -> None:
    """``fave serve``: load the run, then run uvicorn until SIGINT/SIGTERM (graceful: in-flight
    and queued requests are answered, for at most 10 s). ``onnx``: score with that export;
    ``index``: "exact", or the faiss index to take the top-K from (built before serving)."""
    if not 0 <= port <= 65535:
        raise FaveError(f"--port {port}: a port is between 0 and 65535")
    use_threads(threads)  # before loading: ONNX Runtime takes the same count
    try:
        import uvicorn
    except ImportError:
        raise FaveError("serving needs uvicorn: pip install 'fave[serve]'") from None
    rec = Recommender.from_run(run_dir, data_dir, onnx, index, hnsw)
    if threads and rec.ann is not None:  # faiss searches a batch's queries on its own threads
        import_faiss(index).omp_set_num_threads(threads)
    app = create_app(rec, type(rec.model).__name__, max_batch=max_batch, max_wait_ms=max_wait_ms)
    parser, loop = http_stack()
    fallback = "on" if rec.popularity is not None else "off (no data: start with --data-dir)"
    users = f"{len(rec.histories)} users" if rec.histories else "no user histories"
    engine = f"ONNX Runtime {onnx}" if onnx else "torch eager"
    if rec.ann is not None:
        engine += f", top-K from a faiss {rec.ann.kind} index built in {rec.ann.build_seconds:.1f} s"
        engine += f" (efSearch {rec.ann.ef_search})" if rec.ann.kind == "hnsw" else ""
    print(
        f"fave serve: {type(rec.model).__name__} ({rec.scorer.kind} scoring, {engine}), {users}, "
        f"popularity fallback {fallback}, max batch {max_batch}, max wait {max_wait_ms} ms, "
        f"{stack_line(parser, loop)}, on http://{host}:{port}",
        flush=True,
    )
    config = uvicorn.Config(
        app, host=host, port=port, http=parser, loop=loop, access_log=False, timeout_graceful_shutdown=10
    )
    uvicorn.Server(config).run()
