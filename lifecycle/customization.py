"""THE customisation point of the lifecycle app: which commercetools states NewStore's
events set. Edit `state_mapping` (or the constants it reads) to change them; everything
else (idempotency, never moving backwards, version checks) stays as it is.

Examples: a merchant who models "ready for pickup" as a custom State sets
`ready_shipment_state=None` and handles it elsewhere; one who never wants `Complete` sets
`completed_order_state=None`. The values must be commercetools enum values
(../shared/specs/commercetools/openapi.yaml: `OrderState`, `ShipmentState`,
`ReturnShipmentState`). docs/lifecycle.md lists what each event does.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class StateMapping:
    # fulfillment_request.items_ready_for_handover -> shipmentState
    ready_shipment_state: str | None = "Ready"
    # fulfillment_request.items_completed -> shipmentState, by what remains to ship
    shipped_shipment_state: str = "Shipped"
    partial_shipment_state: str = "Partial"
    # order.completed -> orderState
    completed_order_state: str | None = "Complete"
    # order.cancelled -> orderState, and shipmentState when nothing was shipped
    cancelled_order_state: str | None = "Cancelled"
    cancelled_shipment_state: str | None = "Canceled"
    # return.processed -> the shipmentState of each Return Item
    returned_item_state: str = "Returned"
    # add a Delivery (with tracking) for fulfillment_request.items_completed
    add_deliveries: bool = True
    # add Return Info for return.processed
    add_return_info: bool = True


def state_mapping() -> StateMapping:
    """The mapping the app uses; change it here."""
    return StateMapping()
