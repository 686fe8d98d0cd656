"""The job app: a cron (Connect's job schedule) calls `POST /job` to run one inventory sync.

Answers:
- 200 with the summary when the run finished (`status: "ok"`), or finished with SKUs that
  commercetools refused (`status: "degraded"`: listed under `failed` and `failing`, logged
  at ERROR, kept and retried by every later run), or stopped early at its deadline or on
  its lease (`status: "partial"`, with `remaining`). Degraded is 200 on purpose: Cloud
  Scheduler retries a non-2xx answer at once, which would repeat the same refused writes
  and compete for the lease; the cursor has moved, and the next scheduled run retries
  them anyway. The alert is the ERROR log line (a log-based metric), not the status;
- 200 with `status: "skipped"` when another run holds the lease;
- 503 when the sync could not run at all (an upstream down, refused credentials).
"""

from __future__ import annotations

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from connector.serve import serve_app
from connector.service import service_app
from connector.settings import Settings
from job.settings import InventorySettings, load_inventory_settings
from job.sync import InventorySync, Status, build_sync


def create_app(
    settings: Settings | None = None, inventory: InventorySettings | None = None
) -> FastAPI:
    app = service_app(
        "newstore-connector job app",
        lambda: build_sync(
            (settings or Settings()).validate_all(), inventory or load_inventory_settings()
        ),
        work_path="/job",
        pubsub_push=False,
    )

    @app.post("/job")
    async def job(request: Request) -> JSONResponse:
        sync: InventorySync = request.app.state.worker
        report = await sync.run()
        return JSONResponse(report.summary(), 503 if report.status is Status.ERROR else 200)

    return app


app = create_app()


def serve() -> None:
    """Console entry point: `newstore-connector-job`, on $PORT (default 8080)."""
    serve_app(app)
