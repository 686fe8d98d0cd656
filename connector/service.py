"""What the event app and the job app share as HTTP services.

Start-up refuses a bad configuration with one JSON log line per bad variable, all of them
at once, and no traceback; `/health` answers without calling upstream; `/ready` says whether
both APIs answer; the work endpoint is behind the body guard and authentication; and an
unexpected error is a short JSON 503 to the caller and one JSON log line with the traceback
in its `exception` field, never uvicorn's plain-text traceback.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Protocol

import structlog
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from connector import metrics
from connector.auth import install_auth, load_auth_settings
from connector.hardening import install_hardening, load_hardening_settings, send_json
from connector.http import UpstreamError
from connector.logs import TraceContext, configure_logging
from connector.settings import ConfigError, check_all

log = structlog.get_logger("service")


# A ready answer stands for 10 s, a not-ready one for 2 s: a probe every second costs each
# upstream at most one token check and one GET per 10 s, and recovery shows within 2 s.
READY_CACHE_S = 10.0
NOT_READY_CACHE_S = 2.0


class StartupRefused(Exception):
    """The configuration is unusable; every problem has been logged already."""


class Worker(Protocol):
    """The object that does an app's work; built at start-up, closed at shutdown."""

    async def ready(self) -> None:
        """Raise UpstreamError unless both APIs hand out tokens."""

    async def aclose(self) -> None: ...


def service_app(
    title: str,
    build_worker: Callable[[], Worker],
    work_path: str,
    pubsub_push: bool,
    authenticate: bool = True,
) -> FastAPI:
    """A FastAPI app whose `app.state.worker` is built by `build_worker` at start-up.

    `authenticate=False` leaves the work path to the app's own check (the lifecycle app:
    NewStore sends its registered api_key, not a Google token)."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        configure_logging()
        workers: list[Worker] = []
        try:  # every group, so that one start-up names every bad variable
            check_all(
                lambda: workers.append(build_worker()), load_auth_settings, load_hardening_settings
            )
        except ConfigError as error:
            for problem in error.problems:
                log.error(f"cannot start: {problem}", variable=problem.split(":", 1)[0])
            if workers:
                await workers[0].aclose()
            raise StartupRefused from None
        app.state.worker = workers[0]
        yield
        await app.state.worker.aclose()

    # No public API docs: the endpoints are for Pub/Sub and the scheduler, not for browsing.
    app = FastAPI(title=title, lifespan=lifespan, docs_url=None, redoc_url=None, openapi_url=None)
    install_hardening(app, limited=(work_path,), pubsub_push=pubsub_push)
    if authenticate:
        install_auth(app, protected=(work_path,))
    app.add_middleware(OneLineFailures)  # inside TraceContext: its lines carry the trace
    app.add_middleware(TraceContext)

    @app.get("/health")
    async def health() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/metrics")
    async def prometheus_metrics() -> Response:
        body, content_type = metrics.exposition()
        return Response(body, media_type=content_type)

    readiness = Readiness()

    @app.get("/ready")
    async def ready(request: Request) -> JSONResponse:
        problem = await readiness.check(request.app.state.worker)
        if problem:
            return JSONResponse({"status": "not_ready", "error": problem}, 503)
        return JSONResponse({"status": "ready"})

    return app


class OneLineFailures:
    """Pure ASGI middleware: every failure is one JSON log line, never uvicorn's text.

    An exception escaping a request is logged here, with its traceback in the `exception`
    field, and answered 503 (not 500: a retry is safe, the work is idempotent, and may well
    succeed); it is not re-raised, so neither Starlette's error middleware nor uvicorn prints
    it again. A failed start-up's traceback text, which Starlette hands to uvicorn to print,
    becomes a field too; a refused configuration has been logged already, so it is dropped.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await self._lifespan(scope, receive, send)
            return
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = False

        async def tracking(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, receive, tracking)
        except Exception as error:
            log.error(
                "unexpected error",
                error_type=type(error).__name__,
                path=scope.get("path"),
                exc_info=error,
            )
            if not started:
                await send_json(send, 503, {"status": "error", "error": "internal_error"})

    async def _lifespan(self, scope: Scope, receive: Receive, send: Send) -> None:
        async def quiet(message: Message) -> None:
            if message["type"] == "lifespan.startup.failed":
                text = str(message.get("message") or "")
                if StartupRefused.__name__ not in text:  # refusals are logged already
                    log.error("cannot start", exception=text)
                message = {"type": message["type"], "message": ""}
            await send(message)

        await self.app(scope, receive, quiet)


class Readiness:
    """`/ready`: the configuration loaded (the app started) and tokens can be obtained.

    The answer is cached briefly, so a probe every second costs the upstreams nothing more.
    """

    def __init__(self) -> None:
        self._checked_at = -READY_CACHE_S
        self._problem: str | None = None
        self._lock = asyncio.Lock()  # one check at a time, however many probes arrive

    async def check(self, worker: Worker) -> str | None:
        async with self._lock:
            kept = NOT_READY_CACHE_S if self._problem else READY_CACHE_S
            if time.monotonic() - self._checked_at >= kept:
                try:
                    await worker.ready()
                    self._problem = None
                except UpstreamError as error:
                    self._problem = str(error)
                self._checked_at = time.monotonic()
        return self._problem
