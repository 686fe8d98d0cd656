"""The event app over real HTTP, against the emulators: one test per outcome class."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx

from sandbox.stack import Stack
from tests.helpers import order_created_message, push_envelope, store_order


def deliver(event: httpx.Client, order_id: str, **kwargs: Any) -> httpx.Response:
    return event.post("/event", json=push_envelope(order_created_message(order_id, **kwargs)))


def newstore_orders(stack: Stack) -> dict[str, Any]:
    return {o.external_id: o for o in stack.newstore.orders.values()}


def record(stack: Stack, order_id: str) -> dict[str, Any]:
    stored = stack.ctp.get_custom_object("newstore-connector-orders", order_id)
    return dict(stored["value"])


def stored_record(stack: Stack, order_id: str) -> dict[str, Any] | None:
    stored = stack.ctp.custom_objects.get(("newstore-connector-orders", order_id))
    return None if stored is None else record(stack, order_id)


def synced(stack: Stack, order_id: str) -> list[str]:
    """NewStore's order ids in the order's syncInfo: where a success is written."""
    order = stack.ctp.collections["order"].get(order_id)
    return [entry["externalId"] for entry in order.get("syncInfo") or []]


def set_controls(url: str, **controls: Any) -> None:
    httpx.put(f"{url}/_sandbox/controls", json=controls).raise_for_status()


def test_health_needs_no_upstream(event: httpx.Client) -> None:
    assert event.get("/health").json() == {"status": "ok"}


def test_order_is_injected_and_recorded(stack: Stack, event: httpx.Client) -> None:
    order_id = store_order(stack, 1)

    response = deliver(event, order_id)

    assert response.status_code == 200
    body = response.json()
    assert body["outcome"] == "injected"
    injected = newstore_orders(stack)[order_id]
    assert body["newstore_order_id"] == injected.id
    assert synced(stack, order_id) == [injected.id]  # on the order itself
    assert stored_record(stack, order_id) is None  # no Custom Object for a success


def test_cloudevents_format_is_injected(stack: Stack, event: httpx.Client) -> None:
    order_id = store_order(stack, 2)

    response = deliver(event, order_id, cloud_events=True)

    assert response.json()["outcome"] == "injected"
    assert order_id in newstore_orders(stack)


def test_redelivery_is_acknowledged_without_a_second_order(
    stack: Stack, event: httpx.Client
) -> None:
    order_id = store_order(stack, 3)
    first = deliver(event, order_id).json()
    requests_before = httpx.get(f"{stack.newstore_url}/_sandbox/counters").json()["total"]

    second = deliver(event, order_id)

    assert second.status_code == 200
    assert second.json()["newstore_order_id"] == first["newstore_order_id"]
    assert len(newstore_orders(stack)) == 1
    requests_after = httpx.get(f"{stack.newstore_url}/_sandbox/counters").json()["total"]
    assert requests_after == requests_before  # a late duplicate costs no upstream request


def test_redelivery_to_another_instance_is_idempotent(stack: Stack, event: httpx.Client) -> None:
    order_id = store_order(stack, 14)
    first = deliver(event, order_id).json()
    stack.apps["event"].state.worker.recent.clear()  # another instance: nothing cached

    second = deliver(event, order_id)

    # the order's syncInfo says it is in NewStore: nothing sent again
    assert second.json()["outcome"] == "already_injected"
    assert second.json()["newstore_order_id"] == first["newstore_order_id"]
    assert len(newstore_orders(stack)) == 1


def test_changed_order_is_already_injected(stack: Stack, event: httpx.Client) -> None:
    order_id = store_order(stack, 4)
    first = deliver(event, order_id).json()
    stack.ctp.collections["order"].get(order_id)["customerEmail"] = "changed@example.com"
    stack.apps["event"].state.worker.recent.clear()  # as if another instance got the redelivery

    response = deliver(event, order_id)

    assert response.status_code == 200
    assert response.json()["outcome"] == "already_injected"
    assert response.json()["newstore_order_id"] == first["newstore_order_id"]
    assert len(newstore_orders(stack)) == 1


def test_concurrent_duplicates_make_exactly_one_order(stack: Stack, event: httpx.Client) -> None:
    order_id = store_order(stack, 5)
    envelope = push_envelope(order_created_message(order_id), message_id="same-message")
    answers: list[httpx.Response] = []
    start = threading.Barrier(8)

    def push() -> None:
        with httpx.Client(base_url=str(event.base_url), timeout=30) as client:
            start.wait()
            answers.append(client.post("/event", json=envelope))

    threads = [threading.Thread(target=push) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert [a.status_code for a in answers] == [200] * 8
    assert len(newstore_orders(stack)) == 1
    assert len({a.json()["newstore_order_id"] for a in answers}) == 1


def test_newstore_outage_is_retried_then_heals(stack: Stack, event: httpx.Client) -> None:
    order_id = store_order(stack, 6)
    set_controls(stack.newstore_url, fault_rate=1.0)

    failing = deliver(event, order_id)

    assert failing.status_code == 503
    assert failing.json()["outcome"] == "retry"
    assert record(stack, order_id) | {"status": "retrying", "attempts": 1} == record(
        stack, order_id
    )
    set_controls(stack.newstore_url, fault_rate=0.0)

    healed = deliver(event, order_id)

    assert healed.status_code == 200 and healed.json()["outcome"] == "injected"
    assert synced(stack, order_id) == [healed.json()["newstore_order_id"]]
    assert stored_record(stack, order_id) is None  # the failure is superseded


def test_newstore_rate_limit_is_transient(stack: Stack, event: httpx.Client) -> None:
    order_id = store_order(stack, 7)
    set_controls(stack.newstore_url, rate_limit_rate=1.0, retry_after_s=60)

    response = deliver(event, order_id)

    assert response.status_code == 503
    assert response.json()["error"]["status"] == 429
    assert order_id not in newstore_orders(stack)


def test_lost_newstore_response_is_retried_into_the_same_order(
    stack: Stack, event: httpx.Client
) -> None:
    order_id = store_order(stack, 8)
    set_controls(stack.newstore_url, lost_response_rate=1.0)

    assert deliver(event, order_id).status_code == 503  # stored, but the answer was lost
    set_controls(stack.newstore_url, lost_response_rate=0.0)
    healed = deliver(event, order_id)

    assert healed.json()["outcome"] == "injected"
    assert len(newstore_orders(stack)) == 1


def test_commercetools_outage_is_transient(stack: Stack, event: httpx.Client) -> None:
    order_id = store_order(stack, 9)
    set_controls(stack.ctp_url, fault_rate=1.0)

    response = deliver(event, order_id)

    assert response.status_code == 503
    assert response.json()["error"]["service"] == "commercetools"


def test_unknown_order_is_a_recorded_permanent_failure(stack: Stack, event: httpx.Client) -> None:
    response = deliver(event, "00000000-0000-0000-0000-000000000000")

    assert response.status_code == 200
    assert response.json()["outcome"] == "failed"
    assert response.json()["reason"] == "order_not_found"
    assert record(stack, "00000000-0000-0000-0000-000000000000")["attempts"] == 1


def test_unmappable_order_is_recorded_and_counted(stack: Stack, event: httpx.Client) -> None:
    order_id = store_order(stack, 10)
    line = stack.ctp.collections["order"].get(order_id)["lineItems"][0]
    del line["variant"]["sku"]

    first = deliver(event, order_id)
    second = deliver(event, order_id)

    assert (first.status_code, second.status_code) == (200, 200)
    assert second.json()["reason"] == "missing_sku"
    stored = record(stack, order_id)
    assert (stored["status"], stored["reason"], stored["attempts"]) == ("failed", "missing_sku", 2)
    assert newstore_orders(stack) == {}


def test_order_beyond_newstore_limits_is_never_injected_partially(
    stack: Stack, event: httpx.Client
) -> None:
    order_id = store_order(stack, 11)
    stack.ctp.collections["order"].get(order_id)["lineItems"][0]["quantity"] = 101

    response = deliver(event, order_id)

    assert response.json()["reason"] == "order_too_large"
    assert newstore_orders(stack) == {}


def test_newstore_validation_error_is_recorded_with_its_details(
    stack: Stack, event: httpx.Client
) -> None:
    order_id = store_order(stack, 12)
    line = stack.ctp.collections["order"].get(order_id)["lineItems"][0]
    line["variant"]["sku"] = "NOT-IN-NEWSTORE"

    response = deliver(event, order_id)

    assert response.status_code == 200
    assert response.json()["reason"] == "newstore_rejected"
    error = record(stack, order_id)["error"]
    assert error["error_code"] == "product_not_found"
    assert error["request_id"] and "NOT-IN-NEWSTORE" in error["message"]


def test_a_transient_failure_is_parked_once_the_message_is_old(
    stack: Stack, event: httpx.Client
) -> None:
    order_id = store_order(stack, 13)
    set_controls(stack.newstore_url, fault_rate=1.0)
    six_days_and_a_minute_ago = (datetime.now(UTC) - timedelta(days=6, minutes=1)).isoformat()

    young = deliver(event, order_id)
    old = event.post(
        "/event",
        json=push_envelope(order_created_message(order_id), published_at=six_days_and_a_minute_ago),
    )

    assert young.status_code == 503  # an outage alone never parks an order
    assert (old.status_code, old.json()["reason"]) == (200, "transient_failure_parked")
    parked = record(stack, order_id)
    assert parked["status"] == "failed" and parked["attempts"] == 2


def test_subscription_test_message_and_other_messages_are_acked(event: httpx.Client) -> None:
    test_message = {
        "notificationType": "ResourceCreated",
        "projectKey": "sandbox",
        "resource": {"typeId": "subscription", "id": "s"},
        "version": 1,
    }
    other = {**order_created_message("o"), "type": "OrderShipmentStateChanged"}

    for message, kind in ((test_message, "subscription_test"), (other, "other")):
        response = event.post("/event", json=push_envelope(message))
        assert response.status_code == 200
        assert response.json() == {"outcome": "ignored", "kind": kind}


def test_malformed_push_request_is_a_clear_400(event: httpx.Client) -> None:
    response = event.post("/event", content=b"{not json")

    assert response.status_code == 400
    assert response.json() == {
        "error": "malformed_push_request",
        "detail": "request body is not valid JSON",
    }


def test_an_optional_value_outside_the_contract_is_left_out_and_listed(
    stack: Stack, event: httpx.Client
) -> None:
    long_email = f"{'a' * 60}@example.com"  # NewStore's customer_email takes 64 characters
    order_id = store_order(stack, 14, customerEmail=long_email)

    response = deliver(event, order_id)

    assert (response.status_code, response.json()["outcome"]) == (200, "injected")
    injected = newstore_orders(stack)[order_id].payload
    assert "customer_email" not in injected  # left out, never cut
    assert response.json()["omitted"] == ["customer_email: longer than 64"]


def test_a_required_value_outside_the_contract_fails_the_order_before_any_injection(
    stack: Stack, event: httpx.Client
) -> None:
    order_id = store_order(stack, 15)
    order = stack.ctp.collections["order"].get(order_id)
    order["shippingAddress"]["streetName"] = "S" * 130  # address_line_1 takes 128

    response = deliver(event, order_id)

    assert (response.status_code, response.json()["reason"]) == (200, "contract_violation")
    assert "address.address_line_1 longer than 128" in record(stack, order_id)["error"]["message"]
    assert order_id not in newstore_orders(stack)
