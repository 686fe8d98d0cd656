"""A client-side rate limit for one upstream, applied to every HTTP attempt.

NewStore limits `fulfill_order` to 20 requests/s (the operation's description in its Swagger)
and a tenant to about 200 calls/s in production and 100 in development ("API rate limiting"
on docs.newstore.net), shared with everything else the tenant runs, and answers `429` with
`Retry-After` beyond that. `RateGate` spaces the calls of one client to a steady rate with a
small burst, and a 429 pauses *every* call of the client until its `Retry-After` has passed:
retrying only the refused call while the others keep going would earn more 429s.

It hooks into httpx's request/response events, so it applies to each attempt that the shared
retries make (and to token requests, auth resends and export downloads: all go through the
same `httpx.AsyncClient`) without a second retry loop.

A call that has a deadline (`call_deadline`) never waits past it: when its slot lies further
away than the time it has left, it is refused at once with `Throttled`, without sending, so a
Pub/Sub delivery answers 503 inside its ack deadline instead of timing out in the queue.
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

# The monotonic time by which the current unit of work (one delivery) must be done.
_deadline: ContextVar[float | None] = ContextVar("call_deadline", default=None)


@contextlib.contextmanager
def call_deadline(seconds: float, clock: Callable[[], float] = time.monotonic) -> Iterator[None]:
    """Calls made inside this block wait for a slot at most until `seconds` from now."""
    token = _deadline.set(clock() + seconds)
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
    on one event loop never share one.
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
        self.interval = 1.0 / calls_per_s
        capacity = max(1.0, calls_per_s * BURST_WINDOW_S)
        self._tolerance = (capacity - 1.0) * self.interval
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
        max_wait = math.inf if deadline is None else deadline - self._clock()
        wait = self.reserve(max_wait)
        if wait > 0:
            await self._sleep(wait)
        # A 429 may have paused everything while this call waited for its slot.
        while (pause := self._paused_until - self._clock()) > 0:
            if deadline is not None and self._clock() + pause > deadline:
                self.refused += 1
                raise Throttled(self._service, pause)
            await self._sleep(pause)

    async def after_response(self, response: httpx.Response) -> None:
        if response.status_code != 429:
            return
        if self._paths is not None and response.request.url.path not in self._paths:
            return
        pause = retry_after_seconds(response)
        until = self._clock() + (DEFAULT_PAUSE_S if pause is None else pause)
        if until > self._paused_until:
            self._paused_until = until
            self.pauses += 1

    def event_hooks(self) -> dict[str, list[Any]]:
        """For `httpx.AsyncClient(event_hooks=...)`."""
        return {"request": [self.before_request], "response": [self.after_response]}
