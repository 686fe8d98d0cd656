"""The job lease: one holder at a time, atomic through the Custom Object's version."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import httpx
import pytest
from fastapi import FastAPI

from connector.commercetools import CommercetoolsClient
from job.lease import RENEW_EVERY, Lease, minimum_duration
from sandbox.commercetools import CommercetoolsEmulator
from sandbox.controls import Controls
from tests.job.conftest import FAST_RETRY, sandbox_ctp_settings

CONTAINER = "jobs"


class Clock:
    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


def lease(ctp: CommercetoolsClient, clock: Clock, duration_s: float = 60.0) -> Lease:
    return Lease(ctp, CONTAINER, "sync", duration_s, clock=clock)


async def test_a_held_lease_is_refused_to_another_run(ctp: CommercetoolsClient) -> None:
    clock = Clock()
    first, second = lease(ctp, clock), lease(ctp, clock)

    assert await first.acquire()
    assert first.held()
    assert not await second.acquire()
    assert second.other is not None and second.other["holder"] == first.holder


async def test_racing_runs_get_exactly_one_lease(ctp: CommercetoolsClient) -> None:
    clock = Clock()
    contenders = [lease(ctp, clock) for _ in range(5)]
    won = await asyncio.gather(*(contender.acquire() for contender in contenders))
    assert sorted(won) == [False] * 4 + [True]


async def test_an_expired_lease_is_taken_over_and_its_holder_stops(
    ctp: CommercetoolsClient,
) -> None:
    clock = Clock()
    crashed, next_run = lease(ctp, clock), lease(ctp, clock)
    assert await crashed.acquire()

    clock.now += 50  # past the holder's safety margin: it must stop acting
    assert not crashed.held()
    assert not await next_run.acquire()  # but not expired yet for anyone else
    clock.now += 20
    assert await next_run.acquire()

    assert not await crashed.renew()
    assert crashed.lost and not crashed.held()
    assert next_run.held()


async def test_a_released_lease_is_free_at_once_and_keeps_the_last_run(
    ctp: CommercetoolsClient, ct_emulator: CommercetoolsEmulator
) -> None:
    clock = Clock()
    first, second = lease(ctp, clock), lease(ctp, clock)
    assert await first.acquire()
    await first.release({"status": "ok", "updated": 3})
    assert not first.held()

    assert await second.acquire()
    assert ct_emulator.get_custom_object(CONTAINER, "sync")["version"] == 3


async def test_renewal_extends_the_lease(ctp: CommercetoolsClient) -> None:
    clock = Clock()
    holder, other = lease(ctp, clock), lease(ctp, clock)
    assert await holder.acquire()
    clock.now += 40
    assert await holder.renew()
    clock.now += 40  # 80 s after acquiring, 40 after renewing
    assert holder.held()
    assert not await other.acquire()


async def test_kept_alive_renews_in_the_background(
    ctp: CommercetoolsClient, ct_emulator: CommercetoolsEmulator
) -> None:
    holder = Lease(ctp, CONTAINER, "sync", duration_s=0.15)
    assert await holder.acquire()
    async with holder.kept_alive():
        for _ in range(200):
            if ct_emulator.get_custom_object(CONTAINER, "sync")["version"] >= 3:
                break
            await asyncio.sleep(0.01)
    assert ct_emulator.get_custom_object(CONTAINER, "sync")["version"] >= 3
    assert not holder.lost


async def test_a_retried_write_whose_answer_was_lost_still_holds_the_lease(
    ctp: CommercetoolsClient, ct_emulator: CommercetoolsEmulator
) -> None:
    # The first write is processed but answered 503; the retry then conflicts with it.
    ct_emulator.sandbox.set_controls(Controls(lost_response_rate=0.5, random_seed=1))
    holder = lease(ctp, Clock())
    assert await holder.acquire()
    assert holder.held()


# --- trust: only while the longest write can still finish inside the lease ------------------


async def test_the_lease_is_trusted_only_while_the_longest_write_fits_before_expiry(
    ctp: CommercetoolsClient,
) -> None:
    clock = Clock()
    holder = Lease(ctp, CONTAINER, "sync", 600, clock=clock, inflight_s=125)
    assert await holder.acquire()
    clock.now += 474.9  # a write starting now ends by 599.9 < 600
    assert holder.held()
    clock.now += 0.1  # one starting now could still be in flight at expiry
    assert not holder.held() and holder.stop_reason() == "lease_expiring"


def test_the_minimum_duration_leaves_room_for_a_stalled_renewal() -> None:
    inflight = 125.0
    duration = minimum_duration(inflight)
    assert duration == pytest.approx(562.5)
    # the worst case: a renewal starts at 0 (expiry: duration), takes `inflight` to land;
    # the next one starts a third later and takes `inflight` too: trust must last until then
    assert 2 * inflight + duration * RENEW_EVERY <= duration - inflight + 1e-9


class Stalling(httpx.AsyncBaseTransport):
    """commercetools; once `stall` is set, lease writes hang (or raise `error`)."""

    def __init__(self, app: FastAPI) -> None:
        self.inner = httpx.ASGITransport(app)
        self.stall = False
        self.error: Exception | None = None
        self.stalled = asyncio.Event()

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        if self.stall and request.url.path.endswith("/custom-objects"):
            if self.error is not None:
                raise self.error
            self.stalled.set()
            await asyncio.Event().wait()  # never answers (until cancelled)
        return await self.inner.handle_async_request(request)


@pytest.fixture
def stalling(ct_app: FastAPI) -> Stalling:
    return Stalling(ct_app)


@pytest.fixture
async def stalling_ctp(stalling: Stalling) -> AsyncIterator[CommercetoolsClient]:
    http = httpx.AsyncClient(transport=stalling)
    async with CommercetoolsClient(sandbox_ctp_settings(), http=http, retry=FAST_RETRY) as client:
        yield client


async def test_a_renewal_that_stalls_past_the_margin_ends_the_trust(
    stalling_ctp: CommercetoolsClient, stalling: Stalling
) -> None:
    clock = Clock()
    holder = Lease(stalling_ctp, CONTAINER, "sync", 600, clock, inflight_s=125, renew_every_s=0)
    assert await holder.acquire()
    stalling.stall = True
    async with holder.kept_alive():
        await asyncio.wait_for(stalling.stalled.wait(), timeout=10)  # the renewal hangs
        clock.now += 400
        assert holder.held()  # 400 + 125 < 600: a write may still start
        clock.now += 76
        assert not holder.held()  # no renewal landed: no write may start any more
    assert holder.renew_error is None  # a stall is not an error, only time running out


@pytest.mark.parametrize(
    "error",
    [RuntimeError("bug in a hook"), httpx.ReadTimeout("slow"), ValueError("bad json")],
    ids=["runtime", "timeout", "value"],
)
async def test_a_renewal_that_fails_in_any_way_stops_the_holder_and_is_not_raised(
    stalling_ctp: CommercetoolsClient, stalling: Stalling, error: Exception
) -> None:
    holder = Lease(stalling_ctp, CONTAINER, "sync", 600, inflight_s=125, renew_every_s=0)
    assert await holder.acquire()
    stalling.stall, stalling.error = True, error
    async with holder.kept_alive():
        for _ in range(500):
            if holder.renew_error is not None:
                break
            await asyncio.sleep(0.01)
    assert holder.stop_reason() == "lease_renewal_failed" and not holder.held()
    assert holder.renew_error
