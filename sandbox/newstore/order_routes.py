"""The NewStore emulator's order endpoints after injection, per
../shared/specs/newstore/newstore-api.swagger.json: `GET /v0/orders/{id}`
(showSalesOrderByIdAndIdType), `GET|POST /v0/orders/{id}/cancel` (showCancellationStatus,
createCancellation) and `GET /v0/fulfillment_requests/{order_uuid}`
(listFulfillmentRequestsForOrder); and the sandbox control that moves an order through its lifecycle
(`POST /_sandbox/orders/{id}/lifecycle`), which emits the Event Stream events.
"""

from __future__ import annotations

import json
from typing import Any

from fastapi import FastAPI
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from sandbox.controls import SANDBOX_PREFIX
from sandbox.newstore.errors import Rejected, error_response
from sandbox.newstore.guarded import AuthCheck, guarded
from sandbox.newstore.lifecycle import LifecycleOrder
from sandbox.newstore.state import NewStoreEmulator

STEPS = ("assign", "ready", "ship", "complete", "cancel", "cancel_items", "return")


async def _json_body(request: Request) -> Any:
    raw = await request.body()
    if not raw.strip():
        return None
    try:
        return json.loads(raw)
    except ValueError:
        raise Rejected(400, "invalid_request_body", "the request body is not valid JSON") from None


def install_order_routes(app: FastAPI, state: NewStoreEmulator, auth_failure: AuthCheck) -> None:
    lifecycle = state.lifecycle

    answer = guarded(state, auth_failure)

    def find(request: Request, order_id: str) -> LifecycleOrder:
        return lifecycle.find(order_id, request.query_params.get("id_type"))

    @app.get("/v0/orders/{order_id}")
    async def show_order(order_id: str, request: Request) -> Response:
        async def handle() -> Response:
            return JSONResponse(lifecycle.detail(find(request, order_id)))

        return await answer(request, handle)

    @app.get("/v0/orders/{order_id}/cancel")
    async def cancellation_status(order_id: str, request: Request) -> Response:
        async def handle() -> Response:
            return JSONResponse(lifecycle.cancellation_status(find(request, order_id)))

        return await answer(request, handle)

    @app.post("/v0/orders/{order_id}/cancel")
    async def cancel(order_id: str, request: Request) -> Response:
        async def handle() -> Response:
            lifecycle.cancel(find(request, order_id), await _json_body(request))
            return Response(status_code=200)  # the Swagger's 200 has no body

        return await answer(request, handle)

    @app.get("/v0/fulfillment_requests/{order_uuid}")
    async def fulfillment_requests(order_uuid: str, request: Request) -> Response:
        async def handle() -> Response:
            return JSONResponse(lifecycle.fulfillment_requests(order_uuid))

        return await answer(request, handle)

    _install_lifecycle_control(app, state)


def _find_any(state: NewStoreEmulator, order_id: str) -> LifecycleOrder:
    lifecycle = state.lifecycle
    internal = order_id if order_id in lifecycle.orders else lifecycle.by_external_id.get(order_id)
    if internal is None:
        raise Rejected(404, "not_found", f"no order {order_id}")
    return lifecycle.orders[internal]


def _install_lifecycle_control(app: FastAPI, state: NewStoreEmulator) -> None:
    lifecycle = state.lifecycle

    @app.post(f"{SANDBOX_PREFIX}/orders/{{order_id}}/lifecycle")
    async def advance(order_id: str, request: Request) -> Response:
        """Body: `{"step": one of STEPS, "fulfillment_request_id"?, "item_ids"?,
        "external_item_ids"?, "carrier"?, "tracking_code"?, "tracking_url"?, "node"?}`;
        `order_id` is NewStore's id or the external id. Answers the order as the API shows
        it, with its fulfillment requests and the events emitted so far."""
        try:
            body = await _json_body(request) or {}
            if not isinstance(body, dict) or body.get("step") not in STEPS:
                raise Rejected(400, "bad_request", f"step must be one of {STEPS}")
            order = _find_any(state, order_id)
            item_ids = body.get("item_ids")
            if body.get("external_item_ids") is not None:
                wanted = list(body["external_item_ids"])
                item_ids = []
                for item in order.items:  # one NewStore item per unit
                    if item.external_item_id in wanted:
                        wanted.remove(item.external_item_id)
                        item_ids.append(item.id)
            fr_id = body.get("fulfillment_request_id")
            step = body["step"]
            if step == "assign":
                lifecycle.assign(order, item_ids, body.get("node") or "DC01")
            elif step == "ready":
                lifecycle.ready(order, fr_id)
            elif step == "ship":
                lifecycle.ship(
                    order,
                    fr_id,
                    carrier=body.get("carrier") or "UPS",
                    tracking_code=body.get("tracking_code"),
                    tracking_url=body.get("tracking_url"),
                    item_ids=item_ids,
                )
            elif step == "complete":
                lifecycle.complete(order)
            elif step == "cancel":
                lifecycle.cancel_now(order)
            elif step == "cancel_items":
                lifecycle.cancel_items(order, item_ids or [])
            else:
                lifecycle.return_items(order, item_ids)
        except Rejected as refusal:
            return error_response(refusal.status, refusal.error_code, refusal.message)
        return JSONResponse(
            {
                "id": order.id,
                "order": lifecycle.detail(order),
                **lifecycle.fulfillment_requests(order.id),
                "events": len(state.stream.log),
            }
        )

    @app.get(f"{SANDBOX_PREFIX}/events")
    async def event_log() -> dict[str, Any]:
        return {"count": len(state.stream.log), "events": state.stream.log}

    @app.get(f"{SANDBOX_PREFIX}/cancellations")
    async def cancellations() -> dict[str, Any]:
        return {"count": len(lifecycle.cancel_requests), "cancellations": lifecycle.cancel_requests}
