"""The event app's guarantees, proved by what the emulators received.

Each test reads the emulators' per-endpoint request counters (`/_sandbox/counters`), so a
guarantee that silently costs requests, or that does not hold, fails here.
"""

from __future__ import annotations

import asyncio
import threading
import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from connector.commercetools import CommercetoolsClient
from event.records import OrderRecords, OrderSync
from event.settings import OrderSettings
from sandbox.stack import PROJECT_KEY, Stack, running_stack
from tests.helpers import order_created_message, push_envelope, store_order

CONTAINER = "newstore-connector-orders"
ORDER_READ = f"GET /{PROJECT_KEY}/orders/{{resource_id}}"
RECORD_READ = f"GET /{PROJECT_KEY}/custom-objects/{{container}}/{{key}}"
RECORD_WRITE = f"POST /{PROJECT_KEY}/custom-objects"
RECORD_DELETE = f"DELETE /{PROJECT_KEY}/custom-objects/{{container}}/{{key}}"
INJECTION = "POST /v0/d/fulfill_order"
ORDER_WRITE = f"POST /{PROJECT_KEY}/orders/{{order_id}}"
# Once per process, not per order: the tokens, and the `newstore` channel's id.
TOKENS = {"POST /oauth/token", "POST /v0/token", f"GET /{PROJECT_KEY}/channels/key={{key}}"}


def deliver(url: str, order_id: Any, **kwargs: Any) -> httpx.Response:
    envelope = push_envelope(order_created_message(order_id, **kwargs))
    return httpx.post(f"{url}/event", json=envelope, timeout=30)


def counters(url: str) -> dict[str, int]:
    """Requests per endpoint since the last reset, tokens left out."""
    by_endpoint = httpx.get(f"{url}/_sandbox/counters").json()["by_endpoint"]
    return {k: v for k, v in by_endpoint.items() if k not in TOKENS}


def reset_counters(stack: Stack) -> None:
    for url in (stack.ctp_url, stack.newstore_url):
        httpx.post(f"{url}/_sandbox/counters/reset").raise_for_status()


def set_controls(url: str, **controls: Any) -> None:
    httpx.put(f"{url}/_sandbox/controls", json=controls).raise_for_status()


def record(stack: Stack, order_id: str) -> dict[str, Any] | None:
    stored = stack.ctp.custom_objects.get((CONTAINER, order_id))
    if stored is None:
        return None
    return dict(stack.ctp.collections["key-value-document"].get(stored)["value"])


def listed_as_failed(stack: Stack) -> set[str]:
    """What `newstore-connector orders failed` lists: the same query, over HTTP."""

    async def query() -> set[str]:
        async with CommercetoolsClient(stack.settings().commercetools) as ctp:
            records = OrderRecords(ctp, CONTAINER)
            return {r["order_id"] for r in await records.failed(sync=OrderSync(ctp))}

    return asyncio.run(query())


@pytest.fixture(params=[True, False], ids=["successes-recorded", "successes-not-recorded"])
def any_stack(request: pytest.FixtureRequest) -> Iterator[Stack]:
    with running_stack(orders=OrderSettings(order_record_successes=request.param)) as stack:
        yield stack


# --- exactly once, for free when possible -----------------------------------------------------


def test_concurrent_duplicates_of_one_order_share_one_injection(stack: Stack) -> None:
    order_id = store_order(stack, 31)
    assert stack.event_url
    # NewStore answers slowly, so that every duplicate arrives while the first injects.
    set_controls(stack.newstore_url, latency_ms=300)
    reset_counters(stack)
    answers: list[httpx.Response] = []
    start = threading.Barrier(8)

    def push() -> None:
        envelope = push_envelope(order_created_message(order_id))  # its own message id
        with httpx.Client(base_url=stack.event_url or "", timeout=30) as client:
            start.wait()
            answers.append(client.post("/event", json=envelope))

    threads = [threading.Thread(target=push) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert [a.status_code for a in answers] == [200] * 8
    assert {a.json()["outcome"] for a in answers} == {"injected"}
    assert len({a.json()["newstore_order_id"] for a in answers}) == 1
    assert counters(stack.newstore_url) == {INJECTION: 1}
    assert counters(stack.ctp_url) == {ORDER_READ: 1, ORDER_WRITE: 1}


def test_a_late_duplicate_of_an_order_injected_here_costs_no_request(stack: Stack) -> None:
    order_id = store_order(stack, 32)
    assert stack.event_url
    first = deliver(stack.event_url, order_id)
    assert first.json()["outcome"] == "injected"
    reset_counters(stack)

    late = deliver(stack.event_url, order_id)  # another message id, as a re-publish has

    assert late.status_code == 200
    assert late.json() == first.json()
    assert counters(stack.ctp_url) == {}
    assert counters(stack.newstore_url) == {}


def test_the_steady_state_costs_three_requests_per_order(any_stack: Stack) -> None:
    stack = any_stack
    assert stack.event_url
    orders = [store_order(stack, n) for n in range(33, 36)]
    deliver(stack.event_url, store_order(stack, 36))  # tokens, connections
    reset_counters(stack)

    answers = [deliver(stack.event_url, order_id) for order_id in orders]

    assert {a.json()["outcome"] for a in answers} == {"injected"}
    ctp, newstore = counters(stack.ctp_url), counters(stack.newstore_url)
    assert newstore == {INJECTION: 3}
    injector = stack.apps["event"].state.worker
    if injector.settings.order_record_successes:  # the syncInfo, and a blind write each
        assert ctp == {ORDER_READ: 3, ORDER_WRITE: 3, RECORD_WRITE: 3}
        assert sum(ctp.values()) + sum(newstore.values()) == 3 * 4
    else:  # the default: the syncInfo is the record
        assert ctp == {ORDER_READ: 3, ORDER_WRITE: 3}
        assert sum(ctp.values()) + sum(newstore.values()) == 3 * 3
    for order_id, answer in zip(orders, answers, strict=True):
        sync_info = stack.ctp.collections["order"].get(order_id)["syncInfo"]
        assert [entry["externalId"] for entry in sync_info] == [answer.json()["newstore_order_id"]]


def test_a_late_duplicate_on_another_instance_is_recognised_from_the_sync_info(
    stack: Stack,
) -> None:
    """No memory of the injection (another instance, or after a restart): the order read
    shows NewStore's id in its syncInfo, and nothing goes to NewStore."""
    order_id = store_order(stack, 38)
    assert stack.event_url
    first = deliver(stack.event_url, order_id)
    stack.apps["event"].state.worker.recent.clear()
    reset_counters(stack)

    late = deliver(stack.event_url, order_id)

    assert (late.status_code, late.json()["outcome"]) == (200, "already_injected")
    assert late.json()["newstore_order_id"] == first.json()["newstore_order_id"]
    assert counters(stack.newstore_url) == {}
    assert counters(stack.ctp_url) == {ORDER_READ: 1}
    assert len(stack.newstore.orders) == 1


# --- a success supersedes a failure -------------------------------------------------------------


def make_it_fail_permanently(stack: Stack, order_id: str) -> dict[str, Any]:
    line = stack.ctp.collections["order"].get(order_id)["lineItems"][0]
    sku = line["variant"]["sku"]
    line["variant"]["sku"] = "NOT-IN-NEWSTORE"
    return {"line": line, "sku": sku}


@pytest.mark.parametrize("failure", ["failed", "retrying"])
def test_a_success_supersedes_an_earlier_failure(any_stack: Stack, failure: str) -> None:
    stack = any_stack
    assert stack.event_url
    order_id = store_order(stack, 37)
    if failure == "failed":  # NewStore refuses the order (400): parked as failed
        broken = make_it_fail_permanently(stack, order_id)
        answer = deliver(stack.event_url, order_id)
        assert (answer.status_code, answer.json()["reason"]) == (200, "newstore_rejected")
        assert order_id in listed_as_failed(stack)
        broken["line"]["variant"]["sku"] = broken["sku"]  # an operator fixes the order
    else:  # NewStore is down: retrying
        set_controls(stack.newstore_url, fault_rate=1.0)
        assert deliver(stack.event_url, order_id).status_code == 503
        set_controls(stack.newstore_url, fault_rate=0.0)
    earlier = record(stack, order_id)
    assert earlier is not None and earlier["status"] == failure
    reset_counters(stack)

    healed = deliver(stack.event_url, order_id)  # the replay, or Pub/Sub's redelivery

    assert (healed.status_code, healed.json()["outcome"]) == (200, "injected")
    ctp, newstore = counters(stack.ctp_url), counters(stack.newstore_url)
    assert newstore == {INJECTION: 1}
    injector = stack.apps["event"].state.worker
    # After a transient failure the redelivery reuses the payload: no second order read.
    read = {ORDER_READ: 1} if failure == "failed" else {}
    if injector.settings.order_record_successes:  # replaced by a blind write
        stored = record(stack, order_id)
        assert stored is not None and stored["status"] == "injected"
        assert stored["newstore_order_id"] == healed.json()["newstore_order_id"]
        assert ctp == {**read, RECORD_WRITE: 1, ORDER_WRITE: 1}
    else:  # this process recorded the failure: read, and deleted
        assert record(stack, order_id) is None
        assert ctp == {**read, RECORD_READ: 1, RECORD_DELETE: 1, ORDER_WRITE: 1}
    assert order_id not in listed_as_failed(stack)


def test_a_failure_recorded_elsewhere_is_superseded_when_listed(stack: Stack) -> None:
    """A failure record this process knows nothing of (another instance's, or from before a
    restart) costs the success nothing; `orders failed` finds the order's syncInfo and
    deletes the record instead of listing it."""
    assert stack.event_url
    order_id = store_order(stack, 39)
    broken = make_it_fail_permanently(stack, order_id)
    deliver(stack.event_url, order_id)
    assert order_id in listed_as_failed(stack)
    broken["line"]["variant"]["sku"] = broken["sku"]
    stack.apps["event"].state.worker.failure_recorded.clear()  # as if another instance
    reset_counters(stack)

    healed = deliver(stack.event_url, order_id)

    assert healed.json()["outcome"] == "injected"
    assert counters(stack.ctp_url) == {ORDER_READ: 1, ORDER_WRITE: 1}
    assert record(stack, order_id) is not None  # still there, superseded:
    assert order_id not in listed_as_failed(stack)
    assert record(stack, order_id) is None  # and cleaned up by the listing


# --- an id that is no id costs nothing ------------------------------------------------------------


@pytest.mark.parametrize("cloud_events", [False, True], ids=["platform", "cloudevents"])
@pytest.mark.parametrize(
    "bad_id",
    [
        "../custom-objects/newstore-connector-orders/x",
        "..",
        f"{uuid.uuid4()}?expand=paymentInfo.payments[*]",
        f"{uuid.uuid4()}#x",
        "%2e%2e%2fsubscriptions",
        "x",
        "y" * 300,
    ],
)
def test_an_invalid_resource_id_is_acked_and_never_requested(
    stack: Stack, bad_id: str, cloud_events: bool
) -> None:
    assert stack.event_url
    reset_counters(stack)

    answer = deliver(stack.event_url, bad_id, cloud_events=cloud_events)

    assert answer.status_code == 200
    assert answer.json() == {
        "outcome": "ignored",
        "kind": "order_created",
        "reason": "invalid_resource_id",
    }
    assert httpx.get(f"{stack.ctp_url}/_sandbox/counters").json()["total"] == 0
    assert httpx.get(f"{stack.newstore_url}/_sandbox/counters").json()["total"] == 0
    assert stack.newstore.orders == {}
