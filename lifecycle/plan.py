"""Pure planning: one NewStore event, the commercetools order as it is now, and NewStore's
view of the order -> the update actions that bring the order up to date (possibly none).

Idempotent and never backwards, whatever order the events arrive in and however often:
- what has shipped, been cancelled or returned is read from NewStore's order at apply time
  (its current state), not from the event, so a late or repeated event cannot undo a later
  one;
- a Delivery is keyed by the fulfillment request and its shipped items, a Return Info by
  NewStore's return id: a redelivery finds its key on the order and adds nothing;
- states only move forward in `SHIPMENT_RANK` (Ready never replaces Shipped), and `Complete`
  and `Cancelled` are final.
"""

from __future__ import annotations

import hashlib
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from lifecycle.customization import StateMapping
from lifecycle.events import LifecycleEvent

Json = dict[str, Any]
FINAL_ORDER_STATES = frozenset({"Complete", "Cancelled"})
# How far along a shipment is; a state is only replaced by a higher one (except that a
# delivery recomputes Shipped/Partial from NewStore's current state).
SHIPMENT_RANK = {
    None: 0,
    "Pending": 1,
    "Delayed": 1,
    "Backorder": 1,
    "Ready": 2,
    "Partial": 3,
    "Shipped": 4,
    "Delivered": 5,
}
SHIPPED_ITEM_STATES = frozenset({"complete", "returned"})
FR_SHIPPED = "shipped"


@dataclass(frozen=True)
class Tracking:
    carrier: str | None
    tracking_code: str | None


@dataclass(frozen=True)
class NewStoreView:
    """What NewStore says about the order now (GET /v0/orders/{id}, and for shipments
    GET /v0/fulfillment_requests/{order_uuid})."""

    external_id: str
    line_of: dict[str, str]  # NewStore item id -> commercetools (custom) line item id
    status_of: dict[str, str]  # NewStore item id -> item status
    tracking_of: dict[str, Tracking] = field(default_factory=dict)

    @staticmethod
    def from_answers(detail: Json, requests: Json | None = None) -> NewStoreView:
        items = [i for i in detail.get("items") or [] if isinstance(i, dict) and i.get("id")]
        line_of = {str(i["id"]): str(i.get("origin_id") or "") for i in items}
        status_of = {str(i["id"]): str(i.get("status") or "") for i in items}
        tracking: dict[str, Tracking] = {}
        for fr in (requests or {}).get("fulfillment_requests") or []:
            for item in fr.get("items") or []:
                item_id = str(item.get("item_id") or "")
                if item.get("status") == FR_SHIPPED:
                    status_of.setdefault(item_id, "complete")
                if item.get("tracking_code") or item.get("carrier"):
                    tracking[item_id] = Tracking(item.get("carrier"), item.get("tracking_code"))
        return NewStoreView(str(detail.get("id") or ""), line_of, status_of, tracking)

    def shipped(self, item_id: str) -> bool:
        return self.status_of.get(item_id) in SHIPPED_ITEM_STATES


@dataclass
class Plan:
    actions: list[Json] = field(default_factory=list)
    # line item id -> units cancelled in NewStore (order.items_cancelled), to record
    cancelled_units: dict[str, int] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)


def delivery_key(fulfillment_request_id: str, item_ids: list[str]) -> str:
    """One key per shipment: its fulfillment request and the NewStore items it shipped.

    A Delivery key is at most 256 characters of `[a-zA-Z0-9_-]` (commercetools keys)."""
    digest = hashlib.sha256(",".join(sorted(item_ids)).encode()).hexdigest()[:12]
    safe = "".join(c if c.isalnum() or c in "-_" else "_" for c in fulfillment_request_id)
    return f"{safe[:200]}-{digest}"


def plan_event(
    event: LifecycleEvent, order: Json, newstore: NewStoreView, mapping: StateMapping
) -> Plan:
    handler = _HANDLERS.get(event.name)
    if handler is None:
        return Plan(notes=["ignored"])
    return handler(event, order, newstore, mapping)


# --- shared helpers ---------------------------------------------------------------------


def _line_kinds(order: Json) -> tuple[set[str], set[str]]:
    lines = {str(li.get("id")) for li in order.get("lineItems") or []}
    custom = {str(ci.get("id")) for ci in order.get("customLineItems") or []}
    return lines, custom


def _deliveries(order: Json) -> list[Json]:
    info = order.get("shippingInfo") or {}
    return list(info.get("deliveries") or [])


def _shipment_from_newstore(order: Json, newstore: NewStoreView, mapping: StateMapping) -> str:
    """Shipped when every unit NewStore still has to deliver has shipped, else Partial."""
    lines, custom = _line_kinds(order)
    ours = [i for i, line in newstore.line_of.items() if line in lines or line in custom]
    active = [i for i in ours if newstore.status_of.get(i) != "cancelled"]
    if active and all(newstore.shipped(i) for i in active):
        return mapping.shipped_shipment_state
    return mapping.partial_shipment_state


def _set_shipment(plan: Plan, order: Json, state: str | None) -> None:
    if state is not None and order.get("shipmentState") != state:
        plan.actions.append({"action": "changeShipmentState", "shipmentState": state})


def _set_order_state(plan: Plan, order: Json, state: str | None) -> None:
    current = order.get("orderState")
    if state is None or current == state:
        return
    if current in FINAL_ORDER_STATES:
        plan.notes.append(f"orderState {current} is final")
        return
    plan.actions.append({"action": "changeOrderState", "orderState": state})


# --- one function per event -------------------------------------------------------------


def _ready(event: LifecycleEvent, order: Json, ns: NewStoreView, mapping: StateMapping) -> Plan:
    plan = Plan()
    target = mapping.ready_shipment_state
    current = order.get("shipmentState")
    if order.get("orderState") in FINAL_ORDER_STATES or current == "Canceled":
        plan.notes.append("order already final")
    elif target is not None and SHIPMENT_RANK.get(current, 9) < SHIPMENT_RANK.get(target, 0):
        _set_shipment(plan, order, target)
    return plan


def _completed_items(
    event: LifecycleEvent, order: Json, ns: NewStoreView, mapping: StateMapping
) -> Plan:
    plan = Plan()
    lines, custom = _line_kinds(order)
    item_ids = event.item_ids()
    units = Counter(ns.line_of[i] for i in item_ids if ns.line_of.get(i) in lines | custom)
    if not units:
        plan.notes.append("no item of this order")
        return plan
    fr_id = str(event.payload.get("id") or "")
    key = delivery_key(fr_id, item_ids)
    known = {d.get("key") for d in _deliveries(order)}
    if mapping.add_deliveries and key not in known:
        items = [{"id": line, "quantity": n} for line, n in sorted(units.items())]
        parcel: Json = {"key": key, "items": items}
        tracking = next((ns.tracking_of[i] for i in item_ids if i in ns.tracking_of), None)
        if tracking is not None:
            # TrackingData has trackingId, carrier, provider, providerTransaction, isReturn
            # (openapi.yaml): there is no field for a tracking URL.
            data = {"trackingId": tracking.tracking_code, "carrier": tracking.carrier}
            parcel["trackingData"] = {k: v for k, v in data.items() if v}
        plan.actions.append(
            {"action": "addDelivery", "deliveryKey": key, "items": items, "parcels": [parcel]}
        )
    _set_shipment(plan, order, _shipment_from_newstore(order, ns, mapping))
    return plan


def _order_completed(
    event: LifecycleEvent, order: Json, ns: NewStoreView, mapping: StateMapping
) -> Plan:
    plan = Plan()
    _set_order_state(plan, order, mapping.completed_order_state)
    return plan


def _order_cancelled(
    event: LifecycleEvent, order: Json, ns: NewStoreView, mapping: StateMapping
) -> Plan:
    plan = Plan()
    _set_order_state(plan, order, mapping.cancelled_order_state)
    if not _deliveries(order) and not any(ns.shipped(i) for i in ns.line_of):
        _set_shipment(plan, order, mapping.cancelled_shipment_state)
    return plan


def _items_cancelled(
    event: LifecycleEvent, order: Json, ns: NewStoreView, mapping: StateMapping
) -> Plan:
    plan = Plan()
    lines, custom = _line_kinds(order)
    # Recorded from NewStore's current state: every cancelled unit of each line, so the
    # record is the same whichever items_cancelled event arrives first or twice.
    cancelled = Counter(
        line
        for item, line in ns.line_of.items()
        if ns.status_of.get(item) == "cancelled" and (line in lines or line in custom)
    )
    plan.cancelled_units = dict(cancelled)
    ours = [i for i, line in ns.line_of.items() if line in lines or line in custom]
    if ours and all(ns.status_of.get(i) == "cancelled" for i in ours):
        if not _deliveries(order):
            _set_shipment(plan, order, mapping.cancelled_shipment_state)
    elif any(ns.shipped(i) for i in ours):
        _set_shipment(plan, order, _shipment_from_newstore(order, ns, mapping))
    return plan


def _returned(event: LifecycleEvent, order: Json, ns: NewStoreView, mapping: StateMapping) -> Plan:
    plan = Plan()
    return_id = str(event.payload.get("id") or "")
    if not mapping.add_return_info or not return_id:
        return plan
    known = {info.get("returnTrackingId") for info in order.get("returnInfo") or []}
    if return_id in known:
        plan.notes.append("return already recorded")
        return plan
    lines, custom = _line_kinds(order)
    units: Counter[str] = Counter()
    for returned in event.payload.get("items") or []:
        line = ns.line_of.get(str(returned.get("id")))
        if line in lines or line in custom:
            quantity = returned.get("quantity")
            units[str(line)] += quantity if isinstance(quantity, int) and quantity > 0 else 1
    if not units:
        plan.notes.append("no item of this order")
        return plan
    items = []
    for n, (line, quantity) in enumerate(sorted(units.items())):
        item: Json = {
            "key": f"{return_id[:200]}-{n}",
            "quantity": quantity,
            "shipmentState": mapping.returned_item_state,
        }
        item["lineItemId" if line in lines else "customLineItemId"] = line
        items.append(item)
    action: Json = {"action": "addReturnInfo", "returnTrackingId": return_id, "items": items}
    if isinstance(event.payload.get("returned_at"), str):
        action["returnDate"] = event.payload["returned_at"]
    plan.actions.append(action)
    return plan


_HANDLERS = {
    "fulfillment_request.items_ready_for_handover": _ready,
    "fulfillment_request.items_completed": _completed_items,
    "order.completed": _order_completed,
    "order.cancelled": _order_cancelled,
    "order.items_cancelled": _items_cancelled,
    "return.processed": _returned,
}


def needs_shipments(event: LifecycleEvent) -> bool:
    """Whether planning needs NewStore's fulfillment requests (carrier, tracking code)."""
    return event.name == "fulfillment_request.items_completed"


def needs_statuses(event: LifecycleEvent) -> bool:
    """Whether planning needs NewStore's current item statuses (shipped, cancelled)."""
    return event.name in (
        "fulfillment_request.items_completed",
        "order.items_cancelled",
        "order.cancelled",
    )
