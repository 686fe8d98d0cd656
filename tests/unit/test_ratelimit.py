"""The client-side rate limit: the pace it keeps, the burst it allows, and that a call with a
deadline is refused at once rather than kept waiting past it (no clock is read for real)."""

from __future__ import annotations

import httpx
import pytest

from connector.ratelimit import RateGate, Throttled, call_deadline


class FakeTime:
    def __init__(self) -> None:
        self.now = 1000.0
        self.slept: list[float] = []

    def clock(self) -> float:
        return self.now

    async def sleep(self, delay: float) -> None:
        self.slept.append(delay)
        self.now += delay


def test_slots_keep_the_rate_after_a_burst_of_a_tenth_of_a_second() -> None:
    time = FakeTime()
    gate = RateGate(20, clock=time.clock)  # 20/s: a burst of 2, then one every 50 ms

    waits = [gate.reserve() for _ in range(6)]

    assert waits == pytest.approx([0, 0, 0.05, 0.10, 0.15, 0.20])


def test_no_window_of_one_second_holds_more_than_rate_plus_burst() -> None:
    time = FakeTime()
    gate = RateGate(20, clock=time.clock)
    send_times = [time.now + gate.reserve() for _ in range(200)]

    for first in send_times:
        in_window = [t for t in send_times if first <= t < first + 1.0]
        assert len(in_window) <= 20 + 2


def test_a_slot_further_than_the_deadline_is_refused_and_not_taken() -> None:
    time = FakeTime()
    gate = RateGate(10, clock=time.clock)  # one every 100 ms, burst 1
    gate.reserve()
    gate.reserve()  # the next slot is now 200 ms away

    with pytest.raises(Throttled) as refused:
        gate.reserve(max_wait_s=0.15)

    assert refused.value.transient and not refused.value.retry_now
    assert gate.refused == 1
    assert gate.reserve(max_wait_s=0.25) == pytest.approx(0.2)  # the refused slot was not used


async def test_a_request_inside_a_deadline_waits_for_its_slot_or_is_refused_unsent() -> None:
    time = FakeTime()
    sent: list[float] = []

    def answer(request: httpx.Request) -> httpx.Response:
        sent.append(time.now)
        return httpx.Response(200, json={})

    gate = RateGate(10, clock=time.clock, sleep=time.sleep)
    async with httpx.AsyncClient(
        transport=httpx.MockTransport(answer), event_hooks=gate.event_hooks()
    ) as http:
        with call_deadline(0.25, clock=time.clock):
            for _ in range(3):
                await http.post("https://ns.test/v0/d/fulfill_order")
            with pytest.raises(Throttled):
                await http.post("https://ns.test/v0/d/fulfill_order")

    assert sent == pytest.approx([1000.0, 1000.1, 1000.2])


async def test_a_429_pauses_every_call_and_a_deadline_inside_the_pause_is_refused() -> None:
    time = FakeTime()
    gate = RateGate(1000, clock=time.clock, sleep=time.sleep)
    request = httpx.Request("POST", "https://ns.test/v0/d/fulfill_order")
    await gate.after_response(httpx.Response(429, headers={"Retry-After": "30"}, request=request))
    await gate.after_response(httpx.Response(429, headers={"Retry-After": "2"}, request=request))

    with call_deadline(5, clock=time.clock), pytest.raises(Throttled):
        await gate.before_request(request)
    await gate.before_request(request)  # without a deadline: waits the pause out
    await gate.before_request(request)  # the pause is over: no more waiting

    assert (time.slept, gate.pauses) == ([30.0], 1)


async def test_only_the_named_paths_are_paced() -> None:
    time = FakeTime()
    gate = RateGate(1, paths={"/v0/d/fulfill_order"}, clock=time.clock, sleep=time.sleep)
    token = httpx.Request("POST", "https://ns.test/v0/token")
    inject = httpx.Request("POST", "https://ns.test/v0/d/fulfill_order")

    for _ in range(5):
        await gate.before_request(token)
    await gate.before_request(inject)
    await gate.before_request(inject)

    assert time.slept == [1.0]


def too_many(request: httpx.Request, retry_after: str = "1") -> httpx.Response:
    return httpx.Response(429, headers={"Retry-After": retry_after}, request=request)


async def test_a_call_waiting_when_a_429_comes_takes_a_new_slot_after_the_pause() -> None:
    time = FakeTime()
    gate = RateGate(20, clock=time.clock)
    request = httpx.Request("POST", "https://ns.test/v0/d/fulfill_order")
    for _ in range(3):
        gate.reserve()  # the slots up to 1000.10 are given: the next call waits 0.10 s
    fired = False

    async def sleep(delay: float) -> None:  # a 429 arrives while the call waits
        nonlocal fired
        time.slept.append(delay)
        time.now += delay
        if not fired:
            fired = True
            await gate.after_response(too_many(request))

    gate._sleep = sleep
    await gate.before_request(request)

    # It waited for its slot, then for the pause, and left when the pause ended ...
    assert time.slept == pytest.approx([0.10, 1.0])
    assert time.now == pytest.approx(1001.10)
    # ... and the calls after it leave one by one at the slower pace: no burst.
    assert [gate.reserve() for _ in range(3)] == pytest.approx([1 / 18, 2 / 18, 3 / 18])


async def test_429s_slow_the_gate_down_once_per_pause_and_it_recovers_with_answers() -> None:
    time = FakeTime()
    gate = RateGate(20, clock=time.clock)
    request = httpx.Request("POST", "https://ns.test/v0/d/fulfill_order")
    ok = httpx.Response(200, request=request)

    await gate.after_response(too_many(request))
    await gate.after_response(too_many(request, "2"))  # refused together: one slowdown
    assert (gate.share, gate.pauses) == (pytest.approx(0.9), 2)

    time.now += 5
    for _ in range(5):  # fast back to 95% of the pace that was refused
        await gate.after_response(ok)
    assert gate.share == pytest.approx(0.95)
    for _ in range(125):  # then slowly: half of the last 5% in 125 answers
        await gate.after_response(ok)
    assert gate.share == pytest.approx(0.975)
    for _ in range(125):
        await gate.after_response(ok)
    assert gate.share == 1.0
    assert [gate.reserve() for _ in range(3)] == pytest.approx([0, 0, 0.05])  # burst again


async def test_a_429_at_a_reduced_pace_lowers_the_pace_recovered_fast() -> None:
    time = FakeTime()
    gate = RateGate(20, clock=time.clock)
    request = httpx.Request("POST", "https://ns.test/v0/d/fulfill_order")
    ok = httpx.Response(200, request=request)

    for _ in range(30):  # refused again and again: never below a tenth of the rate
        await gate.after_response(too_many(request))
        time.now += 2
    assert gate.share == pytest.approx(0.1)

    for _ in range(20):
        await gate.after_response(ok)
    # fast only up to 95% of the share last refused (0.1): then 0.02% per answer
    assert gate.share == pytest.approx(0.1 + 20 * 0.0002)


async def test_only_the_named_paths_answers_slow_the_gate_down() -> None:
    gate = RateGate(20, paths={"/v0/d/fulfill_order"}, clock=FakeTime().clock)
    token = httpx.Request("POST", "https://ns.test/v0/token")

    await gate.after_response(too_many(token))

    assert (gate.share, gate.pauses) == (1.0, 0)


async def test_a_call_never_waits_into_the_last_tenth_of_its_deadline() -> None:
    time = FakeTime()
    sent: list[float] = []

    def answer(request: httpx.Request) -> httpx.Response:
        sent.append(time.now)
        return httpx.Response(200, json={})

    gate = RateGate(10, clock=time.clock, sleep=time.sleep)
    async with httpx.AsyncClient(
        transport=httpx.MockTransport(answer), event_hooks=gate.event_hooks()
    ) as http:
        with call_deadline(1.05, clock=time.clock):
            for _ in range(10):
                await http.post("https://ns.test/v0/d/fulfill_order")
            with pytest.raises(Throttled):  # its slot, 1.0 s away, leaves 0.05 s to the call
                await http.post("https://ns.test/v0/d/fulfill_order")

    assert len(sent) == 10 and sent[-1] == pytest.approx(1000.9)
