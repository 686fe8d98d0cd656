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
- 503 when the sync could not run at all (an upstream down, refused credentials);
- 400 for a query parameter other than `dry_run`, or a `dry_run` that is not a boolean.

`?dry_run=true` reads both sides and answers the plan (`status: "dry_run"`, with `planned`
and a sample), writing nothing, like `newstore-connector inventory sync --dry-run`.
"""

from __future__ import annotations

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from connector.serve import serve_app
from connector.service import service_app
from connector.settings import Settings, check_all
from job.settings import InventorySettings, load_inventory_settings
from job.sync import InventorySync, Status, build_sync
from lifecycle.settings import LifecycleSettings
from lifecycle.upkeep import configured_lifecycle, run_upkeep

DRY_RUN_VALUES = {"true": True, "1": True, "false": False, "0": False}


def create_app(
    settings: Settings | None = None,
    inventory: InventorySettings | None = None,
    lifecycle: LifecycleSettings | None = None,
) -> FastAPI:
    def build() -> InventorySync:
        every = settings or Settings()
        check_all(every.validate_all, lambda: inventory or load_inventory_settings())
        return build_sync(every, inventory or load_inventory_settings())

    app = service_app(
        "newstore-connector job app",
        build,
        work_path="/job",
        pubsub_push=False,
    )

    @app.post("/job")
    async def job(request: Request) -> JSONResponse:
        sync: InventorySync = request.app.state.worker
        unknown = sorted(set(request.query_params) - {"dry_run"})
        dry_run = DRY_RUN_VALUES.get(request.query_params.get("dry_run", "false").lower())
        if unknown or dry_run is None:
            # A parameter the job does not honour must not quietly run a real sync.
            detail = (
                f"unknown parameter {unknown[0]}" if unknown else "dry_run must be true or false"
            )
            return JSONResponse({"error": "bad_request", "detail": detail}, 400)
        report = await sync.run(dry_run)
        summary = report.summary()
        # The lifecycle app's upkeep (lifecycle/upkeep.py), when it is deployed; a dry run
        # changes nothing, so it leaves the inbox and the integration alone.
        upkeep = lifecycle or configured_lifecycle()
        if upkeep is not None and not dry_run:
            summary["lifecycle"] = await run_upkeep(settings or Settings(), upkeep)
        return JSONResponse(summary, 503 if report.status is Status.ERROR else 200)

    return app


app = create_app()


def serve() -> None:
    """Console entry point: `newstore-connector-job`, on $PORT (default 8080)."""
    serve_app(app)
