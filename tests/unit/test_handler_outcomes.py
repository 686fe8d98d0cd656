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
OTHER_ORDER = "3f1c2a9e-0b7d-4e58-9c61-2d4a8b7e6f10"
CHANNEL_ID = "5d0c4bcb-8f7e-4d3a-9a52-1c1c8d0a7c11"
RECORD = f"/shop/custom-objects/{CONTAINER}/{ORDER_ID}"


class FakeUpstreams:
    """Both APIs, as MockTransport handlers; `requests` counts "METHOD /path" per API call."""

    def __init__(self) -> None:
        self.requests: Counter[str] = Counter()
        self.objects: dict[tuple[str, str], dict[str, Any]] = {}
        self.newstore_answer: httpx.Response = httpx.Response(200, json={"id": "ns-1"})
        # Answer the writes of a success (the order's syncInfo, Custom Objects) with this
        # status, or after this delay.
        self.record_write_fault: int | None = None
        self.record_write_delay_s = 0.0
        self.record_delete_fault: int | None = None
        # The order as stored: its syncInfo is where a success is written.
        self.order: dict[str, Any] = {"version": 1, "orderState": "Open", "syncInfo": []}
        self.channel_exists = True
        self.channel_lookups = 0  # once per process, like the tokens: not in `requests`
        self.order_write_conflicts = 0  # answer this many order updates 409 first

    # --- commercetools ---

    async def ctp(self, request: httpx.Request) -> httpx.Response:
        path = request.url.path
        if path == "/oauth/token":
            return httpx.Response(200, json={"access_token": "t", "expires_in": 172800})
        parts = path.split("/")
        if path == "/shop/channels/key=newstore":
            self.channel_lookups += 1
            if not self.channel_exists:
                return ctp_error(404, "ResourceNotFound")
            return httpx.Response(200, json={"id": CHANNEL_ID, "key": "newstore"})
        self.requests[f"{request.method} {path}"] += 1
        if path.startswith("/shop/orders/") and request.method == "GET":
            return httpx.Response(200, json={**self.order, "id": parts[3]})
        if path.startswith("/shop/orders/") and request.method == "POST":
            return await self.update_order(json.loads(request.content))
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

    async def update_order(self, body: dict[str, Any]) -> httpx.Response:
        await asyncio.sleep(self.record_write_delay_s)
        if self.record_write_fault is not None:
            return ctp_error(self.record_write_fault, "ServiceUnavailable")
        if self.order_write_conflicts or body["version"] != self.order["version"]:
            self.order_write_conflicts = max(0, self.order_write_conflicts - 1)
            self.order["version"] += 1  # somebody else changed the order meanwhile
            error = {"code": "ConcurrentModification", "currentVersion": self.order["version"]}
            return httpx.Response(409, json={"statusCode": 409, "errors": [error]})
        for action in body["actions"]:
            assert action["action"] == "updateSyncInfo"
            assert action["channel"] == {"typeId": "channel", "key": "newstore"}
            entry = {"channel": {"typeId": "channel", "id": CHANNEL_ID}}
            self.order["syncInfo"].append({**entry, "externalId": action["externalId"]})
        self.order["version"] += 1
        return httpx.Response(200, json=self.order)

    def synced(self) -> list[str]:
        """The NewStore order ids in the order's syncInfo."""
        return [entry["externalId"] for entry in self.order["syncInfo"]]

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

    def mapped(order: dict[str, Any]) -> PreparedOrder:
        """The order as read, without the mapping (tested on its own)."""
        payload = {"external_id": order["id"], "shop": "storefront"}
        return PreparedOrder(payload, version=order["version"])

    injector._map = mapped  # type: ignore[method-assign]
    return injector


@pytest.fixture
async def injector(fake, ctp_settings, ns_settings) -> AsyncIterator[OrderInjector]:
    async with await build(fake, ctp_settings, ns_settings) as built:
        yield built


@pytest.fixture
async def injector_with_successes(fake, ctp_settings, ns_settings) -> AsyncIterator[OrderInjector]:
    async with await build(fake, ctp_settings, ns_settings, order_record_successes=True) as b:
        yield b


ORDER_READ = f"GET /shop/orders/{ORDER_ID}"
INJECTION = "POST /v0/d/fulfill_order"
RECORD_READ = f"GET {RECORD}"
RECORD_WRITE = "POST /shop/custom-objects"
RECORD_DELETE = f"DELETE {RECORD}"
ORDER_WRITE = f"POST /shop/orders/{ORDER_ID}"


# --- A: what NewStore's answers mean --------------------------------------------------------


async def test_200_is_injected_in_three_requests(fake, injector) -> None:
    result = await injector.inject(ORDER_ID)

    assert (result.outcome, result.newstore_order_id) == (DeliveryOutcome.INJECTED, "ns-1")
    # the success is written onto the order: NewStore's id in its syncInfo, no Custom Object
    assert fake.requests == {ORDER_READ: 1, INJECTION: 1, ORDER_WRITE: 1}
    assert fake.synced() == ["ns-1"]
    assert fake.record() is None


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
    fake, injector_with_successes, earlier: str
) -> None:
    fake.seed_record({"status": earlier, "reason": "newstore_rejected", "attempts": 3})

    result = await injector_with_successes.inject(ORDER_ID)

    assert result.outcome is DeliveryOutcome.INJECTED
    record = fake.record()
    assert record is not None and record["status"] == "injected"
    assert "attempts" not in record and "reason" not in record
    # a blind write, no read of the record first; and the syncInfo all the same
    assert fake.requests == {ORDER_READ: 1, INJECTION: 1, RECORD_WRITE: 1, ORDER_WRITE: 1}
    assert fake.synced() == ["ns-1"]


async def test_a_failure_recorded_elsewhere_costs_the_success_nothing(fake, injector) -> None:
    """Another instance's failure record is not looked for (that would be a fourth request
    per order): it stays, and is superseded when read (`OrderRecords.failed`)."""
    fake.seed_record({"status": "retrying", "reason": "transient_failure", "attempts": 3})

    result = await injector.inject(ORDER_ID)

    assert result.outcome is DeliveryOutcome.INJECTED
    assert fake.requests == {ORDER_READ: 1, INJECTION: 1, ORDER_WRITE: 1}
    assert fake.synced() == ["ns-1"]


async def test_a_failure_this_process_recorded_is_deleted_by_the_success(fake, injector) -> None:
    fake.newstore_answer = httpx.Response(503, json={"error_code": "down"})
    first = await injector.inject(ORDER_ID)
    assert first.outcome is DeliveryOutcome.RETRY
    assert fake.record() is not None and fake.record()["status"] == "retrying"

    fake.newstore_answer = httpx.Response(200, json={"id": "ns-1"})
    healed = await injector.inject(ORDER_ID)

    assert healed.outcome is DeliveryOutcome.INJECTED
    assert fake.record() is None
    assert fake.synced() == ["ns-1"]
    assert fake.requests[RECORD_DELETE] == 1


async def test_an_earlier_success_record_is_kept(fake, injector) -> None:
    fake.seed_record({"status": "injected", "newstore_order_id": "ns-1"})

    await injector.inject(ORDER_ID)

    assert fake.record() is not None and fake.record()["status"] == "injected"
    assert RECORD_DELETE not in fake.requests


async def test_a_late_duplicate_is_recognised_from_the_orders_sync_info(
    fake, ctp_settings, ns_settings
) -> None:
    """Another instance (a fresh injector: nothing in memory) reads the order, finds
    NewStore's id in its syncInfo and sends nothing to NewStore, writes nothing."""
    async with await build(fake, ctp_settings, ns_settings) as first:
        assert (await first.inject(ORDER_ID)).outcome is DeliveryOutcome.INJECTED
    fake.requests.clear()

    async with await build(fake, ctp_settings, ns_settings) as other:
        late = await other.inject(ORDER_ID)

    assert (late.outcome, late.newstore_order_id) == (DeliveryOutcome.ALREADY_INJECTED, "ns-1")
    assert fake.requests == {ORDER_READ: 1}
    assert fake.synced() == ["ns-1"]


async def test_the_channel_is_looked_up_once_per_process(fake, injector) -> None:
    await injector.inject(ORDER_ID)
    fake.order["syncInfo"] = []  # the fake keeps one order: the other one is not synced yet
    await injector.inject(OTHER_ORDER)

    assert fake.channel_lookups == 1
    assert fake.requests[ORDER_WRITE] + fake.requests[f"POST /shop/orders/{OTHER_ORDER}"] == 2


async def test_without_the_channel_the_success_is_a_custom_object(fake, injector) -> None:
    fake.channel_exists = False  # post-deploy not run

    result = await injector.inject(ORDER_ID)

    assert result.outcome is DeliveryOutcome.INJECTED
    assert fake.synced() == []
    assert fake.record() is not None and fake.record()["newstore_order_id"] == "ns-1"
    assert fake.requests == {ORDER_READ: 1, INJECTION: 1, RECORD_WRITE: 1}


async def test_a_concurrent_change_of_the_order_is_retried_at_its_current_version(
    fake, injector
) -> None:
    fake.order_write_conflicts = 2  # the lifecycle app, say, updated the order twice

    result = await injector.inject(ORDER_ID)

    assert result.outcome is DeliveryOutcome.INJECTED
    assert fake.synced() == ["ns-1"]
    assert fake.requests[ORDER_WRITE] == 3
    assert fake.requests[ORDER_READ] == 1  # the 409 names the current version: no re-read


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
    assert fake.synced() == ["ns-1"]


async def test_a_failed_delete_of_a_superseded_failure_does_not_hold_the_success(
    fake, injector
) -> None:
    fake.newstore_answer = httpx.Response(503, json={"error_code": "down"})
    await injector.inject(ORDER_ID)
    fake.newstore_answer = httpx.Response(200, json={"id": "ns-1"})
    fake.record_delete_fault = 503

    result = await injector.inject(ORDER_ID)

    assert result.outcome is DeliveryOutcome.INJECTED  # the order's syncInfo says so
    assert fake.synced() == ["ns-1"]
    assert fake.record() is not None and fake.record()["status"] == "retrying"


async def test_the_success_record_has_its_own_budget(
    fake, injector, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A record write slower than the whole work budget still records the injection: the
    write runs in RECORD_BUDGET_S, after the work."""
    monkeypatch.setattr(handler_module, "WORK_BUDGET_S", 0.3)
    fake.record_write_delay_s = 0.6  # longer than the work budget, well inside 2 s

    result = await injector.inject(ORDER_ID)

    assert result.outcome is DeliveryOutcome.INJECTED
    assert fake.synced() == ["ns-1"]


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
    assert fake.requests == {ORDER_READ: 1, INJECTION: 1, ORDER_WRITE: 1}

    again = await injector.inject(ORDER_ID)  # a late duplicate: answered from memory

    assert again.outcome is DeliveryOutcome.INJECTED
    assert fake.requests == {ORDER_READ: 1, INJECTION: 1, ORDER_WRITE: 1}


# --- D: ORDER_INJECT_WHEN, judged on the order as read --------------------------------------


@pytest.mark.parametrize(
    ("when", "state", "injected"),
    [
        ("confirmed", {"orderState": "Open"}, False),
        ("confirmed", {"orderState": "Confirmed"}, True),
        ("confirmed", {"orderState": "Complete"}, True),
        ("confirmed", {"orderState": "Cancelled"}, False),
        ("paid", {"paymentState": "Pending"}, False),
        ("paid", {"paymentState": "Paid"}, True),
        ("paid", {"paymentState": "Paid", "orderState": "Cancelled"}, False),
        ("created", {"orderState": "Open"}, True),
        ("created", {"orderState": "Cancelled"}, False),
    ],
)
async def test_an_order_is_injected_only_once_eligible(
    fake, ctp_settings, ns_settings, when: str, state: dict[str, str], injected: bool
) -> None:
    fake.order.update(state)
    async with await build(fake, ctp_settings, ns_settings, order_inject_when=when) as injector:
        result = await injector.inject(ORDER_ID)

    if injected:
        assert result.outcome is DeliveryOutcome.INJECTED
        assert fake.requests[INJECTION] == 1 and fake.synced() == ["ns-1"]
    else:
        assert result.outcome is DeliveryOutcome.IGNORED and result.acknowledged
        assert result.reason is not None
        assert fake.requests == {ORDER_READ: 1}  # nothing to NewStore, nothing recorded
        assert fake.record() is None


async def test_an_order_that_becomes_eligible_is_injected_then_and_only_once(
    fake, ctp_settings, ns_settings
) -> None:
    async with await build(fake, ctp_settings, ns_settings, order_inject_when="paid") as injector:
        early = await injector.inject(ORDER_ID)  # OrderCreated: not paid yet
        fake.order["paymentState"] = "Paid"
        paid = await injector.inject(ORDER_ID)  # OrderPaymentStateChanged to Paid
    async with await build(fake, ctp_settings, ns_settings, order_inject_when="paid") as other:
        again = await other.inject(ORDER_ID)  # its duplicate, on another instance

    assert early.outcome is DeliveryOutcome.IGNORED
    assert paid.outcome is DeliveryOutcome.INJECTED
    assert again.outcome is DeliveryOutcome.ALREADY_INJECTED
    assert fake.requests[INJECTION] == 1
