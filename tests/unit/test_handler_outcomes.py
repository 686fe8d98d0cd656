"""The outcome policy of `OrderInjector`, request by request, over fake upstreams.

The commercetools side is a small in-memory fake of what the handler uses (order reads and
versioned Custom Objects); NewStore answers whatever a test tells it to. Every request is
counted, so each test says exactly what an outcome costs.
"""

from __future__ import annotations

import asyncio
import json
from collections import Counter
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from connector.commercetools import CommercetoolsClient
from connector.http import RetryPolicy
from connector.newstore import NewStoreClient
from connector.ratelimit import RateGate
from connector.settings import CommercetoolsSettings, NewStoreSettings
from event import handler as handler_module
from event.handler import DeliveryOutcome, OrderInjector, PreparedOrder
from event.settings import OrderSettings

FAST_RETRY = RetryPolicy(max_attempts=3, budget_s=1.0, initial_backoff_s=0.01, max_backoff_s=0.02)
ORDER_ID = "9e75e626-5aca-4a0c-b9d2-887778599dbe"
CONTAINER = "newstore-connector-orders"
RECORD = f"/shop/custom-objects/{CONTAINER}/{ORDER_ID}"


class FakeUpstreams:
    """Both APIs, as MockTransport handlers; `requests` counts "METHOD /path" per API call."""

    def __init__(self) -> None:
        self.requests: Counter[str] = Counter()
        self.objects: dict[tuple[str, str], dict[str, Any]] = {}
        self.newstore_answer: httpx.Response = httpx.Response(200, json={"id": "ns-1"})
        self.record_write_fault: int | None = None  # answer record writes with this status
        self.record_write_delay_s = 0.0
        self.record_delete_fault: int | None = None

    # --- commercetools ---

    async def ctp(self, request: httpx.Request) -> httpx.Response:
        path = request.url.path
        if path == "/oauth/token":
            return httpx.Response(200, json={"access_token": "t", "expires_in": 172800})
        self.requests[f"{request.method} {path}"] += 1
        parts = path.split("/")
        if path.startswith("/shop/orders/"):
            return httpx.Response(200, json={"id": parts[3], "version": 1})
        if request.method == "POST" and path == "/shop/custom-objects":
            await asyncio.sleep(self.record_write_delay_s)
            if self.record_write_fault is not None:
                return ctp_error(self.record_write_fault, "ServiceUnavailable")
            return self.upsert(json.loads(request.content))
        if path.startswith("/shop/custom-objects/") and len(parts) == 5:
            key = (parts[3], parts[4])
            stored = self.objects.get(key)
            if stored is None:
                return ctp_error(404, "ResourceNotFound")
            if request.method == "GET":
                return httpx.Response(200, json=stored)
            if request.method == "DELETE":
                if self.record_delete_fault is not None:
                    return ctp_error(self.record_delete_fault, "ServiceUnavailable")
                version = request.url.params.get("version")
                if version is not None and int(version) != stored["version"]:
                    return ctp_error(409, "ConcurrentModification")
                return httpx.Response(200, json=self.objects.pop(key))
        return ctp_error(400, "InvalidInput")

    def upsert(self, draft: dict[str, Any]) -> httpx.Response:
        key = (draft["container"], draft["key"])
        stored = self.objects.get(key)
        actual = stored["version"] if stored else 0
        if "version" in draft and draft["version"] != actual:
            return ctp_error(409, "ConcurrentModification")
        self.objects[key] = {**draft, "version": actual + 1}
        return httpx.Response(200, json=self.objects[key])

    def record(self) -> dict[str, Any] | None:
        stored = self.objects.get((CONTAINER, ORDER_ID))
        return stored["value"] if stored else None

    def seed_record(self, value: dict[str, Any]) -> None:
        self.objects[(CONTAINER, ORDER_ID)] = {
            "container": CONTAINER,
            "key": ORDER_ID,
            "version": 4,
            "value": {"order_id": ORDER_ID, **value},
        }

    # --- NewStore ---

    async def newstore(self, request: httpx.Request) -> httpx.Response:
        if request.url.path == "/v0/token":
            return httpx.Response(200, json={"access_token": "t", "expires_in": 72000})
        self.requests[f"{request.method} {request.url.path}"] += 1
        return self.newstore_answer


def ctp_error(status: int, code: str) -> httpx.Response:
    return httpx.Response(status, json={"statusCode": status, "errors": [{"code": code}]})


@pytest.fixture
def fake() -> FakeUpstreams:
    return FakeUpstreams()


async def build(
    fake: FakeUpstreams,
    ctp_settings: CommercetoolsSettings,
    ns_settings: NewStoreSettings,
    gate: RateGate | None = None,
    **settings: Any,
) -> OrderInjector:
    """An injector over the fakes; `gate` paces fulfill_order as the app's does."""
    hooks = gate.event_hooks() if gate else {}
    ctp = CommercetoolsClient(
        ctp_settings,
        http=httpx.AsyncClient(transport=httpx.MockTransport(fake.ctp)),
        retry=FAST_RETRY,
    )
    newstore = NewStoreClient(
        ns_settings,
        http=httpx.AsyncClient(transport=httpx.MockTransport(fake.newstore), event_hooks=hooks),
        retry=FAST_RETRY,
    )
    injector = OrderInjector(
        ctp, newstore, OrderSettings(**settings), shop="storefront", inject_gate=gate
    )

    async def payload(order_id: str) -> PreparedOrder:
        """The order read, without the mapping (tested on its own)."""
        await injector.ctp.get_order(order_id)
        return PreparedOrder({"external_id": order_id, "shop": "storefront"})

    injector._payload = payload  # type: ignore[method-assign]
    return injector


@pytest.fixture
async def injector(fake, ctp_settings, ns_settings) -> AsyncIterator[OrderInjector]:
    async with await build(fake, ctp_settings, ns_settings) as built:
        yield built


@pytest.fixture
async def injector_without_successes(
    fake, ctp_settings, ns_settings
) -> AsyncIterator[OrderInjector]:
    async with await build(fake, ctp_settings, ns_settings, order_record_successes=False) as b:
        yield b


ORDER_READ = f"GET /shop/orders/{ORDER_ID}"
INJECTION = "POST /v0/d/fulfill_order"
RECORD_READ = f"GET {RECORD}"
RECORD_WRITE = "POST /shop/custom-objects"
RECORD_DELETE = f"DELETE {RECORD}"


# --- A: what NewStore's answers mean --------------------------------------------------------


async def test_200_is_injected_in_three_requests(fake, injector) -> None:
    result = await injector.inject(ORDER_ID)

    assert (result.outcome, result.newstore_order_id) == (DeliveryOutcome.INJECTED, "ns-1")
    assert fake.requests == {ORDER_READ: 1, INJECTION: 1, RECORD_WRITE: 1}
    assert fake.record() is not None and fake.record()["status"] == "injected"


@pytest.mark.parametrize("status", [201, 202, 204])
async def test_another_2xx_is_transient_and_says_why(fake, injector, status: int) -> None:
    fake.newstore_answer = httpx.Response(status, json={"id": "ns-1"})

    result = await injector.inject(ORDER_ID)

    assert result.outcome is DeliveryOutcome.RETRY and not result.acknowledged
    assert result.error is not None
    assert (result.error["error_code"], result.error["status"]) == (
        "unexpected_success_status",
        status,
    )
    record = fake.record()
    assert record is not None
    assert (record["status"], record["error"]["error_code"]) == (
        "retrying",
        "unexpected_success_status",
    )


@pytest.mark.parametrize("status", [401, 403, 404, 408, 409, 413, 422, 425, 429, 500, 503])
async def test_answers_other_than_400_are_transient(fake, injector, status: int) -> None:
    fake.newstore_answer = httpx.Response(status, json={"error_code": "x", "message": "m"})

    result = await injector.inject(ORDER_ID)

    assert result.outcome is DeliveryOutcome.RETRY
    assert result.error is not None and result.error["status"] == status
    assert fake.record() is not None and fake.record()["status"] == "retrying"


async def test_400_is_a_recorded_permanent_failure(fake, injector) -> None:
    body = {"error_code": "invalid_shipments", "message": "m", "request_id": "r-1"}
    fake.newstore_answer = httpx.Response(400, json=body)

    result = await injector.inject(ORDER_ID)

    assert (result.outcome, result.reason) == (DeliveryOutcome.FAILED, "newstore_rejected")
    record = fake.record()
    assert record is not None
    assert (record["status"], record["error"]["error_code"]) == ("failed", "invalid_shipments")


async def test_same_order_with_different_data_is_already_injected(fake, injector) -> None:
    body = {"error_code": "same_order_injection_with_different_data", "message": "m"}
    fake.newstore_answer = httpx.Response(400, json=body)

    result = await injector.inject(ORDER_ID)

    assert result.outcome is DeliveryOutcome.ALREADY_INJECTED
    assert fake.record() is not None and fake.record()["status"] == "already_injected"


# --- B: an id that is not an id costs nothing -----------------------------------------------


@pytest.mark.parametrize("bad", ["../custom-objects/x", "..", "a?b", "a#b", "", "x"])
async def test_an_invalid_order_id_is_ignored_without_a_request(fake, injector, bad: str) -> None:
    result = await injector.inject(bad)

    assert (result.outcome, result.reason) == (DeliveryOutcome.IGNORED, "invalid_resource_id")
    assert result.acknowledged
    assert fake.requests == {}


# --- C: a success supersedes a failure, and has its own budget ------------------------------


@pytest.mark.parametrize("earlier", ["failed", "retrying"])
async def test_with_successes_recorded_a_success_replaces_a_failure(
    fake, injector, earlier: str
) -> None:
    fake.seed_record({"status": earlier, "reason": "newstore_rejected", "attempts": 3})

    result = await injector.inject(ORDER_ID)

    assert result.outcome is DeliveryOutcome.INJECTED
    record = fake.record()
    assert record is not None and record["status"] == "injected"
    assert "attempts" not in record and "reason" not in record
    # a blind write: no read of the record first
    assert fake.requests == {ORDER_READ: 1, INJECTION: 1, RECORD_WRITE: 1}


@pytest.mark.parametrize("earlier", ["failed", "retrying"])
async def test_without_successes_recorded_a_success_deletes_a_failure(
    fake, injector_without_successes, earlier: str
) -> None:
    fake.seed_record({"status": earlier, "reason": "newstore_rejected", "attempts": 3})

    result = await injector_without_successes.inject(ORDER_ID)

    assert result.outcome is DeliveryOutcome.INJECTED
    assert fake.record() is None
    assert fake.requests == {ORDER_READ: 1, INJECTION: 1, RECORD_READ: 1, RECORD_DELETE: 1}


async def test_without_successes_recorded_a_success_costs_one_read(
    fake, injector_without_successes
) -> None:
    result = await injector_without_successes.inject(ORDER_ID)

    assert result.outcome is DeliveryOutcome.INJECTED
    assert fake.objects == {}
    assert fake.requests == {ORDER_READ: 1, INJECTION: 1, RECORD_READ: 1}


async def test_without_successes_recorded_an_earlier_success_record_is_kept(
    fake, injector_without_successes
) -> None:
    fake.seed_record({"status": "injected", "newstore_order_id": "ns-1"})

    await injector_without_successes.inject(ORDER_ID)

    assert fake.record() is not None and fake.record()["status"] == "injected"
    assert RECORD_DELETE not in fake.requests


async def test_a_success_that_cannot_be_recorded_is_redelivered_not_a_failure(
    fake, injector
) -> None:
    fake.seed_record({"status": "retrying", "reason": "transient_failure", "attempts": 1})
    fake.record_write_fault = 503

    result = await injector.inject(ORDER_ID)

    assert result.outcome is DeliveryOutcome.RETRY and not result.acknowledged
    assert result.reason == "success_not_recorded"
    assert result.newstore_order_id == "ns-1"
    record = fake.record()  # no transient attempt was counted on top
    assert record is not None and (record["status"], record["attempts"]) == ("retrying", 1)
    assert fake.requests[INJECTION] == 1
    assert RECORD_READ not in fake.requests  # no read-modify-write of a failure

    fake.record_write_fault = None  # Pub/Sub redelivers: injected again (idempotent), recorded
    healed = await injector.inject(ORDER_ID)

    assert healed.outcome is DeliveryOutcome.INJECTED
    assert fake.record() is not None and fake.record()["status"] == "injected"


async def test_a_delete_that_fails_after_an_injection_is_redelivered(
    fake, injector_without_successes
) -> None:
    fake.seed_record({"status": "failed", "reason": "newstore_rejected", "attempts": 1})
    fake.record_delete_fault = 503

    result = await injector_without_successes.inject(ORDER_ID)

    assert (result.outcome, result.reason) == (DeliveryOutcome.RETRY, "success_not_recorded")
    assert fake.record() is not None and fake.record()["status"] == "failed"
    assert RECORD_WRITE not in fake.requests


async def test_the_success_record_has_its_own_budget(
    fake, injector, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A record write slower than the whole work budget still records the injection: the
    write runs in RECORD_BUDGET_S, after the work."""
    monkeypatch.setattr(handler_module, "WORK_BUDGET_S", 0.3)
    fake.record_write_delay_s = 0.6  # longer than the work budget, well inside 2 s

    result = await injector.inject(ORDER_ID)

    assert result.outcome is DeliveryOutcome.INJECTED
    assert fake.record() is not None and fake.record()["status"] == "injected"


async def test_a_record_write_beyond_its_budget_is_redelivered(
    fake, injector, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(handler_module, "RECORD_BUDGET_S", 0.2)
    fake.record_write_delay_s = 1.0

    result = await injector.inject(ORDER_ID)

    assert (result.outcome, result.reason) == (DeliveryOutcome.RETRY, "success_not_recorded")
    assert result.error is not None and "0.2 s budget" in result.error["message"]


async def test_concurrent_deliveries_share_one_injection(fake, injector) -> None:
    results = await asyncio.gather(*(injector.inject(ORDER_ID) for _ in range(10)))

    assert {r.outcome for r in results} == {DeliveryOutcome.INJECTED}
    assert fake.requests == {ORDER_READ: 1, INJECTION: 1, RECORD_WRITE: 1}

    again = await injector.inject(ORDER_ID)  # a late duplicate: answered from memory

    assert again.outcome is DeliveryOutcome.INJECTED
    assert fake.requests == {ORDER_READ: 1, INJECTION: 1, RECORD_WRITE: 1}
