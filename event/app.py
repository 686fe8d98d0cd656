"""The event app: Pub/Sub push deliveries of commercetools `OrderCreated` messages.

`POST /event` answers 2xx to acknowledge a message, 503 to have Pub/Sub redeliver it, and
400 to a request that is not a push envelope at all. It never answers 500 or a traceback.
"""

from __future__ import annotations

import os
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import structlog
import uvicorn
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from connector.commercetools import CommercetoolsClient
from connector.logs import configure_logging
from connector.newstore import NewStoreClient
from connector.settings import ConfigError, Settings
from event.envelope import EnvelopeError, MessageKind, parse_push
from event.handler import OrderInjector, Outcome

log = structlog.get_logger("event")


def build_injector(settings: Settings) -> OrderInjector:
    return OrderInjector(
        CommercetoolsClient(settings.commercetools),
        NewStoreClient(settings.newstore),
        settings.orders,
        shop=settings.newstore.shop,
    )


def create_app(settings: Settings | None = None) -> FastAPI:
    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        configure_logging()
        try:
            loaded = (settings or Settings()).validate_all()
        except ConfigError as error:
            log.error("cannot start: configuration", error=str(error))
            raise SystemExit(1) from None
        app.state.injector = build_injector(loaded)
        yield
        await app.state.injector.aclose()

    app = FastAPI(title="newstore-connector event app", lifespan=lifespan)

    @app.get("/health")
    async def health() -> dict[str, str]:
        return {"status": "ok"}

    @app.post("/event")
    async def event(request: Request) -> JSONResponse:
        started = time.perf_counter()
        try:
            delivery = parse_push(await request.body())
        except EnvelopeError as error:
            log.warning("malformed push request", error=str(error))
            return JSONResponse({"error": "malformed_push_request", "detail": str(error)}, 400)
        line: dict[str, Any] = {"message_id": delivery.message_id, "type": delivery.message_type}
        if delivery.kind is not MessageKind.ORDER_CREATED or delivery.order_id is None:
            _log_delivery({**line, "outcome": f"ignored_{delivery.kind.value}"}, started)
            return JSONResponse({"outcome": "ignored", "kind": delivery.kind.value}, 200)
        injector: OrderInjector = request.app.state.injector
        result = await injector.inject(delivery.order_id, delivery.message_id)
        _log_delivery({**line, **result.summary()}, started)
        status = 200 if result.acknowledged else 503
        return JSONResponse(result.summary(), status)

    @app.exception_handler(Exception)
    async def unexpected(_: Request, error: Exception) -> JSONResponse:
        # Redelivery is safe (injection is idempotent); a 500 with a traceback is not useful.
        log.error("unexpected error", error_type=type(error).__name__)
        return JSONResponse({"error": "internal_error"}, 503)

    return app


def _log_delivery(fields: dict[str, Any], started: float) -> None:
    duration_ms = round((time.perf_counter() - started) * 1000, 1)
    level = "warning" if fields.get("outcome") in (Outcome.FAILED, Outcome.RETRY) else "info"
    getattr(log, level)("delivery", **fields, duration_ms=duration_ms)


app = create_app()


def serve() -> None:
    """Console entry point: `newstore-connector-event`, on $PORT (default 8080)."""
    uvicorn.run("event.app:app", host="0.0.0.0", port=int(os.environ.get("PORT", "8080")))
