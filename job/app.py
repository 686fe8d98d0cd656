"""The job app: a cron (Connect's job schedule) calls `POST /job` to run one inventory sync.

Answers:
- 200 with the summary when the run finished, even if some SKUs failed (they are listed),
  or when it stopped early at its deadline (`status: "partial"`, with `remaining`);
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
from lifecycle.settings import LifecycleSettings
from lifecycle.upkeep import configured_lifecycle, run_upkeep


def create_app(
    settings: Settings | None = None,
    inventory: InventorySettings | None = None,
    lifecycle: LifecycleSettings | None = None,
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
        summary = report.summary()
        # The lifecycle app's upkeep (lifecycle/upkeep.py), when it is deployed.
        upkeep = lifecycle or configured_lifecycle()
        if upkeep is not None:
            summary["lifecycle"] = await run_upkeep(settings or Settings(), upkeep)
        return JSONResponse(summary, 503 if report.status is Status.ERROR else 200)

    return app


app = create_app()


def serve() -> None:
    """Console entry point: `newstore-connector-job`, on $PORT (default 8080)."""
    serve_app(app)
