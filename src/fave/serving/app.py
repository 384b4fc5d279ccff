"""HTTP service over a trained run (FastAPI): ``fave serve RUN_DIR --port 8000``.

    GET  /health                      -> {"status": "ok", "model": ..., "items": N}
    POST /recommend {"items": [...], "k": 10, "exclude_history": true}
                                      -> {"items": [{"item": id, "score": s}, ...]}

Item ids are the raw ids of the training data. Unknown ids give HTTP 422 with the reason.
"""

from typing import Any

from fave.errors import FaveError
from fave.serving.recommender import Recommender


def create_app(recommender: Recommender, model_name: str = "") -> Any:
    try:
        from fastapi import FastAPI, HTTPException
        from pydantic import BaseModel, Field
    except ImportError:  # pragma: no cover - depends on the environment
        raise FaveError("serving needs FastAPI: pip install 'fave[serve]'") from None

    class Request(BaseModel):
        items: list[str] = Field(..., description="the user's history, oldest first (raw item ids)")
        k: int = Field(10, ge=1, le=1000)
        exclude_history: bool = True

    app = FastAPI(title="fave", description="Top-K next-item recommendations")

    @app.get("/health")
    def health() -> dict[str, Any]:
        return {"status": "ok", "model": model_name, "items": recommender.model.num_items}

    @app.post("/recommend")
    def recommend(req: Request) -> dict[str, Any]:
        try:
            top = recommender.recommend([str(i) for i in req.items], req.k, req.exclude_history)
        except FaveError as e:
            raise HTTPException(status_code=422, detail=str(e)) from None
        return {"items": [{"item": i, "score": s} for i, s in top]}

    return app
