"""The lifecycle app's order updates against commercetools' published OpenAPI: every update
its plan makes for a NewStore event (`OrderUpdate` with its actions) is a valid request body,
and the endpoint it is posted to exists for POST."""

from __future__ import annotations

from typing import Any

import pytest

from tests.contract.test_commercetools_contract import operation_for, schema_errors
from tests.unit.test_lifecycle_plan import actions, order, view

COMPLETED = "fulfillment_request.items_completed"
SHIPPED_BOTH = view(n1="complete", n2="complete")
RETURN = {
    "id": "ret-1",
    "order_id": "u",
    "returned_at": "2026-01-01T00:00:00Z",
    "items": [{"id": "n1", "quantity": 1}, {"id": "n2", "quantity": 1}],
}
CASES: dict[str, list[dict[str, Any]]] = {
    "ready": actions("fulfillment_request.items_ready_for_handover", order(), view(), order_id="x"),
    "shipped, partly": actions(
        COMPLETED, order(), SHIPPED_BOTH, id="fr-1", items=[{"id": "n1"}, {"id": "n2"}]
    ),
    "completed": actions("order.completed", order(), view(), id="u"),
    "cancelled": actions("order.cancelled", order(), view(), id="u"),
    "returned": actions("return.processed", order(), view(), **RETURN),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_each_lifecycle_update_is_a_valid_order_update(case: str) -> None:
    update = {"version": 3, "actions": CASES[case]}
    assert CASES[case], "the plan made no update to check"

    assert schema_errors({"$ref": "#/components/schemas/OrderUpdate"}, update) == []


def test_the_update_goes_to_a_published_endpoint() -> None:
    template, _, operation = operation_for("POST", "/sandbox/orders/ord-1")
    assert template.endswith("/orders/{ID}")
    assert operation["requestBody"]


def test_the_check_can_fail() -> None:
    """A tracking URL, which commercetools' TrackingData does not have, is refused."""
    parcel = {"trackingData": {"trackingId": "1Z1", "trackingUrl": "https://t.example/1Z1"}}
    wrong = {"action": "addDelivery", "items": [], "parcels": [parcel]}
    errors = schema_errors(
        {"$ref": "#/components/schemas/OrderUpdate"}, {"version": 3, "actions": [wrong]}
    )
    assert any("trackingUrl" in error for error in errors)
