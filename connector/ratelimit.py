"""A client-side rate limit for one upstream, applied to every HTTP attempt.

NewStore limits `fulfill_order` to 20 requests/s (the operation's description in its Swagger)
and a tenant to about 200 calls/s in production and 100 in development ("API rate limiting"
on docs.newstore.net), shared with everything else the tenant runs, and answers `429` with
`Retry-After` beyond that. `RateGate` spaces the calls of one client to a steady rate with a
small burst, and a 429 pauses *every* call of the client until its `Retry-After` has passed:
retrying only the refused call while the others keep going would earn more 429s. The calls
held up by a pause then leave one slot after another, not all at once when it ends.

How NewStore measures its "per second" is not documented. Against a bucket a second deep,
a client paced at the limit is never refused; against a strict one (no burst: one call per
1/rate s, like nginx's `limit_req` without `burst`) any jitter in the network makes about
every other call of such a client arrive too early, and each 429 then costs a pause of its
Retry-After. So a 429 also slows the gate down, as TCP does its window: the rate drops to
SLOWDOWN of the current one and the burst to whole calls (none at 20/s); every call
answered without a 429 then wins back FAST_RECOVERY of the configured rate up to a margin
below the rate that was refused, and only SLOW_RECOVERY beyond it, up to the configured
rate and burst again. A limit stricter than the configured rate (a strict bucket, another
client sharing the tenant) then costs a 429 now and then instead of one call in two, and
a one-off 429 (beyond its pause) about 13 s of a pace at most 5% lower.

It hooks into httpx's request/response events, so it applies to each attempt that the shared
retries make (and to token requests, auth resends and export downloads: all go through the
same `httpx.AsyncClient`) without a second retry loop.

A call that has a deadline (`call_deadline`) never waits past it: when its slot lies further
away than the time it has left, it is refused at once with `Throttled`, without sending, so a
Pub/Sub delivery answers 503 inside its ack deadline instead of timing out in the queue. The
wait leaves SEND_SHARE of the deadline's length to the call itself (0.7 s of a 7 s delivery
budget), so that a call is not sent at the last moment and cut off on its way back.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import time
from collections.abc import Awaitable, Callable, Collection, Iterator
from contextvars import ContextVar
from typing import Any

import httpx

from connector.http import UpstreamError, retry_after_seconds

# The burst allowance: a tenth of a second of calls, so a burst at the start stays small.
BURST_WINDOW_S = 0.1
DEFAULT_PAUSE_S = 1.0
# After a 429 the rate is multiplied by SLOWDOWN (at most once per pause, however many
# calls were refused at once, and never below MIN_SHARE of the configured rate). Each call
# answered without a 429 adds FAST_RECOVERY of the configured rate while the rate is below
# MARGIN x the one that was refused, then SLOW_RECOVERY (after a 429 at the full rate: back
# to 0.95 of it in 5 calls, then 250 calls, about 13 s at 20/s, to probe the last 5%).
SLOWDOWN = 0.9
MIN_SHARE = 0.1
MARGIN = 0.95
FAST_RECOVERY = 0.01
SLOW_RECOVERY = 0.0002
_EPSILON = 1e-9  # sums of recovery steps must reach their marks

# When the current unit of work (one delivery) must be done (monotonic), and how long it had.
_deadline: ContextVar[tuple[float, float] | None] = ContextVar("call_deadline", default=None)
# A call waits for its slot at most until this share of its deadline's length is left.
SEND_SHARE = 0.1


@contextlib.contextmanager
def call_deadline(seconds: float, clock: Callable[[], float] = time.monotonic) -> Iterator[None]:
    """Calls made inside this block wait for a slot at most until `seconds` from now."""
    token = _deadline.set((clock() + seconds, seconds))
    try:
        yield
    finally:
        _deadline.reset(token)


class Throttled(UpstreamError):
    """No slot for this call before its deadline: nothing was sent; try again later."""

    def __init__(self, service: str, wait_s: float) -> None:
        super().__init__(
            service, f"client-side rate limit: next slot in {wait_s:.2f} s", transient=True
        )
        self.wait_s = wait_s


class RateGate:
    """Paces calls with the generic cell rate algorithm (virtual scheduling).

    Each call is given the earliest send time that keeps the rate; `_next` is when the slot
    after the last one given opens. Slots are handed out synchronously, so concurrent calls
    on one event loop never share one. `share` is the part of the configured rate the gate
    keeps now: 1, unless 429s slowed it down.
    """

    def __init__(
        self,
        calls_per_s: float,
        *,
        service: str = "newstore",
        paths: Collection[str] | None = None,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        if calls_per_s <= 0:
            raise ValueError("calls_per_s must be positive")
        self.calls_per_s = calls_per_s
        self.interval = 1.0 / calls_per_s
        capacity = max(1.0, calls_per_s * BURST_WINDOW_S)
        self._full_tolerance = (capacity - 1.0) * self.interval
        self._tolerance = self._full_tolerance
        self.share = 1.0
        self._refused_share = 1.0  # the share at which the last 429 came
        self._schedule = 0  # a 429 voids the slots given so far: a new schedule
        self._service = service
        self._paths = frozenset(paths) if paths is not None else None
        self._clock = clock
        self._sleep = sleep
        self._next = -math.inf
        self._paused_until = -math.inf
        self.pauses = 0
        self.refused = 0

    def next_wait(self) -> float:
        """How long a call made now would wait for its slot (nothing is taken)."""
        now = self._clock()
        return max(now, self._next - self._tolerance, self._paused_until) - now

    def reserve(self, max_wait_s: float = math.inf) -> float:
        """Take the next slot and return how long to wait for it; `Throttled` (and no slot
        taken) when that is longer than `max_wait_s`."""
        now = self._clock()
        send_at = max(now, self._next - self._tolerance, self._paused_until)
        wait = send_at - now
        if wait > max_wait_s:
            self.refused += 1
            raise Throttled(self._service, wait)
        self._next = max(self._next, send_at) + self.interval
        return wait

    async def before_request(self, request: httpx.Request) -> None:
        if self._paths is not None and request.url.path not in self._paths:
            return
        deadline = _deadline.get()
        while True:
            max_wait = math.inf
            if deadline is not None:
                until, length = deadline
                max_wait = until - SEND_SHARE * length - self._clock()
            schedule = self._schedule
            wait = self.reserve(max_wait)
            if wait > 0:
                await self._sleep(wait)
            if schedule == self._schedule:
                return
            # A 429 paused and slowed the gate while this call waited: its slot is void.
            # It takes a new one after the pause, at the new pace, so that the calls held
            # up leave one after another rather than all at once (or at the old pace).

    async def after_response(self, response: httpx.Response) -> None:
        if self._paths is not None and response.request.url.path not in self._paths:
            return
        if response.status_code != 429:
            if self.share < 1.0:
                fast = self.share < MARGIN * self._refused_share - _EPSILON
                self._set_share(self.share + (FAST_RECOVERY if fast else SLOW_RECOVERY))
            return
        pause = retry_after_seconds(response)
        now = self._clock()
        until = now + (DEFAULT_PAUSE_S if pause is None else pause)
        if until > self._paused_until:
            if self._paused_until <= now:  # a new pause: slow down, once for all its 429s
                self._refused_share = self.share
                self._set_share(self.share * SLOWDOWN)
            self._paused_until = until
            # The slots given so far are void (a new schedule): none is kept past the pause.
            self._next = min(self._next, until)
            self._schedule += 1
            self.pauses += 1

    def _set_share(self, share: float) -> None:
        """Keep `share` of the configured rate. Slowed down, the burst is whole calls only:
        none below 20/s (a call that comes early by a fraction of an interval is what a
        strict limit refuses), a tenth of a second of them above."""
        self.share = 1.0 if share > 1.0 - _EPSILON else max(MIN_SHARE, share)
        rate = self.calls_per_s * self.share
        self.interval = 1.0 / rate
        if self.share >= 1.0:
            self._tolerance = self._full_tolerance
        else:
            self._tolerance = (max(1, math.floor(rate * BURST_WINDOW_S)) - 1) * self.interval

    def event_hooks(self) -> dict[str, list[Any]]:
        """For `httpx.AsyncClient(event_hooks=...)`."""
        return {"request": [self.before_request], "response": [self.after_response]}
