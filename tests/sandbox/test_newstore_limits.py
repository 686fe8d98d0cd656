"""The NewStore emulator enforces NewStore's documented rate limits, on by default.

Every test here runs the emulator on a frozen, hand-moved clock (`NewStoreEmulator.clock`):
what is asserted is how many requests a burst gets through, never how long anything takes.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from sandbox.controls import RateBucket
from sandbox.newstore import (
    DEVELOPMENT_TENANT_RATE,
    FULFILL_ORDER_RATE,
    NewStoreEmulator,
    create_app,
)
from tests.sandbox.test_newstore_emulator import BASE, bearer, order_payload

INJECT = "/v0/d/fulfill_order"
LIMITED_INJECTION = "POST /v0/d/fulfill_order (rate limited)"


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def app(clock: Clock) -> FastAPI:
    app = create_app()
    app.state.emulator.clock = clock
    return app


@pytest.fixture
def emulator(app: FastAPI) -> NewStoreEmulator:
    return app.state.emulator  # type: ignore[no-any-return]


@pytest.fixture
async def client(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app), base_url=BASE) as c:
        c.headers.update(await bearer(c))
        yield c


async def inject_burst(client: httpx.AsyncClient, count: int, first: int = 0) -> list[int]:
    """`count` distinct orders, one after the other while the clock stands still."""
    statuses = []
    for n in range(first, first + count):
        reply = await client.post(INJECT, json=order_payload(f"order-{n}"))
        statuses.append(reply.status_code)
    return statuses


async def read_stock_burst(client: httpx.AsyncClient, count: int) -> list[int]:
    replies = [await client.get("/_/v0/hq/stocked_products") for _ in range(count)]
    return [reply.status_code for reply in replies]


async def patch_controls(client: httpx.AsyncClient, **changes: Any) -> dict[str, Any]:
    reply = await client.patch("/_sandbox/emulator-controls", json=changes)
    assert reply.status_code == 200, reply.text
    return dict(reply.json())


# --- the defaults: NewStore's documented limits -------------------------------------------


async def test_the_limits_are_on_by_default_at_the_documented_rates(
    client: httpx.AsyncClient,
) -> None:
    controls = (await client.get("/_sandbox/emulator-controls")).json()
    assert controls["rate_limits"] is True
    assert controls["fulfill_order_rate_limit"] == FULFILL_ORDER_RATE == 20
    assert controls["tenant_rate_limit"] == DEVELOPMENT_TENANT_RATE == 100
    assert controls["rate_limit_algorithm"] == "token_bucket"
    assert controls["rate_limit_window_s"] == 1.0


async def test_fulfill_order_takes_20_at_once_then_answers_429_with_retry_after(
    client: httpx.AsyncClient, emulator: NewStoreEmulator
) -> None:
    statuses = await inject_burst(client, 30)

    assert statuses == [200] * 20 + [429] * 10
    refused = await client.post(INJECT, json=order_payload("order-99"))
    assert refused.status_code == 429
    assert refused.headers["Retry-After"] == "1"  # a whole second, rounded up
    body = refused.json()
    assert set(body) == {"error_code", "message", "request_id"}
    assert body["error_code"] == "too_many_requests"
    assert "20 requests per second" in body["message"]
    assert len(emulator.orders) == 20  # a refused request is never processed
    assert emulator.sandbox.counters[LIMITED_INJECTION] == 11
    assert emulator.sandbox.counters["POST /v0/d/fulfill_order"] == 20


async def test_the_bucket_refills_at_20_per_second_and_refusals_take_nothing(
    client: httpx.AsyncClient, clock: Clock
) -> None:
    assert await inject_burst(client, 20) == [200] * 20
    for n in range(5):  # refused again and again: none of them takes a slot
        assert await inject_burst(client, 1, first=100 + n) == [429]

    clock.advance(0.05)  # one request's worth
    assert await inject_burst(client, 2, first=200) == [200, 429]
    clock.advance(0.5)  # ten more
    assert await inject_burst(client, 11, first=300) == [200] * 10 + [429]
    clock.advance(60)  # a long pause refills the bucket, but never beyond its 20
    assert await inject_burst(client, 21, first=400) == [200] * 20 + [429]


async def test_a_client_at_exactly_20_per_second_is_never_refused(
    client: httpx.AsyncClient, clock: Clock
) -> None:
    statuses = []
    for n in range(100):
        statuses += await inject_burst(client, 1, first=n)
        clock.advance(0.05)
    assert statuses == [200] * 100


async def test_the_tenant_budget_counts_every_endpoint_of_the_tenant(
    client: httpx.AsyncClient, emulator: NewStoreEmulator
) -> None:
    # The fixture's token request already took one call of the tenant's 100.
    assert await inject_burst(client, 10) == [200] * 10
    statuses = await read_stock_burst(client, 95)

    assert statuses == [200] * 89 + [429] * 6
    assert await inject_burst(client, 1, first=50) == [429]  # fulfill_order had room left
    token = await client.post(
        "/v0/token",
        data={"grant_type": "password", "username": "sandbox-user", "password": "sandbox-password"},
    )
    assert token.status_code == 429
    assert "the tenant takes 100 calls per second" in token.json()["message"]
    state = (await client.get("/_sandbox/state")).json()  # /_sandbox is never limited
    assert state["rate_limited"] == {"tenant": 8, "fulfill_order": 0}


async def test_the_keycloak_token_endpoint_is_not_the_tenants_host(
    app: FastAPI, client: httpx.AsyncClient
) -> None:
    await read_stock_burst(client, 99)  # the tenant's budget is spent
    assert await read_stock_burst(client, 1) == [429]
    keycloak = await client.post(
        "/auth/realms/sandbox/protocol/openid-connect/token",
        data={
            "grant_type": "client_credentials",
            "client_id": "sandbox-client",
            "client_secret": "sandbox-secret",
        },
    )
    assert keycloak.status_code == 200


async def test_a_request_refused_by_one_limit_takes_nothing_from_the_other(
    client: httpx.AsyncClient, clock: Clock
) -> None:
    await patch_controls(client, tenant_rate_limit=30)
    await inject_burst(client, 20)
    await inject_burst(client, 50, first=100)  # refused by fulfill_order's limit: 50 x 429

    # Those 50 took nothing from the tenant's 30: 10 calls are left (20 injections, and
    # the budget starts afresh when a control changes).
    assert await read_stock_burst(client, 11) == [200] * 10 + [429]


async def test_retry_after_is_the_wait_rounded_up_to_a_second_or_the_control(
    client: httpx.AsyncClient,
) -> None:
    await patch_controls(client, fulfill_order_rate_limit=0.25)  # one every 4 s, bucket of 1
    await inject_burst(client, 1)
    refused = await client.post(INJECT, json=order_payload("order-1"))
    assert (refused.status_code, refused.headers["Retry-After"]) == (429, "4")

    await patch_controls(client, rate_limit_retry_after_s=30)
    refused = await client.post(INJECT, json=order_payload("order-2"))
    assert (refused.status_code, refused.headers["Retry-After"]) == (429, "30")


# --- the controls ---------------------------------------------------------------------------


async def test_the_limits_can_be_turned_off_as_a_whole_or_one_by_one(
    client: httpx.AsyncClient,
) -> None:
    await patch_controls(client, rate_limits=False)
    assert await inject_burst(client, 120) == [200] * 120

    await patch_controls(client, rate_limits=True, fulfill_order_rate_limit=None)
    statuses = await inject_burst(client, 120, first=1000)
    assert statuses == [200] * 99 + [429] * 21  # only the tenant's 100, less the token call

    await patch_controls(client, tenant_rate_limit=None)
    assert await read_stock_burst(client, 150) == [200] * 150


async def test_a_raised_limit_and_a_deeper_bucket(client: httpx.AsyncClient) -> None:
    await patch_controls(client, fulfill_order_rate_limit=50)
    assert await inject_burst(client, 51) == [200] * 50 + [429]

    await patch_controls(client, fulfill_order_rate_limit=20, rate_limit_window_s=0.05)
    assert await inject_burst(client, 2, first=100) == [200, 429]  # strict: one at a time


async def test_fixed_window_resets_on_the_clocks_second(
    client: httpx.AsyncClient, clock: Clock
) -> None:
    await patch_controls(client, rate_limit_algorithm="fixed_window")
    clock.advance(0.75)  # 1000.75: late in a window
    assert await inject_burst(client, 21) == [200] * 20 + [429]
    refused = await client.post(INJECT, json=order_payload("order-x"))
    assert refused.headers["Retry-After"] == "1"

    clock.advance(0.25)  # 1001.0: the next window, 20 more at once (40 within 0.25 s)
    assert await inject_burst(client, 21, first=100) == [200] * 20 + [429]


async def test_invalid_limits_are_refused(client: httpx.AsyncClient) -> None:
    for invalid in (
        {"fulfill_order_rate_limit": 0},
        {"tenant_rate_limit": -1},
        {"rate_limit_window_s": 0},
        {"rate_limit_algorithm": "leaky"},
    ):
        reply = await client.patch("/_sandbox/emulator-controls", json=invalid)
        assert reply.status_code == 422, invalid


async def test_create_app_controls_and_the_limits_reset(clock: Clock) -> None:
    app = create_app(controls={"tenant_rate_limit": 200, "fulfill_order_rate_limit": 5})
    app.state.emulator.clock = clock
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app), base_url=BASE) as c:
        c.headers.update(await bearer(c))
        assert await inject_burst(c, 6) == [200] * 5 + [429]
        assert await read_stock_burst(c, 200) == [200] * 194 + [429] * 6
        state = (await c.get("/_sandbox/state")).json()
        assert state["rate_limited"] == {"tenant": 6, "fulfill_order": 1}
        reset = await c.post("/_sandbox/limits/reset")
        assert reset.json() == {"rate_limited": {"tenant": 0, "fulfill_order": 0}}
        assert await inject_burst(c, 6, first=100) == [200] * 5 + [429]


async def test_the_shared_faults_keep_their_meaning_under_the_limits(
    client: httpx.AsyncClient, emulator: NewStoreEmulator
) -> None:
    await client.put("/_sandbox/controls", json={"rate_limit_rate": 1.0, "retry_after_s": 7})
    injected_429 = await client.post(INJECT, json=order_payload())
    assert (injected_429.status_code, injected_429.headers["Retry-After"]) == (429, "7")
    assert emulator.sandbox.counters["POST /v0/d/fulfill_order (429)"] == 1
    assert LIMITED_INJECTION not in emulator.sandbox.counters


# --- the bucket itself ------------------------------------------------------------------------


def test_token_bucket_conforms_to_its_rate_and_depth() -> None:
    bucket = RateBucket(10, 1.0, "token_bucket")
    admitted = 0
    for _ in range(25):  # 25 at t=0: the depth, 10
        if bucket.check(0.0) == 0:
            bucket.take(0.0)
            admitted += 1
    assert admitted == 10
    assert bucket.check(0.0) == pytest.approx(0.1)
    assert bucket.check(0.1) == 0  # one more after 1/rate


def test_fixed_window_counts_per_window_of_the_clock() -> None:
    bucket = RateBucket(10, 1.0, "fixed_window")
    for _ in range(10):
        assert bucket.check(5.5) == 0
        bucket.take(5.5)
    assert bucket.check(5.5) == pytest.approx(0.5)
    assert bucket.check(6.0) == 0
