"""NewStore's order lifecycle reaches commercetools' native fields, end to end on the
sandbox: commercetools order -> event app -> NewStore -> lifecycle steps -> Event Stream ->
lifecycle app -> commercetools. Each test counts the requests the emulators received."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from typer.testing import CliRunner

from cli.main import app as cli_app
from connector import deploy
from connector.commercetools import CommercetoolsClient
from connector.newstore import NewStoreClient
from lifecycle.registration import ensure_integration
from sandbox.stack import LIFECYCLE_API_KEY, Stack, running_stack

TOKENS = {"POST /oauth/token", "POST /v0/token"}
INTEGRATIONS = "/api/v1/org/integrations/eventstream"
INBOX = "newstore-connector-lifecycle-inbox"


@pytest.fixture
def stack() -> Iterator[Stack]:
    with running_stack(
        with_lifecycle_app=True, with_job_app=True, newstore_controls={"rate_limits": False}
    ) as running:
        register(running)
        yield running


def register(stack: Stack) -> str:
    """What post-deploy does: the OrderCreated subscription and the lifecycle integration."""

    async def go() -> str:
        async with CommercetoolsClient(stack.settings().commercetools) as ctp:
            await deploy.post_deploy(ctp, stack.env())
        async with NewStoreClient(stack.settings().newstore) as newstore:
            return (await ensure_integration(newstore, stack.lifecycle_settings())).action

    return asyncio.run(go())


def injected_order(stack: Stack, number: int) -> tuple[str, dict[str, Any]]:
    """A commercetools order, injected by the event app: (its id, NewStore's answer)."""
    order_id = stack.create_order(number)
    stack.wait_idle()
    found = httpx.get(f"{stack.newstore_url}/_sandbox/orders/{order_id}")
    assert found.status_code == 200, found.text
    return order_id, found.json()["response"]


def step(stack: Stack, ns_id: str, **body: Any) -> dict[str, Any]:
    reply = httpx.post(f"{stack.newstore_url}/_sandbox/orders/{ns_id}/lifecycle", json=body)
    assert reply.status_code == 200, reply.text
    return dict(reply.json())


def deliver(stack: Stack) -> dict[str, Any]:
    return dict(httpx.post(f"{stack.newstore_url}/_sandbox/stream/deliver", timeout=30).json())


def stream(stack: Stack, **controls: Any) -> None:
    httpx.patch(f"{stack.newstore_url}/_sandbox/stream", json=controls).raise_for_status()


def ct_order(stack: Stack, order_id: str) -> dict[str, Any]:
    return dict(stack.ctp.get("order", order_id))


def counters(url: str) -> dict[str, int]:
    by_endpoint = httpx.get(f"{url}/_sandbox/counters").json()["by_endpoint"]
    return {k: v for k, v in by_endpoint.items() if k not in TOKENS}


def reset_counters(stack: Stack) -> None:
    for url in (stack.ctp_url, stack.newstore_url):
        httpx.post(f"{url}/_sandbox/counters/reset").raise_for_status()


def published_types(stack: Stack) -> list[str]:
    return [m["type"] for m in stack.ctp.collections["message"].items.values()]


def run_job(stack: Stack) -> dict[str, Any]:
    reply = httpx.post(f"{stack.job_url}/job", timeout=60)
    assert reply.status_code == 200, reply.text
    return dict(reply.json()["lifecycle"])


def inbox(stack: Stack) -> list[str]:
    """The keys of the lifecycle inbox's entries."""
    return sorted(key for container, key in stack.ctp.custom_objects if container == INBOX)


def test_a_shipment_reaches_commercetools_with_delivery_and_tracking(stack: Stack) -> None:
    order_id, answer = injected_order(stack, 1)
    ns_id = answer["id"]
    step(stack, ns_id, step="assign")
    step(stack, ns_id, step="ready")
    deliver(stack)
    assert ct_order(stack, order_id)["shipmentState"] == "Ready"

    reset_counters(stack)
    step(stack, ns_id, step="ship", carrier="UPS", tracking_code="1Z999AA10123456784")
    assert deliver(stack) == {"delivered": 1, "failed": 0}
    order = ct_order(stack, order_id)
    assert order["shipmentState"] == "Shipped"
    [delivery] = order["shippingInfo"]["deliveries"]
    lines = {li["id"]: li["quantity"] for li in order["lineItems"]}
    assert {i["id"]: i["quantity"] for i in delivery["items"]} == lines
    [parcel] = delivery["parcels"]
    assert parcel["trackingData"] == {"trackingId": "1Z999AA10123456784", "carrier": "UPS"}
    assert "DeliveryAdded" in published_types(stack)
    # One read and one update in commercetools for the event; NewStore: the order and its
    # fulfillment requests.
    assert counters(stack.ctp_url) == {
        "GET /sandbox/orders/{resource_id}": 1,
        "POST /sandbox/orders/{order_id}": 1,
    }
    assert counters(stack.newstore_url) == {
        "GET /v0/orders/{order_id}": 1,
        "GET /v0/fulfillment_requests/{order_uuid}": 1,
    }

    step(stack, ns_id, step="complete")
    deliver(stack)
    assert ct_order(stack, order_id)["orderState"] == "Complete"


def test_every_event_twice_and_out_of_order_gives_the_same_order(stack: Stack) -> None:
    """Partial shipment, a cancelled unit, the rest shipped, completed, one unit returned:
    delivered shuffled with every event twice, the order ends as in order, once."""
    stream(stack, duplicate_rate=1.0, reorder=True, seed=7)
    order_id, answer = injected_order(stack, 10)
    ns_id = answer["id"]
    items = [i["id"] for i in answer["items"]]
    assert len(items) == 5, "the catalog's order 10 has lines of 3, 1 and 1 units"
    step(stack, ns_id, step="assign")
    step(stack, ns_id, step="ready")
    step(stack, ns_id, step="ship", item_ids=[items[0]], tracking_code="T-1")
    step(stack, ns_id, step="cancel_items", item_ids=[items[1]])
    step(stack, ns_id, step="ship", tracking_code="T-2")
    step(stack, ns_id, step="complete")
    step(stack, ns_id, step="return", item_ids=[items[0]])
    reset_counters(stack)
    for _ in range(3):  # duplicates come in the next pass
        deliver(stack)
    deliveries = httpx.get(f"{stack.newstore_url}/_sandbox/stream/deliveries").json()
    names = [d["name"] for d in deliveries["deliveries"]]
    # ready, ship x2, items_cancelled, complete, return: each twice; the integration's filter
    # keeps order.created and fulfillment_request.assigned away
    assert len(names) == 2 * 6
    emitted = [
        "fulfillment_request.items_ready_for_handover",
        "fulfillment_request.items_completed",
        "order.items_cancelled",
        "fulfillment_request.items_completed",
        "order.completed",
        "return.processed",
    ]
    assert sorted(names[:6]) == sorted(emitted)
    assert names[:6] != emitted  # delivered out of order

    order = ct_order(stack, order_id)
    assert order["orderState"] == "Complete"
    assert order["shipmentState"] == "Shipped"
    assert len(order["shippingInfo"]["deliveries"]) == 2
    shipped = sum(i["quantity"] for d in order["shippingInfo"]["deliveries"] for i in d["items"])
    assert shipped == len(items) - 1  # everything but the cancelled unit
    [returned] = order["returnInfo"]
    assert [i["quantity"] for i in returned["items"]] == [1]
    assert returned["items"][0]["shipmentState"] == "Returned"
    record = stack.ctp.get_custom_object("newstore-connector-lifecycle", order_id)["value"]
    assert sum(record["cancelled_units"].values()) == 1
    # Duplicates were read, and changed nothing: at most one update per distinct change, and
    # none was refused (a refused update would have left the event in the inbox).
    updates = counters(stack.ctp_url).get("POST /sandbox/orders/{order_id}", 0)
    assert updates <= 6
    assert inbox(stack) == []
    assert published_types(stack).count("DeliveryAdded") == 2
    assert published_types(stack).count("ReturnInfoAdded") == 1


def test_cancelled_before_shipping(stack: Stack) -> None:
    order_id, answer = injected_order(stack, 3)
    step(stack, answer["id"], step="cancel")
    deliver(stack)
    order = ct_order(stack, order_id)
    assert (order["orderState"], order["shipmentState"]) == ("Cancelled", "Canceled")
    assert "OrderStateChanged" in published_types(stack)


def test_an_event_for_an_order_commercetools_does_not_have_waits_in_the_inbox(
    stack: Stack,
) -> None:
    """NewStore knows the order before commercetools has it (or under another id): the
    event is kept, answered 200, and applied by the job once the order exists."""
    order_id, answer = injected_order(stack, 4)
    hidden = stack.ctp.collections["order"].items.pop(order_id)  # commercetools lags behind
    step(stack, answer["id"], step="cancel")
    assert deliver(stack) == {"delivered": 1, "failed": 0}  # answered 2xx: stream goes on
    assert inbox(stack) == [f"order.cancelled.{stack.newstore.stream.log[-1]['idempotency_key']}"]
    assert run_job(stack)["inbox"]["waiting"] == 1
    stack.ctp.collections["order"].put(hidden)
    assert run_job(stack)["inbox"]["applied"] == 1
    assert ct_order(stack, order_id)["orderState"] == "Cancelled"
    assert inbox(stack) == []


def test_commercetools_down_loses_nothing_and_the_stopped_stream_is_restarted(
    stack: Stack,
) -> None:
    orders = [injected_order(stack, n) for n in (2, 6, 7)]
    httpx.put(f"{stack.ctp_url}/_sandbox/controls", json={"fault_rate": 1.0}).raise_for_status()
    for _, answer in orders:
        step(stack, answer["id"], step="cancel")
    # commercetools is down: the events cannot be applied nor kept, so the receiver answers
    # 503 and NewStore stops the stream, keeping the events.
    assert deliver(stack)["failed"] == 1
    integration = httpx.get(f"{stack.newstore_url}/_sandbox/stream/deliveries").json()
    assert integration["pending"]["commercetools-connector"] == 3
    status = stack.newstore.stream.integrations["commercetools-connector"].status
    assert status == "stopped"
    httpx.put(f"{stack.ctp_url}/_sandbox/controls", json={"fault_rate": 0.0}).raise_for_status()
    assert deliver(stack)["delivered"] == 0  # stopped: NewStore sends nothing
    # The job sees the stopped integration and starts it again.
    assert run_job(stack)["integration"]["action"] == "restarted"
    assert deliver(stack) == {"delivered": 3, "failed": 0}
    for order_id, _ in orders:
        assert ct_order(stack, order_id)["orderState"] == "Cancelled"


def test_post_deploy_registration_is_idempotent_and_needs_the_api_key(stack: Stack) -> None:
    assert register(stack) == "unchanged"
    integration = stack.newstore.stream.integrations["commercetools-connector"]
    assert integration.api_key == LIFECYCLE_API_KEY
    assert integration.callback_url == f"{stack.lifecycle_url}/lifecycle"
    refused = httpx.post(f"{stack.lifecycle_url}/lifecycle", json={"name": "order.completed"})
    assert refused.status_code == 401
    wrong = httpx.post(
        f"{stack.lifecycle_url}/lifecycle",
        json={"name": "order.completed", "payload": {}},
        headers={"Authorization": "Bearer " + "x" * 40},
    )
    assert wrong.status_code == 401
    ignored = httpx.post(
        f"{stack.lifecycle_url}/lifecycle",
        json={"tenant": "t", "name": "order.opened", "payload": {"id": "x"}},
        headers={"Authorization": f"Bearer {LIFECYCLE_API_KEY}"},
    )
    assert (ignored.status_code, ignored.json()["outcome"]) == (200, "ignored")
    assert [k for k in counters(stack.ctp_url) if "orders" in k] == []
    reply = httpx.get(f"{stack.newstore_url}{INTEGRATIONS}/commercetools-connector")
    assert reply.status_code == 403  # the configuration API needs NewStore's token


def test_replay_resends_a_past_window_through_a_temporary_integration(
    stack: Stack, monkeypatch: pytest.MonkeyPatch
) -> None:
    """After a gap (here: the events were never delivered, the integration stopped by
    hand), `lifecycle replay` re-sends the window; the permanent integration is untouched."""
    order_id, answer = injected_order(stack, 9)
    httpx.post(f"{stack.newstore_url}/_sandbox/stream/deliver").raise_for_status()
    stack.newstore.stream.integrations["commercetools-connector"].status = "stopped"
    step(stack, answer["id"], step="cancel")
    for name, value in {**stack.env(), "LIFECYCLE_API_KEY": LIFECYCLE_API_KEY}.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("LIFECYCLE_CALLBACK_URL", f"{stack.lifecycle_url}/lifecycle")
    since = stack.newstore.stream.log[-1]["published_at"][:19]
    result = CliRunner().invoke(
        cli_app, ["lifecycle", "replay", "--since", since, "--until", "2099-01-01T00:00:00"]
    )
    assert result.exit_code == 0, result.output
    assert "replaying" in result.output
    assert deliver(stack) == {"delivered": 1, "failed": 0}
    assert ct_order(stack, order_id)["orderState"] == "Cancelled"
    replays = [i for i in stack.newstore.stream.integrations.values() if "replay" in i.id]
    assert [(i.integration_type, i.status) for i in replays] == [("temporary", "stopped")]
    assert stack.newstore.stream.integrations["commercetools-connector"].status == "stopped"
    bad = CliRunner().invoke(cli_app, ["lifecycle", "replay", "--since", "x", "--until", "y"])
    assert bad.exit_code == 2


def test_a_concurrent_change_is_read_again_a_bounded_number_of_times(
    stack: Stack, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Another app changes the order between our read and our update: 409, read again,
    plan again. When it keeps changing, the event waits in the inbox instead."""
    order_id, answer = injected_order(stack, 11)
    real_update = CommercetoolsClient.update_order
    bumps = {"left": 1}

    async def racing_update(ctp: Any, oid: str, version: int, actions: Any) -> Any:
        if bumps["left"]:
            bumps["left"] -= 1
            stack.ctp.collections["order"].items[oid]["version"] += 1  # someone else wrote
        return await real_update(ctp, oid, version, actions)

    monkeypatch.setattr(CommercetoolsClient, "update_order", racing_update)
    step(stack, answer["id"], step="complete")
    reset_counters(stack)
    deliver(stack)
    assert ct_order(stack, order_id)["orderState"] == "Complete"
    assert counters(stack.ctp_url) == {
        "GET /sandbox/orders/{resource_id}": 2,
        "POST /sandbox/orders/{order_id}": 2,  # the 409, then the update
    }

    other_id, other = injected_order(stack, 12)
    bumps["left"] = 100  # it never stops changing
    step(stack, other["id"], step="complete")
    reset_counters(stack)
    assert deliver(stack) == {"delivered": 1, "failed": 0}
    retries = stack.lifecycle_settings().conflict_retries
    assert counters(stack.ctp_url)["POST /sandbox/orders/{order_id}"] == retries + 1
    assert ct_order(stack, other_id)["orderState"] == "Open"
    assert len(inbox(stack)) == 1
