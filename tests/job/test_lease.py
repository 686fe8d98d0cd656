"""The job lease: one holder at a time, atomic through the Custom Object's version."""

from __future__ import annotations

import asyncio

from connector.commercetools import CommercetoolsClient
from job.lease import Lease
from sandbox.commercetools import CommercetoolsEmulator
from sandbox.controls import Controls

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
