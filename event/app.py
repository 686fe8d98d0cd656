"""The event app: Pub/Sub push deliveries of commercetools order messages (`OrderCreated`,
`OrderStateChanged`, `OrderPaymentStateChanged`): each injects an order, cancels one in
NewStore, or is ignored (event/triggers.py).

`POST /event` answers 2xx to acknowledge a message, 503 to have Pub/Sub redeliver it, and
400 to a request that is not a push envelope at all. It never answers 500 or a traceback.
"""

from __future__ import annotations

import time
from typing import Any

import httpx
import structlog
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from connector import metrics
from connector.commercetools import CommercetoolsClient
from connector.http import new_http_client
from connector.newstore import DEFAULT_TIMEOUT as NEWSTORE_TIMEOUT
from connector.newstore import FULFILL_ORDER_PATH, NewStoreClient
from connector.ratelimit import RateGate
from connector.serve import serve_app
from connector.service import service_app
from connector.settings import Settings, check_all
from event.cancellation import Canceller
from event.envelope import EnvelopeError, parse_push
from event.handler import DeliveryOutcome, OrderInjector
from event.settings import OrderSettings, load_order_settings
from event.triggers import Action, decide

log = structlog.get_logger("event")


def build_injector(settings: Settings, orders: OrderSettings | None = None) -> OrderInjector:
    """The injector over both APIs; the order settings are read from the environment unless
    given. fulfill_order is paced to NEW_STORE_INJECT_RATE on every attempt, retries
    included, by hooks on the NewStore client."""
    ctp = CommercetoolsClient(settings.commercetools)
    orders = orders or load_order_settings()
    inject_path = httpx.URL(f"{settings.newstore.api_base}{FULFILL_ORDER_PATH}").path
    gate = RateGate(orders.new_store_inject_rate, paths={inject_path})
    newstore_http = new_http_client(NEWSTORE_TIMEOUT, event_hooks=gate.event_hooks())
    return OrderInjector(
        ctp,
        NewStoreClient(settings.newstore, http=newstore_http),
        orders,
        shop=settings.newstore.shop,
        inject_gate=gate,
    )


def create_app(settings: Settings | None = None, orders: OrderSettings | None = None) -> FastAPI:
    def build() -> OrderInjector:
        every = settings or Settings()
        check_all(every.validate_all, lambda: orders or load_order_settings())
        return build_injector(every, orders)

    app = service_app(
        "newstore-connector event app",
        build,
        work_path="/event",
        pubsub_push=True,
    )

    @app.post("/event")
    async def event(request: Request) -> JSONResponse:
        started = time.perf_counter()
        try:
            delivery = parse_push(await request.body())
        except EnvelopeError as error:
            log.warning("malformed push request", error=str(error))
            return JSONResponse({"error": "malformed_push_request", "detail": str(error)}, 400)
        line: dict[str, Any] = {"message_id": delivery.message_id, "type": delivery.message_type}
        if delivery.reason is not None:  # an OrderCreated whose id is unusable: never used
            line |= {"outcome": "ignored", "reason": delivery.reason}
            line["resource_id"] = delivery.detail  # a short, escaped preview, never the value
            _log_delivery(line, started, level="warning")
            answer = {"outcome": "ignored", "kind": delivery.kind.value, "reason": delivery.reason}
            return JSONResponse(answer, 200)
        if delivery.order_id is None:  # the subscription's test message, or not an order's
            _log_delivery({**line, "outcome": f"ignored_{delivery.kind.value}"}, started)
            return JSONResponse({"outcome": "ignored", "kind": delivery.kind.value}, 200)
        injector: OrderInjector = request.app.state.worker
        settings = injector.settings
        decision = decide(
            delivery.kind,
            delivery.order_state,
            delivery.payment_state,
            settings.order_inject_when,
            settings.order_cancel_in_newstore,
        )
        if decision.action is Action.IGNORE:  # nothing to do: no request anywhere
            fields: dict[str, Any] = {"order_id": delivery.order_id, "reason": decision.reason}
            _log_delivery({**line, "outcome": "ignored", **fields}, started)
            answer = {"outcome": "ignored", "kind": delivery.kind.value, **fields}
            return JSONResponse(answer, 200)
        ids = {"message_id": delivery.message_id, "order_id": delivery.order_id}
        with structlog.contextvars.bound_contextvars(**ids):  # on every line of this delivery
            if decision.action is Action.CANCEL:
                result = await _canceller(request).cancel(
                    delivery.order_id, delivery.message_id, delivery.published_at
                )
            else:
                result = await injector.inject(
                    delivery.order_id, delivery.message_id, delivery.published_at
                )
        _log_delivery({**line, **result.summary()}, started)
        return JSONResponse(result.summary(), 200 if result.acknowledged else 503)

    return app


def _canceller(request: Request) -> Canceller:
    """The app's canceller, over the same clients as its injector (built on first use)."""
    state = request.app.state
    canceller: Canceller | None = getattr(state, "canceller", None)
    if canceller is None or canceller.injector is not state.worker:
        canceller = state.canceller = Canceller(state.worker)
    return canceller


def _log_delivery(fields: dict[str, Any], started: float, level: str | None = None) -> None:
    seconds = time.perf_counter() - started
    duration_ms = round(seconds * 1000, 1)
    outcome = str(fields.get("outcome"))
    metrics.ORDERS.labels("ignored" if outcome.startswith("ignored") else outcome).inc()
    metrics.DELIVERY_SECONDS.observe(seconds)
    if level is None:
        failed = fields.get("outcome") in (DeliveryOutcome.FAILED, DeliveryOutcome.RETRY)
        level = "warning" if failed else "info"
    getattr(log, level)("delivery", **fields, duration_ms=duration_ms)


app = create_app()


def serve() -> None:
    """Console entry point: `newstore-connector-event`, on $PORT (default 8080)."""
    serve_app(app)
