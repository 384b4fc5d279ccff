"""HTTP service over a trained run (FastAPI): ``fave serve RUN_DIR --port 8000``.

    GET  /health                      -> {"status": "ok", "model": ..., "items": N}
    POST /recommend {"items": [...], "k": 10, "exclude_history": true}
                                      -> {"items": [{"item": id, "score": s}, ...]}

Item ids are the raw ids of the training data. Unknown ids give HTTP 422 with the reason
(the id cut to its first characters); ``k`` must be an integer 1..1000 (``true`` is not 1);
a body over :data:`MAX_BODY_BYTES` gives HTTP 413 before it is parsed.
"""

from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from fave.errors import FaveError
from fave.serving.recommender import MAX_K, Recommender

MAX_BODY_BYTES = 1 << 20  # 1 MiB: a history of tens of thousands of ids

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


def create_app(recommender: Recommender, model_name: str = "", max_body: int = MAX_BODY_BYTES) -> Any:
    try:
        from fastapi import FastAPI, HTTPException, Request
        from fastapi.exceptions import RequestValidationError
        from fastapi.responses import JSONResponse
        from pydantic import BaseModel, Field
    except ImportError:  # pragma: no cover - depends on the environment
        raise FaveError("serving needs FastAPI: pip install 'fave[serve]'") from None

    class RecommendRequest(BaseModel):
        items: list[str] = Field(..., description="the user's history, oldest first (raw item ids)")
        k: int = Field(10, ge=1, le=MAX_K, strict=True)  # strict: true/1.0/"5" are not integers
        exclude_history: bool = Field(True, strict=True)

    app = FastAPI(title="fave", description="Top-K next-item recommendations")
    app.add_middleware(BodyLimit, limit=max_body)

    @app.exception_handler(RequestValidationError)
    async def invalid(_: Request, exc: RequestValidationError) -> JSONResponse:
        # the reasons without the offending input, which may be huge
        errors = [{k: e.get(k) for k in ("loc", "msg", "type")} for e in exc.errors()]
        return JSONResponse(status_code=422, content={"detail": errors})

    @app.get("/health")
    def health() -> dict[str, Any]:
        return {"status": "ok", "model": model_name, "items": recommender.model.num_items}

    @app.post("/recommend")
    def recommend(req: RecommendRequest) -> dict[str, Any]:
        try:
            top = recommender.recommend(list(req.items), req.k, req.exclude_history)
        except FaveError as e:
            raise HTTPException(status_code=422, detail=str(e)) from None
        return {"items": [{"item": i, "score": s} for i, s in top]}

    return app
