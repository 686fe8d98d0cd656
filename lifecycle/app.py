"""The lifecycle app: NewStore's Event Stream POSTs each event to `POST /lifecycle`.

Answers: 200 once the event is applied, found already applied, ignored (an event type the
connector does not use) or kept in the inbox; 401 without NewStore's api_key (compared in
constant time); 400 to a body that is not JSON; 503 only when even the inbox could not keep
the event. A non-2xx answer interrupts NewStore's stream (docs.newstore.net
/api/webhooks/stream_webhook_sink_hook), which the job notices and restarts.
"""

from __future__ import annotations

import json
import time

import structlog
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from connector.serve import serve_app
from connector.service import service_app
from connector.settings import Settings, check_all
from lifecycle.receiver import LifecycleReceiver, build_receiver
from lifecycle.settings import LifecycleSettings, load_lifecycle_settings

log = structlog.get_logger("lifecycle")
PATH = "/lifecycle"


def create_app(
    settings: Settings | None = None, lifecycle: LifecycleSettings | None = None
) -> FastAPI:
    def build() -> LifecycleReceiver:
        every = settings or Settings()
        # every bad variable at once, the API groups' and LIFECYCLE_*'s (connector/service.py)
        check_all(every.validate_all, lambda: lifecycle or load_lifecycle_settings())
        return build_receiver(every, lifecycle or load_lifecycle_settings())

    app = service_app(
        "newstore-connector lifecycle app",
        build,
        work_path=PATH,
        pubsub_push=False,
        authenticate=False,  # NewStore authenticates with LIFECYCLE_API_KEY, checked below
    )

    @app.post(PATH)
    async def receive(request: Request) -> JSONResponse:
        started = time.perf_counter()
        receiver: LifecycleReceiver = request.app.state.worker
        if not receiver.authorized(request.headers.get("authorization")):
            log.warning("lifecycle call without the api_key refused")
            return JSONResponse({"error": "unauthorized"}, 401)
        try:
            body = json.loads(await request.body())
        except ValueError:
            return JSONResponse({"error": "malformed_json"}, 400)
        receipt = await receiver.receive(body)
        receipt.body["duration_ms"] = round((time.perf_counter() - started) * 1000, 1)
        return JSONResponse(receipt.body, receipt.status)

    return app


app = create_app()


def serve() -> None:
    """Console entry point: `newstore-connector-lifecycle`, on $PORT (default 8080)."""
    serve_app(app)
