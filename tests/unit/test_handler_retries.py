"""Transient failures under load: what a storm of redeliveries costs, when an order is parked,
and that no failure ever overwrites a success (issue: live inside NewStore's rate limits).

The same counting fakes as test_handler_outcomes; every request is counted."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import httpx
import pytest

from connector.ratelimit import RateGate
from event.handler import TRANSIENT_RECORD_EVERY_S, DeliveryOutcome, OrderInjector
from tests.unit.test_handler_outcomes import (
    INJECTION,
    ORDER_ID,
    ORDER_READ,
    RECORD_READ,
    RECORD_WRITE,
    FakeUpstreams,
    build,
)

THROTTLED = httpx.Response(429, headers={"Retry-After": "30"}, json={"error_code": "throttled"})
OTHER_ORDER = "1f0c8a4e-6f0e-4a9b-9d55-3f2b1c7e8a90"


def now() -> datetime:
    return datetime.now(UTC)


@pytest.fixture
async def injector(fake, ctp_settings, ns_settings) -> AsyncIterator[OrderInjector]:
    async with await build(fake, ctp_settings, ns_settings) as built:
        yield built


@pytest.fixture
def fake() -> FakeUpstreams:
    return FakeUpstreams()


async def test_a_storm_costs_one_newstore_call_per_delivery_and_one_record(
    fake: FakeUpstreams, injector: OrderInjector
) -> None:
    fake.newstore_answer = THROTTLED

    results = [await injector.inject(ORDER_ID, published_at=now()) for _ in range(20)]

    assert {r.outcome for r in results} == {DeliveryOutcome.RETRY}
    # The first failure is recorded; the other 19 redeliveries reuse the payload and write
    # nothing: one NewStore call each (its Retry-After is longer than the budget).
    assert fake.requests == {ORDER_READ: 1, INJECTION: 20, RECORD_READ: 1, RECORD_WRITE: 1}
    record = fake.record()
    assert record is not None and (record["status"], record["attempts"]) == ("retrying", 1)


async def test_the_attempts_not_written_are_counted_in_the_next_record(
    fake: FakeUpstreams, injector: OrderInjector
) -> None:
    fake.newstore_answer = THROTTLED
    clock = [100.0]
    injector.clock = lambda: clock[0]
    for _ in range(5):
        await injector.inject(ORDER_ID, published_at=now())

    clock[0] += TRANSIENT_RECORD_EVERY_S  # five minutes on: the next failure is written
    await injector.inject(ORDER_ID, published_at=now())

    assert fake.requests[RECORD_WRITE] == 2
    record = fake.record()
    assert record is not None and record["attempts"] == 6


async def test_outages_and_rate_limits_never_park_an_order_early(
    fake: FakeUpstreams, injector: OrderInjector
) -> None:
    fake.newstore_answer = THROTTLED
    clock = [0.0]
    injector.clock = lambda: clock[0]
    published = now() - timedelta(days=5)  # long, but inside the 6 days

    for _ in range(60):  # more than the old limit of 50 attempts
        clock[0] += TRANSIENT_RECORD_EVERY_S
        result = await injector.inject(ORDER_ID, published_at=published)
        assert result.outcome is DeliveryOutcome.RETRY

    record = fake.record()
    assert record is not None and (record["status"], record["attempts"]) == ("retrying", 60)


async def test_an_order_is_parked_once_its_message_is_older_than_the_setting(
    fake: FakeUpstreams, injector: OrderInjector
) -> None:
    fake.newstore_answer = THROTTLED
    await injector.inject(ORDER_ID, published_at=now() - timedelta(hours=1))

    parked = await injector.inject(ORDER_ID, published_at=now() - timedelta(days=6, seconds=1))

    assert (parked.outcome, parked.reason) == (DeliveryOutcome.FAILED, "transient_failure_parked")
    assert parked.acknowledged
    record = fake.record()
    assert record is not None and (record["status"], record["attempts"]) == ("failed", 2)
    assert record["error"]["status"] == 429  # the last error, for the operator


async def test_a_replay_without_a_publish_time_is_dated_by_its_first_failure(
    fake: FakeUpstreams, ctp_settings, ns_settings
) -> None:
    fake.newstore_answer = THROTTLED
    fake.seed_record(
        {"status": "retrying", "attempts": 7, "first_failed_at": "2026-01-01T00:00:00Z"}
    )
    async with await build(fake, ctp_settings, ns_settings, order_park_after_s=3600) as injector:
        result = await injector.inject(ORDER_ID)

    assert (result.outcome, result.reason) == (DeliveryOutcome.FAILED, "transient_failure_parked")
    record = fake.record()
    assert record is not None and record["attempts"] == 8


async def test_a_delivery_without_a_slot_in_its_budget_costs_no_request(
    fake: FakeUpstreams, ctp_settings, ns_settings
) -> None:
    # one fulfill_order every 10 s, longer than the 7 s budget (token requests are not paced)
    gate = RateGate(0.1, paths={"/v0/d/fulfill_order"})
    async with await build(fake, ctp_settings, ns_settings, gate=gate) as injector:
        first = await injector.inject(ORDER_ID, published_at=now())
        before = dict(fake.requests)
        second = await injector.inject(OTHER_ORDER, published_at=now())

    assert first.outcome is DeliveryOutcome.INJECTED
    assert (second.outcome, second.reason) == (DeliveryOutcome.RETRY, "rate_limited")
    assert not second.acknowledged
    assert dict(fake.requests) == before  # nothing sent to either API, nothing recorded
    assert gate.refused == 1


@pytest.mark.parametrize(
    "answer",
    [
        httpx.Response(503, json={"error_code": "down"}),
        httpx.Response(400, json={"error_code": "invalid", "message": "m"}),
    ],
    ids=["transient", "permanent"],
)
async def test_no_failure_overwrites_a_recorded_success(
    fake: FakeUpstreams, injector: OrderInjector, answer: httpx.Response
) -> None:
    fake.seed_record({"status": "injected", "newstore_order_id": "ns-7"})
    fake.newstore_answer = answer

    result = await injector.inject(ORDER_ID, published_at=now())

    assert (result.outcome, result.newstore_order_id) == (DeliveryOutcome.ALREADY_INJECTED, "ns-7")
    record = fake.record()
    assert record is not None and record["status"] == "injected"
    assert fake.requests[RECORD_WRITE] == 0
