"""The order's later life in commercetools, seen by the event app: a cancellation goes to
NewStore exactly once (and never back to where it came from), and ORDER_INJECT_WHEN
injects an order once it is eligible, exactly once. Every count is what the emulators
received."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from connector import deploy
from connector.commercetools import CommercetoolsClient
from connector.newstore import NewStoreClient
from event.settings import OrderSettings
from lifecycle.registration import ensure_integration
from sandbox.stack import PROJECT_KEY, Stack, running_stack
from tests.helpers import order_created_message, push_envelope, store_order

STATUS = "GET /v0/orders/{order_id}/cancel"
CANCEL = "POST /v0/orders/{order_id}/cancel"
INJECTION = "POST /v0/d/fulfill_order"
TOKENS = {"POST /oauth/token", "POST /v0/token", f"GET /{PROJECT_KEY}/channels/key={{key}}"}


def counters(url: str) -> dict[str, int]:
    by_endpoint = httpx.get(f"{url}/_sandbox/counters").json()["by_endpoint"]
    return {k: v for k, v in by_endpoint.items() if k not in TOKENS}


def reset_counters(stack: Stack) -> None:
    for url in (stack.ctp_url, stack.newstore_url):
        httpx.post(f"{url}/_sandbox/counters/reset").raise_for_status()


def set_controls(url: str, **controls: Any) -> None:
    httpx.put(f"{url}/_sandbox/controls", json=controls).raise_for_status()


def state_changed(order_id: str, order_state: str, field: str = "orderState") -> dict[str, Any]:
    """An OrderStateChanged (or, with field="paymentState", OrderPaymentStateChanged)."""
    kind = "OrderStateChanged" if field == "orderState" else "OrderPaymentStateChanged"
    return {
        "notificationType": "Message",
        "projectKey": PROJECT_KEY,
        "id": str(uuid.uuid4()),
        "version": 1,
        "sequenceNumber": 2,
        "resource": {"typeId": "order", "id": order_id},
        "resourceVersion": 2,
        "type": kind,
        field: order_state,
        "createdAt": "2026-11-29T10:00:00.000Z",
        "lastModifiedAt": "2026-11-29T10:00:00.000Z",
    }


def push(stack: Stack, message: dict[str, Any]) -> httpx.Response:
    assert stack.event_url
    return httpx.post(f"{stack.event_url}/event", json=push_envelope(message), timeout=30)


def update_order(stack: Stack, order_id: str, *actions: dict[str, Any]) -> None:
    """Through the commercetools API, as the Merchant Center (or the lifecycle app) does."""

    async def update() -> None:
        async with CommercetoolsClient(stack.settings().commercetools) as ctp:
            order = await ctp.get_order(order_id)
            await ctp.update_order(order_id, order["version"], list(actions))

    asyncio.run(update())


def cancel_in_commercetools(stack: Stack, order_id: str) -> dict[str, Any]:
    update_order(stack, order_id, {"action": "changeOrderState", "orderState": "Cancelled"})
    return state_changed(order_id, "Cancelled")


def injected(stack: Stack, number: int) -> tuple[str, str]:
    """An order injected through the app: its commercetools and NewStore ids."""
    order_id = store_order(stack, number)
    answer = push(stack, order_created_message(order_id)).json()
    assert answer["outcome"] == "injected"
    return order_id, answer["newstore_order_id"]


def cancellation_record(stack: Stack, order_id: str) -> dict[str, Any] | None:
    stored = stack.ctp.custom_objects.get(("newstore-connector-cancellations", order_id))
    if stored is None:
        return None
    return dict(stack.ctp.collections["key-value-document"].get(stored)["value"])


def cancel_requests(stack: Stack) -> list[dict[str, Any]]:
    return list(stack.newstore.lifecycle.cancel_requests)


# --- cancellations ---------------------------------------------------------------------------


def test_a_cancellation_in_commercetools_reaches_newstore_once(stack: Stack) -> None:
    order_id, newstore_id = injected(stack, 51)
    message = cancel_in_commercetools(stack, order_id)
    reset_counters(stack)

    first = push(stack, message)

    assert (first.status_code, first.json()["outcome"]) == (200, "cancelled")
    assert [r["order_id"] for r in cancel_requests(stack)] == [newstore_id]
    assert cancel_requests(stack)[0]["reason"] == "Cancelled in commercetools"
    assert counters(stack.newstore_url) == {STATUS: 1, CANCEL: 1}
    record = cancellation_record(stack, order_id)
    assert record is not None and record["status"] == "cancelled"

    stack.apps["event"].state.canceller.recent.clear()  # the duplicate, on another instance
    reset_counters(stack)
    again = push(stack, message)

    assert (again.status_code, again.json()["outcome"]) == (200, "already_cancelled")
    assert counters(stack.newstore_url) == {}  # the record says so: NewStore is not asked
    assert len(cancel_requests(stack)) == 1


def test_a_cancellation_that_came_from_newstore_is_not_sent_back(stack: Stack) -> None:
    order_id, newstore_id = injected(stack, 52)
    # NewStore cancels the order; the lifecycle app sets Cancelled in commercetools, which
    # publishes OrderStateChanged like any other change.
    httpx.post(
        f"{stack.newstore_url}/_sandbox/orders/{newstore_id}/lifecycle", json={"step": "cancel"}
    ).raise_for_status()
    message = cancel_in_commercetools(stack, order_id)
    reset_counters(stack)

    answer = push(stack, message)

    assert answer.status_code == 200
    assert (answer.json()["outcome"], answer.json()["reason"]) == (
        "already_cancelled",
        "cancelled_in_newstore",
    )
    assert counters(stack.newstore_url) == {STATUS: 1}  # asked, never told
    assert cancel_requests(stack) == []
    record = cancellation_record(stack, order_id)
    assert record is not None and record["source"] == "newstore"


def test_a_cancellation_newstore_refuses_is_acked_and_recorded(stack: Stack) -> None:
    order_id, newstore_id = injected(stack, 53)
    for step in ("assign", "ship"):  # shipped: no longer cancelable
        httpx.post(
            f"{stack.newstore_url}/_sandbox/orders/{newstore_id}/lifecycle", json={"step": step}
        ).raise_for_status()
    message = cancel_in_commercetools(stack, order_id)

    answer = push(stack, message)

    assert (answer.status_code, answer.json()["outcome"]) == (200, "failed")
    assert answer.json()["reason"] == "not_cancelable"
    record = cancellation_record(stack, order_id)
    assert record is not None and (record["status"], record["attempts"]) == ("failed", 1)
    assert cancel_requests(stack) == []


def test_a_transient_failure_is_retried_into_exactly_one_cancellation(stack: Stack) -> None:
    order_id, newstore_id = injected(stack, 54)
    message = cancel_in_commercetools(stack, order_id)
    set_controls(stack.newstore_url, fault_rate=1.0)

    failing = push(stack, message)

    assert (failing.status_code, failing.json()["outcome"]) == (503, "retry")
    record = cancellation_record(stack, order_id)
    assert record is not None and record["status"] == "retrying"
    set_controls(stack.newstore_url, fault_rate=0.0)

    healed = push(stack, message)  # Pub/Sub's redelivery
    push(stack, message)  # and a duplicate of it

    assert (healed.status_code, healed.json()["outcome"]) == (200, "cancelled")
    assert [r["order_id"] for r in cancel_requests(stack)] == [newstore_id]
    record = cancellation_record(stack, order_id)
    assert record is not None and record["status"] == "cancelled"


def test_an_order_never_injected_has_nothing_to_cancel(stack: Stack) -> None:
    order_id = store_order(stack, 55)  # no OrderCreated delivered: not in NewStore
    message = cancel_in_commercetools(stack, order_id)
    reset_counters(stack)

    answer = push(stack, message)

    assert (answer.status_code, answer.json()["outcome"]) == (200, "ignored")
    assert answer.json()["reason"] == "not_in_newstore"
    assert counters(stack.newstore_url) == {}

    late = push(stack, order_created_message(order_id))  # its OrderCreated, delivered late

    assert (late.json()["outcome"], late.json()["reason"]) == ("ignored", "order_cancelled")
    assert stack.newstore.orders == {}  # a cancelled order is never injected


# --- ORDER_INJECT_WHEN, through the whole loop ---------------------------------------------


@pytest.fixture(params=["confirmed", "paid"])
def mode_stack(request: pytest.FixtureRequest) -> Iterator[Stack]:
    with running_stack(orders=OrderSettings(order_inject_when=request.param)) as stack:

        async def post_deploy() -> None:
            async with CommercetoolsClient(stack.settings().commercetools) as ctp:
                env = {**stack.env(), "ORDER_INJECT_WHEN": request.param}
                await deploy.post_deploy(ctp, env)

        asyncio.run(post_deploy())
        yield stack


def make_eligible(stack: Stack, order_id: str, mode: str) -> None:
    if mode == "confirmed":
        update_order(stack, order_id, {"action": "changeOrderState", "orderState": "Confirmed"})
    else:
        update_order(stack, order_id, {"action": "changePaymentState", "paymentState": "Paid"})


def test_an_order_is_injected_once_it_becomes_eligible(mode_stack: Stack) -> None:
    stack = mode_stack
    mode = stack.apps["event"].state.worker.settings.order_inject_when
    order_id = stack.create_order(56)  # Open, not paid
    stack.wait_idle()
    assert stack.newstore.orders == {}  # its OrderCreated was acked as ignored

    make_eligible(stack, order_id, mode)
    stack.wait_idle()
    make_eligible(stack, order_id, mode)  # no change: no second message
    stack.wait_idle()

    assert [o.external_id for o in stack.newstore.orders.values()] == [order_id]
    assert counters(stack.newstore_url)[INJECTION] == 1

    # a duplicate of the triggering message, on another instance, is recognised
    stack.apps["event"].state.worker.recent.clear()
    field = "orderState" if mode == "confirmed" else "paymentState"
    again = push(
        stack, state_changed(order_id, "Confirmed" if mode == "confirmed" else "Paid", field)
    )
    assert again.json()["outcome"] == "already_injected"
    assert len(stack.newstore.orders) == 1


def test_an_order_created_eligible_is_injected_on_creation(mode_stack: Stack) -> None:
    stack = mode_stack
    mode = stack.apps["event"].state.worker.settings.order_inject_when

    def eligible(order: dict[str, Any]) -> None:
        if mode == "confirmed":
            order["orderState"] = "Confirmed"
        else:
            order["paymentState"] = "Paid"

    order_id = stack.create_order(57, edit=eligible)
    stack.wait_idle()

    assert [o.external_id for o in stack.newstore.orders.values()] == [order_id]


def test_messages_that_do_not_make_an_order_eligible_are_ignored_with_a_reason(
    mode_stack: Stack,
) -> None:
    stack = mode_stack
    order_id = stack.create_order(58)
    stack.wait_idle()
    reset_counters(stack)

    answers = [
        push(stack, state_changed(order_id, "Open")),
        push(stack, state_changed(order_id, "Pending", field="paymentState")),
    ]

    for answer in answers:
        assert (answer.status_code, answer.json()["outcome"]) == (200, "ignored")
        assert answer.json()["reason"]
    assert counters(stack.ctp_url) == {} and counters(stack.newstore_url) == {}


# --- both apps together: a cancellation crosses once, in either direction -----------------


def test_cancellations_cross_once_in_either_direction_with_the_lifecycle_app() -> None:
    with running_stack(with_lifecycle_app=True, newstore_controls={"rate_limits": False}) as stack:

        async def register() -> None:
            async with CommercetoolsClient(stack.settings().commercetools) as ctp:
                await deploy.post_deploy(ctp, stack.env())
            async with NewStoreClient(stack.settings().newstore) as newstore:
                await ensure_integration(newstore, stack.lifecycle_settings())

        asyncio.run(register())
        from_newstore, from_commercetools = stack.create_order(61), stack.create_order(62)
        stack.wait_idle()
        ns_ids = {o.external_id: o.id for o in stack.newstore.orders.values()}

        # NewStore cancels: the lifecycle app sets Cancelled, commercetools publishes
        # OrderStateChanged, the event app sees NewStore has it cancelled: nothing sent back.
        httpx.post(
            f"{stack.newstore_url}/_sandbox/orders/{ns_ids[from_newstore]}/lifecycle",
            json={"step": "cancel"},
        ).raise_for_status()
        httpx.post(f"{stack.newstore_url}/_sandbox/stream/deliver", timeout=30)
        stack.wait_idle()

        assert stack.ctp.get("order", from_newstore)["orderState"] == "Cancelled"
        assert cancel_requests(stack) == []
        record = cancellation_record(stack, from_newstore)
        assert record is not None and record["source"] == "newstore"

        # commercetools cancels: the event app cancels in NewStore, whose order.cancelled
        # the lifecycle app then finds already applied: no second message, no loop.
        update_order(
            stack, from_commercetools, {"action": "changeOrderState", "orderState": "Cancelled"}
        )
        stack.wait_idle()
        httpx.post(f"{stack.newstore_url}/_sandbox/stream/deliver", timeout=30)
        stack.wait_idle()

        assert [r["order_id"] for r in cancel_requests(stack)] == [ns_ids[from_commercetools]]
        record = cancellation_record(stack, from_commercetools)
        assert record is not None and record["source"] == "connector"
        state_changes = [
            m
            for m in stack.ctp.collections["message"].items.values()
            if m["type"] == "OrderStateChanged" and m["resource"]["id"] == from_commercetools
        ]
        assert len(state_changes) == 1


def test_an_order_newstore_already_had_is_cancelled_by_its_external_id(stack: Stack) -> None:
    """Injected as `already_injected` (NewStore gave no id): no syncInfo, the injection record
    names the external id, and the cancellation uses id_type=external."""
    order_id, newstore_id = injected(stack, 63)
    stack.ctp.collections["order"].get(order_id)["syncInfo"] = []
    stack.ctp.seed(
        {
            "customObjects": [
                {
                    "container": "newstore-connector-orders",
                    "key": order_id,
                    "value": {"status": "already_injected", "external_id": order_id},
                }
            ]
        }
    )
    message = cancel_in_commercetools(stack, order_id)

    answer = push(stack, message)

    assert answer.json()["outcome"] == "cancelled"
    assert [r["order_id"] for r in cancel_requests(stack)] == [newstore_id]
    record = cancellation_record(stack, order_id)
    assert record is not None and (record["id_type"], record["newstore_order_id"]) == (
        "external",
        order_id,
    )


def test_a_cancellation_waits_for_an_injection_still_being_retried(stack: Stack) -> None:
    order_id = store_order(stack, 64)
    retrying = {"status": "retrying", "attempts": 2, "order_id": order_id}
    stack.ctp.seed(
        {
            "customObjects": [
                {"container": "newstore-connector-orders", "key": order_id, "value": retrying}
            ]
        }
    )
    message = cancel_in_commercetools(stack, order_id)
    assert stack.event_url

    fresh = push(stack, message)
    old = httpx.post(
        f"{stack.event_url}/event",
        json=push_envelope(message, published_at="2026-01-01T00:00:00Z"),
        timeout=30,
    )

    assert (fresh.status_code, fresh.json()["reason"]) == (503, "injection_pending")
    # after the kept payloads' lifetime every injection reads the order first and finds it
    # cancelled: nothing can reach NewStore any more
    assert (old.status_code, old.json()["reason"]) == (200, "not_in_newstore")


def test_a_cancellation_failing_for_days_is_parked_as_failed(stack: Stack) -> None:
    order_id, _ = injected(stack, 65)
    message = cancel_in_commercetools(stack, order_id)
    set_controls(stack.newstore_url, fault_rate=1.0)
    assert stack.event_url

    parked = httpx.post(
        f"{stack.event_url}/event",
        json=push_envelope(message, published_at="2026-01-01T00:00:00Z"),
        timeout=30,
    )

    assert (parked.status_code, parked.json()["outcome"]) == (200, "failed")
    assert parked.json()["reason"] == "transient_failure_parked"
    record = cancellation_record(stack, order_id)
    assert record is not None and record["status"] == "failed"
    assert cancel_requests(stack) == []
