"""What the event app and the job app share as HTTP services.

Start-up refuses a bad configuration with one clear log line; `/health` answers without
calling upstream; the work endpoint is behind the body guard and authentication; and an
unexpected error is a short JSON 503, never a traceback.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Protocol

import structlog
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response

from connector import metrics
from connector.auth import install_auth
from connector.hardening import install_hardening
from connector.http import UpstreamError
from connector.logs import TraceContext, configure_logging
from connector.settings import ConfigError

log = structlog.get_logger("service")


READY_CACHE_S = 10.0


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
) -> FastAPI:
    """A FastAPI app whose `app.state.worker` is built by `build_worker` at start-up."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        configure_logging()
        try:
            app.state.worker = build_worker()
        except ConfigError as error:
            log.error("cannot start: configuration", error=str(error))
            raise SystemExit(1) from None
        yield
        await app.state.worker.aclose()

    # No public API docs: the endpoints are for Pub/Sub and the scheduler, not for browsing.
    app = FastAPI(title=title, lifespan=lifespan, docs_url=None, redoc_url=None, openapi_url=None)
    install_hardening(app, limited=(work_path,), pubsub_push=pubsub_push)
    install_auth(app, protected=(work_path,))
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

    @app.exception_handler(Exception)
    async def unexpected(_: Request, error: Exception) -> JSONResponse:
        # 503, not 500: a retry is safe (the work is idempotent) and may well succeed.
        log.error("unexpected error", error_type=type(error).__name__)
        return JSONResponse({"status": "error", "error": "internal_error"}, 503)

    return app


class Readiness:
    """`/ready`: the configuration loaded (the app started) and tokens can be obtained.

    The answer is cached briefly, so a probe every second costs the upstreams nothing more.
    """

    def __init__(self) -> None:
        self._checked_at = -READY_CACHE_S
        self._problem: str | None = None

    async def check(self, worker: Worker) -> str | None:
        if time.monotonic() - self._checked_at >= READY_CACHE_S:
            try:
                await worker.ready()
                self._problem = None
            except UpstreamError as error:
                self._problem = str(error)
            self._checked_at = time.monotonic()
        return self._problem
