"""Outages and 429 storms through the real app and emulators: nothing is parked early, and
the redeliveries cost NewStore calls, not commercetools writes.

Half an hour of Pub/Sub redeliveries is simulated through the messages' publish times (the
age the app parks by), not slept through."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import httpx
import pytest

from sandbox.stack import Stack
from tests.helpers import order_created_message, push_envelope, store_order
from tests.integration.test_event_guarantees import (
    INJECTION,
    ORDER_READ,
    RECORD_READ,
    RECORD_WRITE,
    counters,
    record,
    reset_counters,
    set_controls,
)

PUBLISHED = datetime.now(UTC) - timedelta(minutes=30)
# Pub/Sub's backoff grows to 10 minutes; these are the redeliveries of half an hour at most.
REDELIVERED_AFTER_S = [0, 10, 20, 40, 80, 160, 320, 600, 1200, 1800]


def redeliver(event: httpx.Client, order_id: str, after_s: float) -> httpx.Response:
    """The same message as Pub/Sub redelivers it: the same id and publish time, `after_s`
    after it was published (so its age is `after_s`)."""
    published = datetime.now(UTC) - timedelta(seconds=after_s)
    envelope = push_envelope(
        order_created_message(order_id),
        message_id=f"msg-{order_id}",
        published_at=published.isoformat(),
    )
    return event.post("/event", json=envelope)


@pytest.mark.parametrize(
    "failure",
    [{"fault_rate": 1.0}, {"rate_limit_rate": 1.0, "retry_after_s": 60}],
    ids=["newstore-down", "429-storm"],
)
def test_half_an_hour_of_failures_parks_nothing_and_writes_one_record(
    stack: Stack, event: httpx.Client, failure: dict[str, float]
) -> None:
    warm_up = redeliver(event, store_order(stack, 40), 0)  # tokens in hand, as in production
    assert warm_up.status_code == 200
    order_id = store_order(stack, 41)
    set_controls(stack.newstore_url, **failure)
    reset_counters(stack)

    answers = [redeliver(event, order_id, after) for after in REDELIVERED_AFTER_S]

    assert {a.status_code for a in answers} == {503}  # Pub/Sub keeps redelivering
    stored = record(stack, order_id)
    assert stored is not None and stored["status"] == "retrying"
    ctp = counters(stack.ctp_url)
    # One order read and one recorded failure for ten deliveries; the rest reused the
    # payload and wrote nothing.
    assert ctp == {ORDER_READ: 1, RECORD_READ: 1, RECORD_WRITE: 1}
    newstore = counters(stack.newstore_url)
    assert set(newstore) == {f"{INJECTION} ({'fault' if 'fault_rate' in failure else '429'})"}
    if "fault_rate" in failure:  # each delivery tries, with its bounded in-request retries
        assert len(REDELIVERED_AFTER_S) <= sum(newstore.values()) <= 3 * len(REDELIVERED_AFTER_S)
    else:  # Retry-After 60 s pauses every later delivery's call: answered 503 unsent
        assert sum(newstore.values()) == 1

    if "fault_rate" not in failure:
        return  # the app now honours the storm's last Retry-After (60 s of real time)
    set_controls(stack.newstore_url, fault_rate=0.0)
    healed = redeliver(event, order_id, 1900)

    assert (healed.status_code, healed.json()["outcome"]) == (200, "injected")
    # the success is on the order; the retrying record this process wrote is gone
    sync_info = stack.ctp.collections["order"].get(order_id)["syncInfo"]
    assert [entry["externalId"] for entry in sync_info] == [healed.json()["newstore_order_id"]]
    assert record(stack, order_id) is None
