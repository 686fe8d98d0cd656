"""Order updates in the commercetools emulator: `POST /{projectKey}/orders/{id}` (and
`/orders/order-number={n}`) with the update actions the connector writes NewStore's
lifecycle with, each publishing the Order Message commercetools publishes for it (the
`newstore` Channel that `syncInfo` points at is created by the channel routes).

Shapes follow ../shared/specs/commercetools/openapi.yaml: `OrderUpdate`, the order update
actions `changeOrderState`, `changePaymentState`, `changeShipmentState`, `addDelivery` (with
`ParcelDraft` and `TrackingData`), `addReturnInfo` (`ReturnItemDraft`) and `updateSyncInfo`,
the resources `Delivery`, `ReturnInfo` and `SyncInfo`, and the `OrderStateChanged`,
`OrderPaymentStateChanged`, `OrderShipmentStateChanged`, `DeliveryAdded` and `ReturnInfoAdded`
messages). Like every other handler, nothing here awaits between reading
and writing, so the version check behaves as on the real API under concurrent requests.
"""

from __future__ import annotations

import copy
from collections.abc import Awaitable, Callable
from typing import Any

from fastapi import FastAPI
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from sandbox.commercetools.common import Json, new_id, now_iso
from sandbox.commercetools.drafts import checked_actions
from sandbox.commercetools.errors import duplicate, invalid_input, invalid_json
from sandbox.commercetools.expansion import expand_all
from sandbox.commercetools.publisher import wants_message
from sandbox.commercetools.state import CommercetoolsEmulator
from sandbox.commercetools.store import parse_expand_params

ORDER_STATES = ("Open", "Confirmed", "Complete", "Cancelled")
PAYMENT_STATES = ("BalanceDue", "Failed", "Pending", "CreditOwed", "Paid")
SHIPMENT_STATES = (
    "Shipped",
    "Delivered",
    "Ready",
    "Pending",
    "Delayed",
    "Partial",
    "Backorder",
    "Canceled",
)
RETURN_SHIPMENT_STATES = ("Advised", "Returned", "BackInStock", "Unusable")
# The ReturnPaymentState a new Return Item gets: the enum descriptions of ReturnShipmentState
# in the OpenAPI say "Returned" items start `Initial` and "Advised" ones `NonRefundable`.
# assumption: BackInStock and Unusable as initial states also start `Initial` (the spec is
# silent).
_INITIAL_RETURN_PAYMENT = {"Advised": "NonRefundable"}

_STATE_FIELDS = {
    "changeOrderState": ("orderState", ORDER_STATES, "OrderStateChanged"),
    "changePaymentState": ("paymentState", PAYMENT_STATES, "OrderPaymentStateChanged"),
    "changeShipmentState": ("shipmentState", SHIPMENT_STATES, "OrderShipmentStateChanged"),
}


def _enum(action: Json, name: str, allowed: tuple[str, ...], *, required: bool = True) -> Any:
    value = action.get(name)
    if value is None and not required:
        return None
    if value not in allowed:
        raise invalid_json(f"{name}: Invalid enum value '{value}'; expected one of {allowed}")
    return value


def _quantity(item: Json, where: str) -> int:
    quantity = item.get("quantity")
    if type(quantity) is not int:
        raise invalid_json(f"{where} -> quantity: Missing required value")
    if quantity < 1:
        raise invalid_input(f"{where} -> quantity: must be at least 1.")
    return quantity


class OrderUpdater:
    """Applies one `OrderUpdate` to an order of the emulator and publishes its messages."""

    def __init__(self, emu: CommercetoolsEmulator) -> None:
        self.emu = emu

    # ---- the update

    def update(self, order: Json, body: Json) -> Json:
        actions = checked_actions(body, order)
        updated = copy.deepcopy(order)
        now = now_iso()
        messages: list[Json] = []
        for action in actions:
            messages.extend(self._apply(updated, action, now))
        if updated == order:
            # assumption: an update that changes nothing keeps the version and publishes
            # nothing, as the inventory and subscription updates of this emulator do (the
            # orders page of docs.commercetools.com is silent on no-op updates).
            return order
        updated["version"] = order["version"] + 1
        updated["lastModifiedAt"] = now
        sequence = int(order.get("lastMessageSequenceNumber") or 1)
        for message in messages:
            sequence += 1
            self._publish(updated, message, sequence, now)
        updated["lastMessageSequenceNumber"] = sequence
        self.emu.collections["order"].put(updated)
        return updated

    def _apply(self, order: Json, action: Json, now: str) -> list[Json]:
        name = action.get("action")
        if name in _STATE_FIELDS:
            field_name, allowed, message_type = _STATE_FIELDS[name]
            value = _enum(action, field_name, allowed)
            old = order.get(field_name)
            if old == value:
                return []
            order[field_name] = value
            message: Json = {"type": message_type, field_name: value}
            if old is not None:
                message["old" + field_name[0].upper() + field_name[1:]] = old
            return [message]
        if name == "addDelivery":
            return [self._add_delivery(order, action, now)]
        if name == "addReturnInfo":
            return [self._add_return_info(order, action, now)]
        if name == "updateSyncInfo":
            self._update_sync_info(order, action, now)
            return []  # the Messages page lists no message for updateSyncInfo
        raise invalid_json(f"actions -> action: Unknown action '{name}'")

    # ---- deliveries

    def _delivery_items(self, order: Json, items: Any, where: str) -> list[Json]:
        if items is None:
            return []
        if not isinstance(items, list) or not all(isinstance(i, dict) for i in items):
            raise invalid_json(f"{where}: JSON array of objects expected")
        known = {li.get("id") for li in order.get("lineItems") or []}
        known |= {ci.get("id") for ci in order.get("customLineItems") or []}
        checked = []
        for item in items:
            item_id = item.get("id")
            if not isinstance(item_id, str):
                raise invalid_json(f"{where} -> id: Missing required value")
            if item_id not in known:
                # assumption: the id of a Delivery Item must be one of the order's (custom)
                # line items; the API reference does not name the error, InvalidInput is used.
                raise invalid_input(f"The order has no line item with id '{item_id}'.")
            checked.append({"id": item_id, "quantity": _quantity(item, where)})
        return checked

    def _add_delivery(self, order: Json, action: Json, now: str) -> Json:
        shipping_info = order.get("shippingInfo")
        if not isinstance(shipping_info, dict):
            # assumption: an order without shippingInfo gets one holding only the deliveries
            # (the real API's answer for such an order is not documented).
            shipping_info = order["shippingInfo"] = {}
        deliveries = shipping_info.setdefault("deliveries", [])
        key = action.get("deliveryKey")
        if key is not None:
            if not isinstance(key, str) or not key:
                raise invalid_json("deliveryKey: a non-empty string expected")
            if any(d.get("key") == key for d in deliveries):
                # assumption: a Delivery key is unique within its order, as the key of every
                # resource is ("User-defined unique identifier"); the error is DuplicateField.
                raise duplicate("deliveryKey", key)
        delivery: Json = {"id": new_id()}
        if key is not None:
            delivery["key"] = key
        delivery["createdAt"] = now
        delivery["items"] = self._delivery_items(order, action.get("items"), "items")
        delivery["parcels"] = [
            self._parcel(order, parcel, now) for parcel in _objects(action, "parcels")
        ]
        if isinstance(action.get("address"), dict):
            delivery["address"] = action["address"]
        deliveries.append(delivery)
        message: Json = {"type": "DeliveryAdded", "delivery": delivery}
        if action.get("shippingKey") is not None:
            message["shippingKey"] = action["shippingKey"]
        return message

    def _parcel(self, order: Json, draft: Json, now: str) -> Json:
        parcel: Json = {"id": new_id()}
        if draft.get("key") is not None:
            parcel["key"] = draft["key"]
        parcel["createdAt"] = now
        if isinstance(draft.get("measurements"), dict):
            parcel["measurements"] = draft["measurements"]
        tracking = draft.get("trackingData")
        if tracking is not None:
            if not isinstance(tracking, dict):
                raise invalid_json("parcels -> trackingData: JSON object expected")
            allowed = ("trackingId", "carrier", "provider", "providerTransaction", "isReturn")
            unknown = set(tracking) - set(allowed)
            if unknown:
                raise invalid_json(f"parcels -> trackingData: Unknown fields {sorted(unknown)}")
            parcel["trackingData"] = {k: tracking[k] for k in allowed if k in tracking}
        parcel["items"] = self._delivery_items(order, draft.get("items"), "parcels -> items")
        return parcel

    # ---- returns

    def _add_return_info(self, order: Json, action: Json, now: str) -> Json:
        drafts = action.get("items")
        if not isinstance(drafts, list) or not all(isinstance(i, dict) for i in drafts):
            raise invalid_json("items: Missing required value")
        line_items = {li.get("id") for li in order.get("lineItems") or []}
        custom_items = {ci.get("id") for ci in order.get("customLineItems") or []}
        existing_keys = {
            item.get("key")
            for info in order.get("returnInfo") or []
            for item in info.get("items") or []
            if item.get("key") is not None
        }
        items = []
        for draft in drafts:
            state = _enum(draft, "shipmentState", RETURN_SHIPMENT_STATES)
            item: Json = {"id": new_id()}
            key = draft.get("key")
            if key is not None:
                if key in existing_keys:
                    # assumption: like every key, a Return Item key is unique in its order.
                    raise duplicate("key", key)
                existing_keys.add(key)
                item["key"] = key
            item["quantity"] = _quantity(draft, "items")
            if draft.get("lineItemId") is not None:
                if draft["lineItemId"] not in line_items:
                    raise invalid_input(f"The order has no line item '{draft['lineItemId']}'.")
                item["type"] = "LineItemReturnItem"
                item["lineItemId"] = draft["lineItemId"]
            elif draft.get("customLineItemId") is not None:
                if draft["customLineItemId"] not in custom_items:
                    raise invalid_input(
                        f"The order has no custom line item '{draft['customLineItemId']}'."
                    )
                item["type"] = "CustomLineItemReturnItem"
                item["customLineItemId"] = draft["customLineItemId"]
            else:
                raise invalid_input("A return item needs a lineItemId or a customLineItemId.")
            if draft.get("comment") is not None:
                item["comment"] = draft["comment"]
            item["shipmentState"] = state
            item["paymentState"] = _INITIAL_RETURN_PAYMENT.get(state, "Initial")
            item["createdAt"] = now
            item["lastModifiedAt"] = now
            items.append(item)
        info: Json = {"items": items}
        for name in ("returnTrackingId", "returnDate"):
            if action.get(name) is not None:
                info[name] = action[name]
        order.setdefault("returnInfo", []).append(info)
        return {"type": "ReturnInfoAdded", "returnInfo": info}

    # ---- sync info

    def _update_sync_info(self, order: Json, action: Json, now: str) -> None:
        channel = self.emu._channel_reference(action.get("channel"))
        if channel is None:
            raise invalid_json("channel: Missing required value")
        entry: Json = {"channel": channel}
        if action.get("externalId") is not None:
            entry["externalId"] = action["externalId"]
        entry["syncedAt"] = action.get("syncedAt") or now
        sync_info: list[Json] = order.setdefault("syncInfo", [])
        # assumption: the same channel and externalId again replaces its entry rather than
        # adding a second one (docs.commercetools.com /api/projects/orders is silent).
        for index, existing in enumerate(sync_info):
            if existing["channel"]["id"] == channel["id"] and existing.get(
                "externalId"
            ) == entry.get("externalId"):
                sync_info[index] = entry
                return
        sync_info.append(entry)

    # ---- messages

    def _publish(self, order: Json, body: Json, sequence: int, now: str) -> None:
        emu = self.emu
        identifiers = {"orderNumber": order["orderNumber"]} if order.get("orderNumber") else {}
        message: Json = {
            "id": new_id(),
            "version": 1,
            "sequenceNumber": sequence,
            "resource": {"typeId": "order", "id": order["id"]},
            "resourceVersion": order["version"],
            "resourceUserProvidedIdentifiers": identifiers,
            **body,
            "createdAt": now,
            "lastModifiedAt": now,
        }
        emu.collections["message"].put(message)
        for subscription in emu.collections["subscription"].items.values():
            if wants_message(subscription, "order", message["type"]):
                payload = emu._message_payload(subscription, message, "order", "orders")
                emu.publisher.publish(subscription["destination"], payload)


def _objects(action: Json, name: str) -> list[Json]:
    value = action.get(name)
    if value is None:
        return []
    if not isinstance(value, list) or not all(isinstance(v, dict) for v in value):
        raise invalid_json(f"{name}: JSON array of objects expected")
    return value


def install_order_updates(
    app: FastAPI,
    emu: CommercetoolsEmulator,
    base: str,
    body_of: Callable[[Request], Awaitable[Json]],
) -> None:
    """The order update routes (registered after `/orders/import`; channels are created by
    the routes module's channel routes, with their draft checks); `body_of`
    reads a request's JSON object with the routes' errors."""
    updater = OrderUpdater(emu)

    def answer(order: Json, request: Request) -> Response:
        return JSONResponse(expand_all(order, parse_expand_params(request), emu.resolve))

    @app.post(f"{base}/orders/order-number={{number}}")
    async def update_by_number(number: str, request: Request) -> Response:
        order = emu.get_order_by_number(number)
        return answer(updater.update(order, await body_of(request)), request)

    @app.post(f"{base}/orders/{{order_id}}")
    async def update_by_id(order_id: str, request: Request) -> Response:
        order = emu.get("order", order_id)
        return answer(updater.update(order, await body_of(request)), request)


__all__ = [
    "ORDER_STATES",
    "PAYMENT_STATES",
    "RETURN_SHIPMENT_STATES",
    "SHIPMENT_STATES",
    "OrderUpdater",
    "install_order_updates",
]
