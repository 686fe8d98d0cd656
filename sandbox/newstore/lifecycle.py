"""What happens to an injected order inside the NewStore emulator after injection: its items,
fulfillment requests, shipments (carrier and tracking code per item), cancellation and
returns, the read models the API answers with (`GET /v0/orders/{id}`,
`GET /v0/orders/{id}/cancel`, `GET /v0/fulfillment_requests/{order_uuid}`, per
../shared/specs/newstore/newstore-api.swagger.json: `SalesOrderDetailResponse`,
`SalesOrderCancellationResponse`, `OrderFulfillmentRequestsResponse`), and the Event Stream
events each step emits (handed to an `emit` callback; `sandbox.newstore.stream` delivers them).

Event bodies follow the Event-Stream Webhooks page (docs.newstore.net
/api/webhooks/stream_webhook_sink_hook): `tenant`, `name`, `published_at` and a `payload`.
Payload fields follow NewStore's own event classes: fulfillment request events carry `id`
(the fulfillment request), `order_id`, `logical_timestamp`, `fulfillment_location_id`,
`service_level` and `items` `[{id, product_id}]` with NewStore item ids (no tracking);
`order.items_cancelled` carries the order `id` and `items`; `return.processed` carries the
return `id`, `order_id`, `returned_at` and `items` with a `quantity`.
"""

from __future__ import annotations

import itertools
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from sandbox.newstore.errors import Rejected

Json = dict[str, Any]
Emit = Callable[[str, Json], object]


def now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


@dataclass(slots=True)
class Item:
    id: str
    external_item_id: str
    product_id: str
    price: float
    # SalesOrderItemStatus: pending, in_fulfillment, on_hold, complete, cancelled, returned
    status: str = "pending"
    fulfillment_request_id: str | None = None
    carrier: str | None = None
    tracking_code: str | None = None
    tracking_url: str | None = None


@dataclass(slots=True)
class FulfillmentRequest:
    id: str
    node: str
    service_level: str
    created_at: str
    item_ids: list[str]
    # Status11: dispatched, acknowledged, partially_completed, completed
    status: str = "dispatched"


@dataclass(slots=True)
class Return:
    id: str
    returned_at: str
    item_ids: list[str]


@dataclass(slots=True)
class LifecycleOrder:
    id: str
    external_id: str
    placed_at: str
    currency: str
    service_level: str
    items: list[Item]
    fulfillment_requests: list[FulfillmentRequest] = field(default_factory=list)
    returns: list[Return] = field(default_factory=list)
    status: str = "open"  # SalesOrderStatus: on_hold, open, closed, ...
    cancelled: bool = False
    cancel_reason: str | None = None

    def item(self, item_id: str) -> Item:
        for item in self.items:
            if item.id == item_id:
                return item
        raise Rejected(400, "bad_request", f"order {self.id} has no item {item_id}")


class Lifecycle:
    """The post-injection state of every order of the tenant."""

    def __init__(self, tenant: str, emit: Emit) -> None:
        self.tenant = tenant
        self.emit_event = emit
        self.orders: dict[str, LifecycleOrder] = {}
        self.by_external_id: dict[str, str] = {}
        # NewStore's logical timestamps: one counter for the tenant, increasing with each
        # change (assumption: the docs only say events carry one, not how it is counted).
        self._clock = itertools.count(1)
        self.cancel_requests: list[Json] = []  # each POST /cancel accepted, for tests

    def clear(self) -> None:
        self.orders.clear()
        self.by_external_id.clear()
        self.cancel_requests.clear()

    # --- creation -------------------------------------------------------------------

    def register(self, payload: Json, response: Json) -> LifecycleOrder:
        """Called once per new injected order, with the request and NewStore's answer."""
        prices = {
            item["external_item_id"]: float(item.get("price", {}).get("item_price", 0))
            for shipment in payload["shipments"]
            for item in shipment["items"]
        }
        option = (payload["shipments"][0].get("shipping_option") or {}) if payload else {}
        order = LifecycleOrder(
            id=response["id"],
            external_id=response["external_id"],
            placed_at=str(payload.get("placed_at") or now_iso()),
            currency=str(payload.get("currency") or "USD"),
            service_level=str(option.get("service_level_identifier") or "standard"),
            items=[
                Item(i["id"], i["external_item_id"], i["product_id"], prices[i["external_item_id"]])
                for i in response["items"]
            ],
        )
        self.orders[order.id] = order
        self.by_external_id[order.external_id] = order.id
        self._emit(
            "order.created",
            {"id": order.id, "external_id": order.external_id, "placed_at": order.placed_at},
        )
        return order

    # --- lookups --------------------------------------------------------------------

    def find(self, order_id: str, id_type: str | None) -> LifecycleOrder:
        if id_type not in ("internal", "external"):
            raise Rejected(400, "bad_request", "id_type is required: 'internal' or 'external'")
        if id_type == "external":
            internal = self.by_external_id.get(order_id)
            order = self.orders.get(internal) if internal else None
        else:
            order = self.orders.get(order_id)
        if order is None:
            raise Rejected(404, "not_found", f"order {order_id} ({id_type}) was not found")
        return order

    # --- read models ----------------------------------------------------------------

    def detail(self, order: LifecycleOrder) -> Json:
        """`SalesOrderDetailResponse`. assumption: an injected order has origin `external`,
        `id` and `origin_id` the external id, and each item's `origin_id` its
        external_item_id (the Swagger describes origin_id as "the identifier from the
        external system")."""
        total = round(sum(item.price for item in order.items), 2)
        return {
            "id": order.external_id,
            "origin": "external",
            "origin_id": order.external_id,
            "channel_type": "web",
            "currency": order.currency,
            "fulfillment_type": "traditional",
            "placed_at": order.placed_at,
            "status": order.status,
            "items": [
                {
                    "id": item.id,
                    "origin_id": item.external_item_id,
                    "product_id": item.product_id,
                    "price": {"base": item.price, "gross": item.price},
                    "product_attributes": {},
                    "status": item.status,
                    "shipping_method": order.service_level,
                }
                for item in order.items
            ],
            "totals": {"total": total, "gross": total},
        }

    def cancellation_status(self, order: LifecycleOrder) -> Json:
        cancelable = self._cancelable(order)
        return {"cancelable": cancelable, "canceled": order.cancelled, "is_safe": cancelable}

    def fulfillment_requests(self, order_uuid: str) -> Json:
        """`OrderFulfillmentRequestsResponse`; an unknown or unrouted order has an empty list
        (the Swagger says so)."""
        order = self.orders.get(order_uuid)
        if order is None:
            return {"fulfillment_requests": []}
        return {
            "fulfillment_requests": [
                {
                    "fulfillment_request_id": fr.id,
                    "fulfillment_node_id": fr.node,
                    "service_level": fr.service_level,
                    "created_at": fr.created_at,
                    "status": fr.status,
                    "items": [self._fr_item(order.item(item_id)) for item_id in fr.item_ids],
                }
                for fr in order.fulfillment_requests
            ]
        }

    @staticmethod
    def _fr_item(item: Item) -> Json:
        if item.status == "cancelled":
            status = "cancelled"
        elif item.carrier is not None or item.status in ("complete", "returned"):
            status = "shipped"
        else:
            status = "dispatched"
        view: Json = {
            "item_id": item.id,
            "product_id": item.product_id,
            "status": status,
            "carrier": item.carrier,
            "tracking_code": item.tracking_code,
        }
        if item.tracking_url is not None:
            # assumption: Item8 has no URL field; the sandbox adds one so that the
            # connector's handling of an optional URL can be exercised.
            view["tracking_url"] = item.tracking_url
        return view

    # --- the lifecycle steps (sandbox controls and the cancel endpoint) -------------

    def cancel(self, order: LifecycleOrder, body: Any) -> None:
        if not isinstance(body, dict) or not isinstance(body.get("reason"), str):
            raise Rejected(
                400,
                "bad_request",
                "Validation of cancel order request failed with error: "
                "'reason' is a required property.",
            )
        if order.cancelled:
            return  # assumption: cancelling a cancelled order again is accepted (no event)
        if not self._cancelable(order):
            # assumption: the Swagger lists no dedicated status for an order that can no
            # longer be cancelled; 400 with its `cancelable: false` reason is used.
            raise Rejected(400, "bad_request", f"order {order.id} is not cancelable")
        self.cancel_requests.append({"order_id": order.id, **body})
        self.cancel_now(order, reason=body["reason"])

    def cancel_now(self, order: LifecycleOrder, reason: str = "cancelled in NewStore") -> None:
        for item in order.items:
            if item.status in ("pending", "in_fulfillment", "on_hold"):
                item.status = "cancelled"
        order.cancelled = True
        order.cancel_reason = reason
        order.status = "closed"
        self._refresh_requests(order)
        self._emit("order.cancelled", {"id": order.id, "external_id": order.external_id})

    def cancel_items(self, order: LifecycleOrder, item_ids: Iterable[str]) -> list[Item]:
        items = [order.item(i) for i in item_ids]
        items = [i for i in items if i.status in ("pending", "in_fulfillment", "on_hold")]
        for item in items:
            item.status = "cancelled"
        self._refresh_requests(order)
        self._emit(
            "order.items_cancelled",
            {"id": order.id, "items": [{"id": i.id, "product_id": i.product_id} for i in items]},
        )
        return items

    def assign(
        self, order: LifecycleOrder, item_ids: Iterable[str] | None = None, node: str = "DC01"
    ) -> FulfillmentRequest:
        wanted = set(item_ids) if item_ids is not None else None
        items = [
            i for i in order.items if i.status == "pending" and (wanted is None or i.id in wanted)
        ]
        if not items:
            raise Rejected(400, "bad_request", f"order {order.id} has no unassigned items")
        fr = FulfillmentRequest(
            str(uuid.uuid4()), node, order.service_level, now_iso(), [i.id for i in items]
        )
        for item in items:
            item.status = "in_fulfillment"
            item.fulfillment_request_id = fr.id
        order.fulfillment_requests.append(fr)
        self._emit("fulfillment_request.assigned", self._fr_payload(order, fr, items))
        return fr

    def ready(self, order: LifecycleOrder, fr_id: str | None = None) -> FulfillmentRequest:
        fr = self._request(order, fr_id)
        fr.status = "acknowledged"
        items = [order.item(i) for i in fr.item_ids if order.item(i).status == "in_fulfillment"]
        payload = self._fr_payload(order, fr, items)
        self._emit("fulfillment_request.items_ready_for_handover", payload)
        return fr

    def ship(
        self,
        order: LifecycleOrder,
        fr_id: str | None = None,
        *,
        carrier: str = "UPS",
        tracking_code: str | None = None,
        tracking_url: str | None = None,
        item_ids: Iterable[str] | None = None,
    ) -> FulfillmentRequest:
        fr = self._request(order, fr_id)
        wanted = set(item_ids) if item_ids is not None else set(fr.item_ids)
        items = [
            order.item(i)
            for i in fr.item_ids
            if i in wanted and order.item(i).status == "in_fulfillment"
        ]
        if not items:
            raise Rejected(400, "bad_request", f"fulfillment request {fr.id} has nothing to ship")
        code = tracking_code or f"1Z{uuid.uuid4().hex[:16].upper()}"
        for item in items:
            item.status = "complete"
            item.carrier, item.tracking_code, item.tracking_url = carrier, code, tracking_url
        self._refresh_requests(order)
        self._emit("fulfillment_request.items_completed", self._fr_payload(order, fr, items))
        return fr

    def complete(self, order: LifecycleOrder) -> None:
        order.status = "closed"
        self._emit("order.completed", {"id": order.id, "external_id": order.external_id})

    def return_items(self, order: LifecycleOrder, item_ids: Iterable[str] | None = None) -> Return:
        wanted = set(item_ids) if item_ids is not None else None
        items = [
            i for i in order.items if i.status == "complete" and (wanted is None or i.id in wanted)
        ]
        if not items:
            raise Rejected(400, "bad_request", f"order {order.id} has no shipped items to return")
        for item in items:
            item.status = "returned"
        ret = Return(str(uuid.uuid4()), now_iso(), [i.id for i in items])
        order.returns.append(ret)
        self._emit(
            "return.processed",
            {
                "id": ret.id,
                "order_id": order.id,
                "returned_at": ret.returned_at,
                "currency": order.currency,
                "items": [
                    {
                        "id": i.id,
                        "product_id": i.product_id,
                        "quantity": 1,
                        "refund_amount": i.price,
                    }
                    for i in items
                ],
            },
        )
        return ret

    # --- helpers --------------------------------------------------------------------

    @staticmethod
    def _cancelable(order: LifecycleOrder) -> bool:
        # assumption: an order can be cancelled while none of its items has shipped (the
        # Swagger describes `cancelable` only as "cancelable in the current state").
        return not order.cancelled and all(
            item.status in ("pending", "in_fulfillment", "on_hold", "cancelled")
            for item in order.items
        )

    @staticmethod
    def _request(order: LifecycleOrder, fr_id: str | None) -> FulfillmentRequest:
        for fr in reversed(order.fulfillment_requests):
            if fr_id is None or fr.id == fr_id:
                return fr
        raise Rejected(400, "bad_request", f"order {order.id} has no such fulfillment request")

    @staticmethod
    def _refresh_requests(order: LifecycleOrder) -> None:
        for fr in order.fulfillment_requests:
            states = {order.item(i).status for i in fr.item_ids}
            if states <= {"complete", "cancelled", "returned"}:
                fr.status = "completed"
            elif states & {"complete", "cancelled", "returned"}:
                fr.status = "partially_completed"

    def _fr_payload(self, order: LifecycleOrder, fr: FulfillmentRequest, items: list[Item]) -> Json:
        return {
            "id": fr.id,
            "order_id": order.id,
            "fulfillment_location_id": fr.node,
            "service_level": fr.service_level,
            "associate_id": None,
            "items": [{"id": i.id, "product_id": i.product_id} for i in items],
        }

    def _emit(self, name: str, payload: Json) -> None:
        payload = {**payload, "logical_timestamp": next(self._clock)}
        self.emit_event(name, payload)
