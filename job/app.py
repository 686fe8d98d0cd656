"""The job app: a cron (Connect's job schedule) calls `POST /job` to run one inventory sync.

Answers:
- 200 with the summary when the run finished, even if some SKUs failed (they are listed),
  or when it stopped early at its deadline (`status: "partial"`, with `remaining`);
- 200 with `status: "skipped"` when another run holds the lease;
- 503 when the sync could not run at all (an upstream down, refused credentials).
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import structlog
import uvicorn
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from connector.logs import configure_logging
from connector.settings import ConfigError, Settings
from job.settings import InventorySettings, load_inventory_settings
from job.sync import InventorySync, Status, build_clients

log = structlog.get_logger("job")


def create_app(
    settings: Settings | None = None, inventory: InventorySettings | None = None
) -> FastAPI:
    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        configure_logging()
        try:
            loaded = (settings or Settings()).validate_all()
            job_settings = inventory or load_inventory_settings()
        except ConfigError as error:
            log.error("cannot start: configuration", error=str(error))
            raise SystemExit(1) from None
        clients = build_clients(loaded, job_settings)
        app.state.sync = InventorySync(clients, job_settings)
        yield
        await clients.aclose()

    app = FastAPI(title="newstore-connector job app", lifespan=lifespan)

    @app.get("/health")
    async def health() -> dict[str, str]:
        return {"status": "ok"}

    @app.post("/job")
    async def job(request: Request) -> JSONResponse:
        sync: InventorySync = request.app.state.sync
        report = await sync.run()
        return JSONResponse(report.summary(), 503 if report.status is Status.ERROR else 200)

    @app.exception_handler(Exception)
    async def unexpected(_: Request, error: Exception) -> JSONResponse:
        log.error("unexpected error", error_type=type(error).__name__, error=str(error)[:300])
        return JSONResponse({"status": Status.ERROR.value, "error": "internal_error"}, 500)

    return app


app = create_app()


def serve() -> None:
    """Console entry point: `newstore-connector-job`, on $PORT (default 8080)."""
    uvicorn.run("job.app:app", host="0.0.0.0", port=int(os.environ.get("PORT", "8080")))
