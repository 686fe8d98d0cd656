"""What the event app and the job app share as HTTP services.

Start-up refuses a bad configuration with one clear log line; `/health` answers without
calling upstream; the work endpoint is behind the body guard and authentication; and an
unexpected error is a short JSON 503, never a traceback.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Protocol

import structlog
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from connector.auth import install_auth
from connector.hardening import install_hardening
from connector.logs import configure_logging
from connector.settings import ConfigError

log = structlog.get_logger("service")


class Worker(Protocol):
    """The object that does an app's work; built at start-up, closed at shutdown."""

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

    @app.get("/health")
    async def health() -> dict[str, str]:
        return {"status": "ok"}

    @app.exception_handler(Exception)
    async def unexpected(_: Request, error: Exception) -> JSONResponse:
        # 503, not 500: a retry is safe (the work is idempotent) and may well succeed.
        log.error("unexpected error", error_type=type(error).__name__)
        return JSONResponse({"status": "error", "error": "internal_error"}, 503)

    return app
