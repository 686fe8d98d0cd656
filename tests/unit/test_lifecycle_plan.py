"""The lifecycle plan (pure): what each NewStore event changes on a commercetools order,
idempotently and never backwards."""

from __future__ import annotations

from typing import Any

from lifecycle.customization import StateMapping
from lifecycle.events import LifecycleEvent, parse_event
from lifecycle.plan import NewStoreView, Tracking, delivery_key, plan_event

MAPPING = StateMapping()


def event(name: str, **payload: Any) -> LifecycleEvent:
    parsed = parse_event({"tenant": "t", "name": name, "payload": payload})
    assert parsed is not None
    return parsed


def order(**fields: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "id": "ord",
        "version": 3,
        "orderState": "Open",
        "lineItems": [{"id": "li-a", "quantity": 2}, {"id": "li-b", "quantity": 1}],
        "shippingInfo": {"deliveries": []},
    }
    return base | fields


def view(**status: str) -> NewStoreView:
    """Items n1, n2 of li-a and n3 of li-b, with the given statuses (default pending)."""
    lines = {"n1": "li-a", "n2": "li-a", "n3": "li-b"}
    return NewStoreView(
        "ord",
        lines,
        {i: status.get(i, "in_fulfillment") for i in lines},
        {i: Tracking("UPS", "1Z1") for i in status if status[i] == "complete"},
    )


def actions(name: str, the_order: dict[str, Any], ns: NewStoreView, **payload: Any) -> list[Any]:
    return plan_event(event(name, **payload), the_order, ns, MAPPING).actions


def test_ready_never_replaces_a_later_shipment_state() -> None:
    ready = "fulfillment_request.items_ready_for_handover"
    assert actions(ready, order(), view(), order_id="x") == [
        {"action": "changeShipmentState", "shipmentState": "Ready"}
    ]
    for later in ("Partial", "Shipped", "Delivered", "Canceled"):
        assert actions(ready, order(shipmentState=later), view(), order_id="x") == []
    assert actions(ready, order(orderState="Cancelled"), view(), order_id="x") == []


def test_a_shipment_adds_one_keyed_delivery_with_tracking_and_partial_or_shipped() -> None:
    completed = "fulfillment_request.items_completed"
    items = [{"id": "n1"}, {"id": "n2"}]
    partial = actions(
        completed, order(), view(n1="complete", n2="complete"), id="fr-1", items=items
    )
    key = delivery_key("fr-1", ["n1", "n2"])
    assert partial == [
        {
            "action": "addDelivery",
            "deliveryKey": key,
            "items": [{"id": "li-a", "quantity": 2}],
            "parcels": [
                {
                    "key": key,
                    "items": [{"id": "li-a", "quantity": 2}],
                    "trackingData": {"trackingId": "1Z1", "carrier": "UPS"},
                }
            ],
        },
        {"action": "changeShipmentState", "shipmentState": "Partial"},
    ]
    # Redelivered once the delivery is on the order: nothing to add.
    shipped_once = order(shipmentState="Partial", shippingInfo={"deliveries": [{"key": key}]})
    again = actions(
        completed, shipped_once, view(n1="complete", n2="complete"), id="fr-1", items=items
    )
    assert again == []
    # The last unit cancelled: what was shipped is everything that remains -> Shipped.
    done = view(n1="complete", n2="complete", n3="cancelled")
    assert actions(completed, order(), done, id="fr-1", items=items)[-1] == {
        "action": "changeShipmentState",
        "shipmentState": "Shipped",
    }


def test_cancel_complete_and_final_states() -> None:
    assert actions("order.cancelled", order(), view(), id="u") == [
        {"action": "changeOrderState", "orderState": "Cancelled"},
        {"action": "changeShipmentState", "shipmentState": "Canceled"},
    ]
    shipped = order(shippingInfo={"deliveries": [{"key": "k"}]})
    assert actions("order.cancelled", shipped, view(n1="complete"), id="u") == [
        {"action": "changeOrderState", "orderState": "Cancelled"}
    ]
    assert actions("order.completed", order(), view(), id="u") == [
        {"action": "changeOrderState", "orderState": "Complete"}
    ]
    assert actions("order.completed", order(orderState="Cancelled"), view(), id="u") == []
    assert (
        actions(
            "order.cancelled",
            order(orderState="Complete", shipmentState="Shipped"),
            view(n1="complete"),
            id="u",
        )
        == []
    )


def test_items_cancelled_are_counted_per_line_from_newstore() -> None:
    plan = plan_event(
        event("order.items_cancelled", id="u", items=[{"id": "n3"}]),
        order(),
        view(n3="cancelled"),
        MAPPING,
    )
    assert plan.cancelled_units == {"li-b": 1}
    assert plan.actions == []  # nothing shipped yet: the shipment state stays


def test_a_return_is_added_once_with_quantities_per_line() -> None:
    payload = {
        "id": "ret-1",
        "order_id": "u",
        "returned_at": "2026-01-01T00:00:00Z",
        "items": [{"id": "n1", "quantity": 1}, {"id": "n2", "quantity": 1}],
    }
    [add] = actions("return.processed", order(), view(), **payload)
    assert add["returnTrackingId"] == "ret-1"
    assert add["items"] == [
        {"key": "ret-1-0", "quantity": 2, "shipmentState": "Returned", "lineItemId": "li-a"}
    ]
    returned = order(returnInfo=[{"returnTrackingId": "ret-1", "items": []}])
    assert actions("return.processed", returned, view(), **payload) == []


def test_other_events_change_nothing() -> None:
    for name in ("order.opened", "fulfillment_request.assigned", "refund_request.issued"):
        assert actions(name, order(), view(), id="u") == []


def test_the_mapping_is_the_customisation_point() -> None:
    no_complete = StateMapping(completed_order_state=None, ready_shipment_state=None)
    assert plan_event(event("order.completed", id="u"), order(), view(), no_complete).actions == []
    ready = event("fulfillment_request.items_ready_for_handover", order_id="u")
    assert plan_event(ready, order(), view(), no_complete).actions == []
