"""The HTTP endpoint of the inference stage (``python inference.py --serve``): FastAPI served by uvicorn.

``create_app(recommender)`` wraps an object with ``recommend(records, source, request_ids)``,
``log_invalid(fields, source, request_id)`` and ``info`` (inference.py's ``Recommender``): the model is loaded
once, before the app exists. One lock serialises model calls, so concurrent requests queue instead of
interleaving on one ``generate()``. Bodies over the limit get 413 before they are parsed; invalid records
get 422 with one entry per field (FastAPI's ``detail`` shape, without echoing the input values).
"""

from __future__ import annotations

import json
import logging
import threading
import uuid
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse

from .schemas import DISCLAIMER, MAX_RECORD_BYTES, PatientRecord, Recommendation, field_name

log = logging.getLogger(__name__)

ENDPOINT = "/api/treatment-recommendations"


class BodyLimit:
    """ASGI middleware: read the body up to ``limit`` bytes, answer 413 beyond it, else replay it."""

    def __init__(self, app: Any, limit: int, on_reject: Any):
        self.app, self.limit, self.on_reject = app, limit, on_reject

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] != "http" or scope["method"] not in ("POST", "PUT", "PATCH"):
            return await self.app(scope, receive, send)
        declared = dict(scope["headers"]).get(b"content-length")
        body, more = b"", True
        too_large = declared is not None and declared.isdigit() and int(declared) > self.limit
        # A missing or false Content-Length is no protection: count what actually arrives.
        while more and not too_large:
            message = await receive()
            if message["type"] == "http.disconnect":
                return None
            body += message.get("body", b"")
            more = message.get("more_body", False)
            too_large = len(body) > self.limit
        if too_large:
            self.on_reject()
            detail = [
                {"loc": ["body"], "msg": f"request body larger than {self.limit} bytes", "type": "too_large"}
            ]
            return await JSONResponse({"detail": detail}, status_code=413)(scope, receive, send)
        replay = [{"type": "http.request", "body": body, "more_body": False}]

        async def replayed() -> dict:
            return replay.pop() if replay else await receive()

        return await self.app(scope, replayed, send)


def create_app(recommender: Any, max_body_bytes: int = MAX_RECORD_BYTES) -> FastAPI:
    app = FastAPI(
        title="medlora treatment recommendations",
        version="0.1.0",
        description=f"Structured, safety-checked treatment recommendations from a patient record. {DISCLAIMER}",
    )
    lock = threading.Lock()

    @app.exception_handler(RequestValidationError)
    async def invalid_record(request: Request, exc: RequestValidationError) -> JSONResponse:
        detail, fields = [], []
        for err in exc.errors():
            loc = list(err.get("loc", ()))
            inner = loc[1:] if loc[:1] == ["body"] else loc
            fields.append(field_name(inner, err.get("msg", "")))
            detail.append({"loc": loc, "field": fields[-1], "msg": err.get("msg"), "type": err.get("type")})
        rid = uuid.uuid4().hex
        recommender.log_invalid(fields, source="http", request_id=rid)
        return JSONResponse({"detail": detail}, status_code=422, headers={"X-Request-ID": rid})

    @app.post(
        ENDPOINT,
        response_model=Recommendation,
        summary="Recommend treatment for one patient record",
        responses={413: {"description": "request body too large"}, 422: {"description": "invalid record"}},
    )
    def recommend(record: PatientRecord) -> JSONResponse:
        rid = uuid.uuid4().hex
        try:
            with lock:
                (rec,) = recommender.recommend([record], source="http", request_ids=[rid])
        except Exception:
            log.exception("request %s failed", rid)
            return JSONResponse({"detail": "internal error", "request_id": rid}, status_code=500)
        return JSONResponse(json.loads(rec.model_dump_json()), headers={"X-Request-ID": rid})

    @app.get("/health", summary="Liveness and the model being served")
    def health() -> dict[str, Any]:
        return {"status": "ok", "model": recommender.info.model_dump()}

    def rejected() -> None:
        recommender.log_invalid(["body"], source="http")

    app.add_middleware(BodyLimit, limit=max_body_bytes, on_reject=rejected)
    return app


def serve(recommender: Any, host: str, port: int, max_body_bytes: int = MAX_RECORD_BYTES) -> None:
    import uvicorn

    log.info("serving POST http://%s:%d%s (docs at /docs)", host, port, ENDPOINT)
    uvicorn.run(create_app(recommender, max_body_bytes), host=host, port=port, log_level="info")
