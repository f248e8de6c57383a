"""The HTTP endpoint of the inference stage (``python inference.py --serve``): FastAPI served by uvicorn.

``create_app(recommender, ...)`` wraps an object with ``recommend(records, source, request_ids, cancelled)``,
``log_outcome(outcome, source, request_id, **fields)`` and ``info`` (inference.py's ``Recommender``, loaded
before the app exists). The README's HTTP section documents the behaviour; the design in short:

- Nothing slow runs on the event loop: model calls run on one worker thread (never two ``generate()`` at once),
  log appends on the thread pool, for 413 and 422 answers too.
- At most ``max_queue`` requests are admitted at once (the one generating included), beyond that 503 with
  ``Retry-After``. At its deadline a waiting request leaves the queue (the model never sees it) and gets 503;
  a generating one gets 503 too, but ``generate()`` cannot be interrupted: the worker finishes it, its slot
  counts in the queue depth until then, and the recommender logs it as ``timeout`` (``cancelled()``).
- Every request that passes the key is logged exactly once under its ``X-Request-ID``.
- With an API key, all but ``/health``, ``/ready`` and the docs need ``Authorization: Bearer KEY`` (constant-time
  compare; 401 before the body is read, not logged). No CORS headers are sent.
- SIGTERM: uvicorn stops accepting, requests in flight finish, the worker drains, ``serve`` returns (exit 0).
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import ipaddress
import logging
import math
import os
import re
import signal
import threading
import time
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Literal

import anyio
from fastapi import FastAPI, Request, Security
from fastapi.exception_handlers import http_exception_handler
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from fastapi.security import HTTPBearer
from fastapi_offline import FastAPIOffline
from pydantic import BaseModel
from starlette.exceptions import HTTPException as StarletteHTTPException

from .. import __version__
from ..common.cli import UsageError
from ..common.schemas import (
    DISCLAIMER,
    MAX_RECORD_BYTES,
    ModelInfo,
    PatientRecord,
    Recommendation,
    error_message,
    field_name,
)

log = logging.getLogger(__name__)

ENDPOINT = "/api/treatment-recommendations"
API_KEY_ENV = "MEDLORA_API_KEY"
OPEN_PATHS = {"/health", "/ready", "/docs", "/docs/oauth2-redirect", "/openapi.json", "/redoc"}
# Swagger UI and ReDoc come from the fastapi-offline package and are served from here: /docs works offline.
DOCS_ASSETS = "/docs-assets"
_CLIENT_ID = re.compile(r"[A-Za-z0-9._:-]{1,64}")


class FieldError(BaseModel):
    loc: list[str | int]
    field: str
    msg: str
    type: str


class ErrorBody(BaseModel):
    detail: str | list[FieldError]
    request_id: str | None = None


class QueueState(BaseModel):
    depth: int
    max: int
    generating: bool
    request_timeout_s: float


class Health(BaseModel):
    status: Literal["ok"]
    model_loaded: bool
    backend: str
    queue: QueueState
    model: ModelInfo


class Ready(BaseModel):
    ready: bool
    reason: str | None = None


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def resolve_api_key(host: str, key_file: str | None, no_auth: bool) -> str | None:
    """The API key from ``key_file`` or $MEDLORA_API_KEY; none only on loopback or with ``no_auth``."""
    if no_auth:
        if key_file:
            raise UsageError("give --api-key-file or --no-auth, not both")
        if os.environ.get(API_KEY_ENV):
            log.warning("--no-auth: ignoring $%s", API_KEY_ENV)
        return None
    key = None
    if key_file:
        try:
            key = Path(key_file).read_text(encoding="utf-8").strip()
        except (OSError, UnicodeDecodeError) as e:
            raise UsageError(f"--api-key-file: cannot read {key_file}: {e}") from None
    elif os.environ.get(API_KEY_ENV):
        key = os.environ[API_KEY_ENV].strip()
    if key is not None and (len(key) < 16 or not key.isprintable() or " " in key):
        raise UsageError("the API key must be at least 16 printable characters without spaces")
    if key is None and not is_loopback(host):
        raise UsageError(
            f"--host {host} is reachable from other machines: give --api-key-file FILE (or ${API_KEY_ENV}), "
            "or --no-auth to serve without a key on purpose"
        )
    return key


class ModelQueue:
    """One worker thread for the model, a bounded count of admitted requests and their deadlines."""

    def __init__(self, max_queue: int, timeout: float):
        self.max, self.timeout = max_queue, timeout
        self.depth, self.generating = 0, False
        self.lock = threading.Lock()
        self.seconds_per_job = 1.0  # running mean of model time, for Retry-After
        self.executor: ThreadPoolExecutor | None = None

    def start(self) -> None:
        if self.executor is None:
            self.executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="model")

    def stop(self) -> None:
        # Waits for the job generating now (a request that timed out still gets its log entry).
        if self.executor is not None:
            self.executor.shutdown(wait=True, cancel_futures=False)
            self.executor = None

    def admit(self) -> bool:
        with self.lock:
            if self.depth >= self.max:
                return False
            self.depth += 1
            return True

    def retry_after(self) -> int:
        with self.lock:
            return max(1, min(3600, math.ceil(self.seconds_per_job * max(1, self.depth))))

    def run(self, job: dict[str, Any], fn: Callable[[], Any]) -> Any:
        """On the worker: skip a job abandoned while waiting, else run it and release its slot after."""
        with self.lock:
            if job["state"] == "abandoned":
                return None
            job["state"], self.generating = "running", True
        start = time.monotonic()
        try:
            return fn()
        finally:
            with self.lock:
                self.depth -= 1
                self.generating = False
                self.seconds_per_job = 0.8 * self.seconds_per_job + 0.2 * (time.monotonic() - start)

    def commit(self, job: dict[str, Any]) -> bool:
        """On the worker, once generation is over: True if the request still wants the result."""
        with self.lock:
            if job["state"] == "abandoned":
                return False
            job["state"] = "committed"
            return True

    def give_up(self, job: dict[str, Any]) -> str:
        """On the loop, at the deadline: the state the job was in; a waiting one leaves the queue now."""
        with self.lock:
            before = job["state"]
            if before in ("queued", "running"):
                job["state"] = "abandoned"
            if before == "queued":
                self.depth -= 1
            return before


def _json(status: int, detail: Any, rid: str | None, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse({"detail": detail, "request_id": rid}, status_code=status, headers=headers)


class Gate:
    """ASGI middleware in front of the app: the API key, the request id, and the body limit (413)."""

    def __init__(self, app: Any, api_key: str | None, limit: int, log_outcome: Callable[..., None]):
        self.app, self.limit, self.log_outcome = app, limit, log_outcome
        self.key = api_key.encode() if api_key else None

    def authorized(self, scope: dict) -> bool:
        path = scope["path"]
        is_open = path in OPEN_PATHS or path.startswith(DOCS_ASSETS + "/")
        if self.key is None or is_open and scope["method"] in ("GET", "HEAD"):
            return True
        auth = dict(scope["headers"]).get(b"authorization", b"")
        scheme, _, given = auth.partition(b" ")
        return scheme.lower() == b"bearer" and hmac.compare_digest(given.strip(), self.key)

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        if not self.authorized(scope):
            body = {"detail": "missing or wrong API key (Authorization: Bearer KEY)", "request_id": None}
            response = JSONResponse(body, status_code=401, headers={"WWW-Authenticate": "Bearer"})
            return await response(scope, receive, send)
        given = dict(scope["headers"]).get(b"x-request-id", b"").decode("latin-1")
        rid = given if _CLIENT_ID.fullmatch(given) else uuid.uuid4().hex
        scope.setdefault("state", {})["request_id"] = rid

        async def send_with_id(message: dict) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", []), (b"x-request-id", rid.encode())]
            await send(message)

        if scope["method"] not in ("POST", "PUT", "PATCH"):
            return await self.app(scope, receive, send_with_id)
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
            if scope["path"] == ENDPOINT:
                await anyio.to_thread.run_sync(
                    lambda: self.log_outcome("invalid_input", "http", rid, invalid_fields=["body"])
                )
            msg = f"request body larger than {self.limit} bytes"
            detail = [{"loc": ["body"], "field": "body", "msg": msg, "type": "too_large"}]
            return await _json(413, detail, rid)(scope, receive, send_with_id)
        replay = [{"type": "http.request", "body": body, "more_body": False}]

        async def replayed() -> dict:
            return replay.pop() if replay else await receive()

        return await self.app(scope, replayed, send_with_id)


def create_app(
    recommender: Any,
    max_body_bytes: int = MAX_RECORD_BYTES,
    max_queue: int = 16,
    request_timeout: float = 300.0,
    api_key: str | None = None,
) -> FastAPI:
    queue = ModelQueue(max_queue, request_timeout)
    queue.start()
    backend = str(getattr(getattr(recommender, "cfg", None), "backend", None) or "transformers")

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI):
        queue.start()
        yield
        # uvicorn has answered every request in flight by now; a timed-out generation may still be running.
        await anyio.to_thread.run_sync(queue.stop)

    app = FastAPIOffline(
        static_url=DOCS_ASSETS,
        title="medlora treatment recommendations",
        version=__version__,
        description=f"Structured, safety-checked treatment recommendations from a patient record. {DISCLAIMER}",
        lifespan=lifespan,
    )

    async def log_outcome(outcome: str, rid: str, **fields: Any) -> None:
        await anyio.to_thread.run_sync(lambda: recommender.log_outcome(outcome, "http", rid, **fields))

    @app.exception_handler(RequestValidationError)
    async def invalid_record(request: Request, exc: RequestValidationError) -> JSONResponse:
        detail, fields = [], []
        content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
        json_body = content_type == "application/json" or content_type.endswith("+json")
        for err in exc.errors():
            loc, kind = list(err.get("loc", ()) or ()), str(err.get("type", "invalid"))
            msg = str(err.get("msg", "invalid"))
            if kind == "json_invalid":
                # FastAPI puts the character offset where a field name would be: it is not a field.
                loc, msg = ["body"], f"body is not valid JSON ({(err.get('ctx') or {}).get('error', msg)}"
                msg += f" at character {err['loc'][-1]})" if len(err.get("loc", ())) > 1 else ")"
            elif loc == ["body"] and not json_body and kind.endswith("_type"):
                # FastAPI parses only JSON types; any other body fails validation as bytes: name the header.
                kind = "content_type"
                msg = f"send the record as JSON with Content-Type: application/json (got {content_type or 'none'})"
            inner = loc[1:] if loc[:1] == ["body"] else loc
            if kind == "extra_forbidden":
                msg = error_message({"msg": msg, "type": kind, "loc": inner})
            fields.append("body" if kind in ("json_invalid", "content_type") else field_name(inner, msg))
            detail.append({"loc": loc, "field": fields[-1], "msg": msg, "type": kind})
        rid = request.state.request_id
        await log_outcome("invalid_input", rid, invalid_fields=fields)
        return _json(422, detail, rid)

    @app.exception_handler(StarletteHTTPException)
    async def unparsable_body(request: Request, exc: StarletteHTTPException) -> Response:
        # FastAPI answers 400 for a body it cannot even decode (not UTF-8): for a client that is one more
        # invalid record, so it gets the same documented 422 and log entry as malformed JSON.
        if exc.status_code != 400 or request.url.path != ENDPOINT:
            return await http_exception_handler(request, exc)
        rid = request.state.request_id
        await log_outcome("invalid_input", rid, invalid_fields=["body"])
        detail = [{"loc": ["body"], "field": "body", "msg": "body is not UTF-8 JSON", "type": "json_invalid"}]
        return _json(422, detail, rid)

    def unavailable(rid: str, why: str) -> JSONResponse:
        return _json(503, why, rid, headers={"Retry-After": str(queue.retry_after())})

    security = [Security(HTTPBearer(auto_error=False))] if api_key else []
    errors = {
        401: {"model": ErrorBody, "description": "missing or wrong API key"},
        413: {"model": ErrorBody, "description": f"request body larger than {max_body_bytes} bytes"},
        422: {"model": ErrorBody, "description": "invalid record: one entry per field, without the values"},
        500: {"model": ErrorBody, "description": "the model failed (logged as error)"},
        503: {
            "model": ErrorBody,
            "description": "queue full, or the request timed out; retry after Retry-After seconds",
            "headers": {"Retry-After": {"schema": {"type": "integer"}, "description": "seconds"}},
        },
    }

    @app.post(
        ENDPOINT,
        response_model=Recommendation,
        summary="Recommend treatment for one patient record",
        responses=errors if api_key else {k: v for k, v in errors.items() if k != 401},
        dependencies=security,
    )
    async def recommend(record: PatientRecord, request: Request) -> Response:
        rid = request.state.request_id
        if not queue.admit():
            await log_outcome("overloaded", rid, queue_depth=queue.max)
            return unavailable(rid, f"the queue is full ({queue.max} requests); retry later")
        deadline = time.monotonic() + queue.timeout
        job: dict[str, Any] = {"state": "queued"}

        def run() -> Any:
            return recommender.recommend(
                [record], source="http", request_ids=[rid], cancelled=lambda: not queue.commit(job)
            )

        future = asyncio.get_running_loop().run_in_executor(queue.executor, queue.run, job, run)
        future.add_done_callback(lambda f: f.cancelled() or f.exception())  # never "exception not retrieved"
        while not future.done() and (left := deadline - time.monotonic()) > 0:
            await asyncio.wait({future}, timeout=left)
        if not future.done():
            # The worker reads and sets the state under the queue's lock, so exactly one side logs this.
            before = queue.give_up(job)
            if before == "queued":
                await log_outcome("timeout", rid, stage="queued", timeout_s=queue.timeout)
            if before != "committed":  # "running": the recommender logs it as timeout when generate() returns
                return unavailable(rid, f"no answer within {queue.timeout:g} s; retry later")
        try:
            (rec,) = await future
        except TimeoutError:
            return unavailable(rid, f"no answer within {queue.timeout:g} s; retry later")
        except UsageError as e:  # the record is valid but its prompt does not fit the model's context
            detail = [{"loc": ["body"], "field": "record", "msg": str(e), "type": "too_long"}]
            return _json(422, detail, rid)
        except Exception:
            log.exception("request %s failed", rid)
            return _json(500, "internal error", rid)
        return Response(rec.model_dump_json(), media_type="application/json")

    @app.get("/health", summary="Liveness: the model, the backend and the queue", response_model=Health)
    async def health() -> dict[str, Any]:
        with queue.lock:
            state = {"depth": queue.depth, "max": queue.max, "generating": queue.generating}
        return {
            "status": "ok",
            "model_loaded": recommender.info is not None,
            "backend": backend,
            "queue": {**state, "request_timeout_s": queue.timeout},
            "model": recommender.info.model_dump(),
        }

    @app.get(
        "/ready",
        summary="Readiness: 200 when a request would be admitted now, 503 while the queue is full",
        response_model=Ready,
        responses={503: {"model": Ready, "description": "the queue is full"}},
    )
    async def ready() -> JSONResponse:
        with queue.lock:
            full = queue.depth >= queue.max
        body = {"ready": not full, "reason": "the queue is full" if full else None}
        return JSONResponse(body, status_code=503 if full else 200)

    app.add_middleware(Gate, api_key=api_key, limit=max_body_bytes, log_outcome=recommender.log_outcome)
    return app


def serve(
    recommender: Any,
    host: str,
    port: int,
    max_body_bytes: int = MAX_RECORD_BYTES,
    max_queue: int = 16,
    request_timeout: float = 300.0,
    api_key: str | None = None,
) -> None:
    """Serve until SIGTERM or Ctrl-C, then finish the requests in flight and return (exit code 0)."""
    import uvicorn

    app = create_app(recommender, max_body_bytes, max_queue, request_timeout, api_key)
    auth = "API key required" if api_key else "no API key"
    log.info("serving POST http://%s:%d%s (docs at /docs; %s)", host, port, ENDPOINT, auth)
    config = uvicorn.Config(
        app, host=host, port=port, log_level="info", timeout_graceful_shutdown=int(request_timeout) + 30
    )
    # uvicorn re-raises the signal it caught once it has shut down, which would end the process with 143;
    # a no-op handler in place makes that re-raise harmless, so a clean shutdown exits 0.
    previous = signal.signal(signal.SIGTERM, lambda *_: None)
    try:
        uvicorn.Server(config).run()
    finally:
        signal.signal(signal.SIGTERM, previous)
